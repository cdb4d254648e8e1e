//! `kiln db vuln import` and `kiln vuln` end to end. Advisories are written
//! in the real OSV and Debian-tracker schemas from real data: the CVE IDs
//! and fixed versions in the packages' own changelog.Debian.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// (CVE, version that fixed it, upload urgency) from a Debian changelog,
/// newest upload first; a CVE named by several uploads keeps the newest.
fn changelog_fixes(text: &str, source: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let (mut version, mut urgency) = (String::new(), String::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{source} (")) {
            version = rest.split(')').next().unwrap_or_default().to_string();
            urgency = line
                .split("urgency=")
                .nth(1)
                .unwrap_or("medium")
                .trim()
                .to_string();
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("CVE-") {
            let id: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if id.len() > 9 {
                out.entry(id.clone())
                    .or_insert_with(|| (version.clone(), urgency.clone()));
            }
            rest = &rest[i + id.len().max(4)..];
        }
    }
    out
}

fn zcat_from_deb(deb: &Path, member: &str) -> String {
    let out = sh(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile '{}' | tar xO '{}' | zcat",
        deb.display(),
        member
    )));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write one OSV record per CVE, and the tracker JSON, for `source`.
fn write_advisories(dir: &Path, source: &str, fixes: &BTreeMap<String, (String, String)>) {
    let osv = dir.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    let mut tracker = serde_json::Map::new();
    for (cve, (fixed, urgency)) in fixes {
        let rec = json!({
            "schema_version": "1.6.0",
            "id": format!("DEBIAN-{cve}"),
            "upstream": [cve],
            "modified": "2026-11-26T00:00:00Z",
            "affected": [{
                "package": {"ecosystem": "Debian:12", "name": source, "purl": format!("pkg:deb/debian/{source}?arch=source")},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }],
        });
        std::fs::write(osv.join(format!("DEBIAN-{cve}.json")), rec.to_string()).unwrap();
        tracker.insert(
            cve.clone(),
            json!({"releases": {"bookworm": {"status": "resolved", "fixed_version": fixed, "urgency": urgency, "repositories": {}}}}),
        );
    }
    std::fs::write(
        dir.join("tracker.json"),
        json!({ source: Value::Object(tracker) }).to_string(),
    )
    .unwrap();
}

fn import(db: &Path, dir: &Path) {
    let o = run(&[
        "db",
        "vuln",
        "import",
        "--db",
        db.to_str().unwrap(),
        "--osv",
        dir.join("osv").to_str().unwrap(),
        "--debian-tracker",
        dir.join("tracker.json").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn findings(doc: &Value) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_string(),
                f["id"].as_str().unwrap().to_string(),
                f["installed"].as_str().unwrap().to_string(),
                f["fixed"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// curl and libcurl4 at 7.88.1-10+deb12u5 against every CVE curl's
/// deb12u15 changelog names: exactly those fixed after deb12u5 are found,
/// identically on the stripped image (found from bytes).
#[test]
fn old_curl_matches_its_changelog_and_stripping_changes_nothing() {
    let Some(corpus) = corpus() else { return };
    if !(have("umoci") && have("dpkg")) {
        return;
    }
    let debs = corpus.join("debian-bookworm");
    let dir = tempfile::tempdir().unwrap();
    let fixes = changelog_fixes(
        &zcat_from_deb(
            &debs.join("curl_7.88.1-10+deb12u15_amd64.deb"),
            "./usr/share/doc/curl/changelog.Debian.gz",
        ),
        "curl",
    );
    assert!(fixes.len() > 20, "{fixes:?}");
    write_advisories(dir.path(), "curl", &fixes);
    let db = dir.path().join("kiln.db");
    import(&db, dir.path());

    let u = Umoci::new(dir.path(), "old-curl");
    let root = u.rootfs();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    dpkg_root(&root);
    let installed = "7.88.1-10+deb12u5";
    dpkg(
        &root,
        &[
            "--force-depends",
            "-i",
            debs.join(format!("curl_{installed}_amd64.deb"))
                .to_str()
                .unwrap(),
            debs.join(format!("libcurl4_{installed}_amd64.deb"))
                .to_str()
                .unwrap(),
        ],
    );
    u.repack();

    let mut want = Vec::new();
    for (cve, (fixed, _)) in &fixes {
        if kiln_vuln_cmp(installed, fixed) {
            for p in ["curl", "libcurl4"] {
                want.push((
                    p.to_string(),
                    cve.clone(),
                    installed.to_string(),
                    fixed.clone(),
                ));
            }
        }
    }
    want.sort();
    let image = format!("oci-dir:{}", u.image());
    let doc = json(&["vuln", &image, "--db", db.to_str().unwrap(), "-o", "json"]);
    assert_eq!(findings(&doc), want);
    let f = &doc["findings"][0];
    assert_eq!(f["found_by"], "metadata");
    assert!(
        f["sources"].to_string().contains("osv")
            && f["sources"].to_string().contains("debian-tracker")
    );

    // Now from bytes: signatures from the corpus, metadata stripped.
    let o = run(&[
        "db",
        "build",
        "--db",
        db.to_str().unwrap(),
        "--deb",
        debs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stripped = dir.path().join("stripped.tar");
    let o = run(&[
        "strip",
        &image,
        &format!("oci-archive:{}", stripped.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc = json(&[
        "vuln",
        &format!("oci-archive:{}", stripped.display()),
        "--db",
        db.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(
        findings(&doc),
        want,
        "stripping must not change the findings"
    );
    assert!(doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["found_by"] == "bytes"));

    // SARIF and CycloneDX VEX pass the official validators; scan --vuln is
    // the same run.
    let sarif = dir.path().join("findings.sarif");
    let o = run(&[
        "scan",
        "--vuln",
        &image,
        "--db",
        db.to_str().unwrap(),
        "-o",
        "sarif",
        "--file",
        sarif.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    validate_sarif(&sarif);
    let log: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(
        log["runs"][0]["results"].as_array().unwrap().len(),
        want.len()
    );
    let vex = dir.path().join("vex.json");
    let o = run(&[
        "vuln",
        &image,
        "--db",
        db.to_str().unwrap(),
        "-o",
        "cyclonedx-json",
        "--file",
        vex.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    validate("validate_cyclonedx.py", &vex);
    let bom: Value = serde_json::from_slice(&std::fs::read(&vex).unwrap()).unwrap();
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(
        vulns.len(),
        want.len() / 2,
        "one entry per CVE, affecting both packages"
    );
    assert_eq!(vulns[0]["affects"].as_array().unwrap().len(), 2);

    // Ignore rules: a live rule hides its CVE, an expired one does not.
    let (first, second) = (&want[0].1, &want[2].1);
    let rules = dir.path().join("kilnignore.yaml");
    std::fs::write(
        &rules,
        format!("vulnerabilities:\n  - id: {first}\n    reason: not reachable here\n    expires: 2999-12-31\n  - id: {second}\n    package: curl\n    reason: stale\n    expires: 2001-01-01\n"),
    )
    .unwrap();
    let doc = json(&[
        "vuln",
        &image,
        "--db",
        db.to_str().unwrap(),
        "-o",
        "json",
        "--ignore-file",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(doc["findings"].as_array().unwrap().len(), want.len() - 2);
    assert_eq!(doc["ignored"].as_array().unwrap().len(), 2);
    assert_eq!(doc["ignored"][0]["reason"], "not reachable here");

    // --fail-on: the uploads' urgency is medium.
    let fail_on = |severity: &str| {
        run(&[
            "vuln",
            &image,
            "--db",
            db.to_str().unwrap(),
            "-o",
            "json",
            "--fail-on",
            severity,
        ])
        .status
        .code()
    };
    // 1: the policy failed; kiln did its job.
    assert_eq!(fail_on("medium"), Some(1));
    assert_eq!(fail_on("critical"), Some(0));
    // 2: kiln could not do the job; never mistaken for a policy failure.
    let broken = |severity: &str| {
        run(&[
            "vuln",
            "oci-archive:/nonexistent.tar",
            "--db",
            db.to_str().unwrap(),
            "--fail-on",
            severity,
        ])
        .status
        .code()
    };
    assert_eq!(broken("medium"), Some(2));
}

/// dpkg's own answer to "is `a` older than `b`".
fn kiln_vuln_cmp(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .unwrap()
        .success()
}

/// This machine's own packages against their own changelogs: every CVE
/// they list is fixed at or below the installed version, so nothing is
/// found; an open tracker entry for the same package is.
#[test]
fn installed_packages_are_not_flagged_for_fixes_they_contain() {
    if !(have("dpkg-query") && Path::new("/usr/share/doc/libssl3/changelog.Debian.gz").exists()) {
        eprintln!("skipping: needs this machine's openssl changelog");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = sh(Command::new("zcat").arg("/usr/share/doc/libssl3/changelog.Debian.gz")).stdout;
    let fixes = changelog_fixes(&String::from_utf8_lossy(&text), "openssl");
    assert!(!fixes.is_empty());
    write_advisories(dir.path(), "openssl", &fixes);
    let db = dir.path().join("kiln.db");
    import(&db, dir.path());
    // A root with this machine's real dpkg database and os-release.
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/var/lib/dpkg/status", root.join("var/lib/dpkg/status")).unwrap();
    std::fs::copy("/etc/os-release", root.join("etc/os-release")).unwrap();
    let src = format!("dir:{}", root.display());
    let doc = json(&["vuln", &src, "--db", db.to_str().unwrap(), "-o", "json"]);
    assert_eq!(findings(&doc), vec![], "a fixed CVE was flagged");

    // An open entry (the tracker's TEMP- form) is found, with no fix.
    let tracker = json!({"openssl": {"TEMP-0000000-5A3C21": {"releases": {"bookworm": {"status": "open", "urgency": "low", "repositories": {}}}}}});
    std::fs::write(dir.path().join("open.json"), tracker.to_string()).unwrap();
    let o = run(&[
        "db",
        "vuln",
        "import",
        "--db",
        db.to_str().unwrap(),
        "--debian-tracker",
        dir.path().join("open.json").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let doc = json(&["vuln", &src, "--db", db.to_str().unwrap(), "-o", "json"]);
    let f = findings(&doc);
    assert!(
        !f.is_empty() && f.iter().all(|x| x.1.starts_with("TEMP-") && x.3.is_empty()),
        "{f:?}"
    );
    assert_eq!(doc["findings"][0]["severity"], "Low");
    let fixed_only = json(&[
        "vuln",
        &src,
        "--db",
        db.to_str().unwrap(),
        "-o",
        "json",
        "--only-fixed",
    ]);
    assert_eq!(findings(&fixed_only), vec![]);
}

#[test]
fn bad_advisory_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"not\": \"osv\"}").unwrap();
    let db = dir.path().join("kiln.db");
    let err = failure(&[
        "db",
        "vuln",
        "import",
        "--db",
        db.to_str().unwrap(),
        "--osv",
        bad.to_str().unwrap(),
    ]);
    assert!(
        err.contains("bad.json") && err.contains("not an OSV record"),
        "{err}"
    );
    let err = failure(&[
        "db",
        "vuln",
        "import",
        "--db",
        db.to_str().unwrap(),
        "--debian-tracker",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.json") && err.contains("tracker"), "{err}");
}

/// A loopback HTTP/1.1 server for one file that honours `Range: bytes=N-`
/// and, on its first response, closes the connection after `cut` bytes
/// (a dropped download). Returns the URL and the Range headers it saw.
fn serve_once_then_resume(
    body: Vec<u8>,
    cut: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/security-tracker/data/json",
        listener.local_addr().unwrap()
    );
    let ranges = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range_from = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    seen.lock().unwrap().push(v.trim().to_string());
                    range_from = v.trim().trim_end_matches('-').parse().unwrap();
                }
            }
            let rest = &body[range_from..];
            let head = if range_from > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                    rest.len(), range_from, body.len() - 1, body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    rest.len()
                )
            };
            stream.write_all(head.as_bytes()).unwrap();
            let send = if i == 0 {
                &rest[..cut.min(rest.len())]
            } else {
                rest
            };
            let _ = stream.write_all(send);
            let _ = stream.flush();
        }
    });
    (url, ranges)
}

#[test]
fn tracker_download_resumes_after_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut fixes = BTreeMap::new();
    // curl's changelog.Debian: CVE-2023-38545 fixed in 7.88.1-10+deb12u4.
    fixes.insert(
        "CVE-2023-38545".to_string(),
        ("7.88.1-10+deb12u4".to_string(), "high".to_string()),
    );
    write_advisories(dir.path(), "curl", &fixes);
    let mut body = std::fs::read(dir.path().join("tracker.json")).unwrap();
    // Make it large enough that the cut lands mid-body.
    let pad = " ".repeat(200_000);
    body.splice(1..1, pad.bytes());
    let cut = body.len() / 3;
    let (url, ranges) = serve_once_then_resume(body.clone(), cut);
    let db = dir.path().join("kiln.db");
    let cache = dir.path().join("cache");
    let import = || {
        kiln()
            .env("XDG_CACHE_HOME", &cache)
            .args([
                "db",
                "vuln",
                "import",
                "--db",
                db.to_str().unwrap(),
                "--debian-tracker",
                &url,
            ])
            .output()
            .unwrap()
    };
    let first = import();
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(
        first.status.code(),
        Some(2),
        "an error, not a policy failure: {err}"
    );
    assert!(err.contains("run again to resume"), "{err}");
    let part = cache.join("kiln/downloads/json.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len() as usize, cut);
    let second = import();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(*ranges.lock().unwrap(), vec![format!("{cut}-")]);
    assert_eq!(
        std::fs::read(cache.join("kiln/downloads/json")).unwrap(),
        body
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("imported 1 Debian tracker CVE"));
}

#[test]
fn nvd_feed_imports() {
    // CVE-2023-0286 as NVD's CVE API 2.0 returns it (trimmed to what kiln reads).
    let feed = json!({
        "format": "NVD_CVE", "version": "2.0", "timestamp": "2026-11-26T00:00:00.000",
        "resultsPerPage": 1, "startIndex": 0, "totalResults": 1,
        "vulnerabilities": [{"cve": {
            "id": "CVE-2023-0286", "lastModified": "2024-02-04T09:15:09.113",
            "descriptions": [{"lang": "en", "value": "There is a type confusion vulnerability relating to X.400 address processing inside an X.509 GeneralName."}],
            "metrics": {"cvssMetricV31": [{"cvssData": {"version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H", "baseScore": 7.4}}]},
            "configurations": [{"nodes": [{"operator": "OR", "negate": false, "cpeMatch": [
                {"vulnerable": true, "criteria": "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", "versionStartIncluding": "3.0.0", "versionEndExcluding": "3.0.8"}
            ]}]}]
        }}]
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nvd.json");
    std::fs::write(&path, feed.to_string()).unwrap();
    let db = dir.path().join("kiln.db");
    let o = run(&[
        "db",
        "vuln",
        "import",
        "--db",
        db.to_str().unwrap(),
        "--nvd",
        path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("imported 1 NVD CVE"), "{err}");
    assert!(err.contains("1 advisories from nvd"), "{err}");
}
