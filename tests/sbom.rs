//! `kiln sbom` end to end: images built here with real tools (dpkg-deb,
//! dpkg, umoci, skopeo, GNU tar), every transport, the official SBOM
//! validators, and the shared corpus image when it is present.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// The host's own pip distribution: a real installed dist-info directory.
fn host_dist_info() -> Option<(PathBuf, String)> {
    let out = Command::new("python3")
        .args(["-c", "import importlib.metadata as m; d=m.distribution('pip'); print(d._path); print(d.version)"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    Some((PathBuf::from(lines.next()?), lines.next()?.to_string()))
}

fn copy_dir(from: &Path, to: &Path) {
    sh(Command::new("cp").arg("-a").arg(from).arg(to));
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    umoci: Umoci,
    pip_version: String,
}

/// Three layers:
/// 1. os-release, dpkg installs alpha 1.0-1 and beta 1.0-1, a pip dist-info;
/// 2. dpkg upgrades alpha to 2.0-1 and purges beta (umoci writes whiteouts);
/// 3. a raw layer that makes `usr/share/alpha` opaque.
fn fixture() -> Option<Fixture> {
    if !(have("umoci") && have("dpkg-deb") && have("dpkg")) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let debs = root.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let alpha1 = Deb {
        name: "alpha",
        version: "1.0-1",
        source: Some("kiln-src"),
        files: &[
            ("usr/bin/alpha", b"alpha one\n"),
            ("usr/share/alpha/data", b"1"),
        ],
    }
    .build(&debs);
    let alpha2 = Deb {
        name: "alpha",
        version: "2.0-1",
        source: Some("kiln-src"),
        files: &[
            ("usr/bin/alpha", b"alpha two\n"),
            ("usr/share/alpha/data", b"2"),
        ],
    }
    .build(&debs);
    let beta = Deb {
        name: "beta",
        version: "1.0-1",
        source: None,
        files: &[("usr/bin/beta", b"beta\n")],
    }
    .build(&debs);

    let umoci = Umoci::new(&root, "fixture");
    let rootfs = umoci.rootfs();
    std::fs::create_dir_all(rootfs.join("usr/lib")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("usr/lib/os-release"), OS_RELEASE).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", rootfs.join("etc/os-release")).unwrap();
    dpkg_root(&rootfs);
    dpkg(
        &rootfs,
        &["-i", alpha1.to_str().unwrap(), beta.to_str().unwrap()],
    );
    let (dist_info, pip_version) = host_dist_info().expect("python3 with pip");
    let site = rootfs.join("usr/lib/python3/dist-packages");
    std::fs::create_dir_all(&site).unwrap();
    copy_dir(&dist_info, &site);
    umoci.repack();

    dpkg(&rootfs, &["-i", alpha2.to_str().unwrap()]);
    dpkg(&rootfs, &["--purge", "beta"]);
    umoci.repack();

    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("usr/share/alpha/.wh..wh..opq", &b""[..]),
        ("usr/share/alpha/fresh", &b"new"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let raw = root.join("opaque.tar");
    std::fs::write(&raw, b.into_inner().unwrap()).unwrap();
    umoci.add_raw_layer(&raw);
    umoci.config(&["--config.entrypoint", "/usr/bin/alpha"]);
    if have("skopeo") {
        sh(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}", umoci.image())));
    }
    Some(Fixture {
        _dir: dir,
        root,
        umoci,
        pip_version,
    })
}

fn expected(f: &Fixture) -> Vec<(String, String, String)> {
    vec![
        ("alpha".into(), "2.0-1".into(), "amd64".into()),
        ("pip".into(), f.pip_version.clone(), String::new()),
    ]
}

#[test]
fn multilayer_image_with_upgrade_purge_and_opaque_dir() {
    let Some(f) = fixture() else { return };
    let doc = json(&[
        "sbom",
        &format!("oci-dir:{}", f.umoci.image()),
        "-o",
        "json",
    ]);
    assert_eq!(rows(&doc), expected(&f));
    assert_eq!(doc["distro"]["id"], "debian");
    assert_eq!(doc["source"]["layers"].as_array().unwrap().len(), 3);
    let alpha = &doc["packages"][0];
    assert_eq!(
        alpha["purl"],
        "pkg:deb/debian/alpha@2.0-1?arch=amd64&distro=debian-12"
    );
    assert_eq!(alpha["source_name"], "kiln-src");
    assert_eq!(alpha["source_version"], "2.0-1");
    // The upgrade happened in the second layer.
    assert_eq!(alpha["locations"][0]["path"], "/var/lib/dpkg/status");
    assert_eq!(alpha["locations"][0]["layer"], 1);
    let files: Vec<&str> = alpha["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"/usr/bin/alpha"), "{files:?}");
    let pip = &doc["packages"][1];
    assert_eq!(pip["purl"], format!("pkg:pypi/pip@{}", f.pip_version));
    assert!(pip["files"].as_array().unwrap().len() > 10);
}

#[test]
fn every_transport_gives_the_same_packages() {
    let Some(f) = fixture() else { return };
    let want = expected(&f);
    let check = |source: String| {
        let doc = json(&["sbom", &source, "-o", "json"]);
        assert_eq!(rows(&doc), want, "{source}");
    };
    // A bare layout directory is detected.
    check(f.umoci.layout.display().to_string());
    // GNU tar writes `./` member names; they are normal and accepted.
    let archive = f.root.join("fixture.oci.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&f.umoci.layout)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    check(format!("oci-archive:{}:fixture", archive.display()));
    check(archive.display().to_string());
    if have("skopeo") {
        let docker = f.root.join("fixture.docker.tar");
        sh(Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}", f.umoci.image()))
            .arg(format!(
                "docker-archive:{}:kiln/fixture:1",
                docker.display()
            )));
        check(format!("docker-archive:{}", docker.display()));
        check(format!(
            "docker-archive:{}:kiln/fixture:1",
            docker.display()
        ));
        check(docker.display().to_string());

        let zstd = f.root.join("zstd");
        sh(Command::new("skopeo")
            .args(["copy", "--dest-compress", "--dest-compress-format", "zstd"])
            .arg(format!("oci:{}", f.umoci.image()))
            .arg(format!("oci:{}:fixture", zstd.display())));
        check(format!("oci-dir:{}", zstd.display()));
    }
    // Docker 25+ `docker save`: an OCI layout plus a manifest.json that
    // names blobs by path.
    let docker_oci = oci_in_docker_save(&f);
    check(format!("docker-archive:{}", docker_oci.display()));
}

fn oci_in_docker_save(f: &Fixture) -> PathBuf {
    let stage = f.root.join("docker-oci");
    copy_dir(&f.umoci.layout, &stage);
    let index: Value =
        serde_json::from_slice(&std::fs::read(stage.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        stage
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(mdigest)).unwrap()).unwrap();
    let path = |d: &Value| {
        format!(
            "blobs/sha256/{}",
            d.as_str().unwrap().trim_start_matches("sha256:")
        )
    };
    let docker_manifest = serde_json::json!([{
        "Config": path(&manifest["config"]["digest"]),
        "RepoTags": ["kiln/fixture:1"],
        "Layers": manifest["layers"].as_array().unwrap().iter().map(|l| path(&l["digest"])).collect::<Vec<_>>(),
    }]);
    std::fs::write(stage.join("manifest.json"), docker_manifest.to_string()).unwrap();
    let out = f.root.join("docker-oci.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&stage)
        .arg("-cf")
        .arg(&out)
        .arg("."));
    out
}

#[test]
fn cyclonedx_and_spdx_pass_the_official_validators() {
    let Some(f) = fixture() else { return };
    let image = format!("oci-dir:{}", f.umoci.image());
    for (format, script) in [
        ("cyclonedx-json", "validate_cyclonedx.py"),
        ("spdx-json", "validate_spdx.py"),
    ] {
        let out = f.root.join(format!("sbom.{format}.json"));
        let doc = write_validated(&["sbom", &image, "-o", format], &out, script);
        let text = doc.to_string();
        assert!(text.contains("pkg:deb/debian/alpha@2.0-1?arch=amd64&distro=debian-12"));
        assert!(text.contains(&format!("pkg:pypi/pip@{}", f.pip_version)));
    }
}

#[test]
fn table_output_lists_name_version_type() {
    let Some(f) = fixture() else { return };
    let out = run(&[
        "sbom",
        &format!("oci-dir:{}", f.umoci.image()),
        "-o",
        "table",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(
        lines[1].starts_with("alpha") && lines[1].contains("2.0-1") && lines[1].ends_with("deb")
    );
    // Piped: no progress noise on stderr.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn distroless_status_d_root() {
    if !have("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = Deb {
        name: "libkiln1",
        version: "3.1-2",
        source: Some("kiln (3.1-2)"),
        files: &[("usr/lib/libkiln.so.1", b"\x7fELF fake but real bytes")],
    }
    .build(dir.path());
    // distroless writes each package's control paragraph to status.d/NAME
    // and its md5sums to status.d/NAME.md5sums.
    let root = dir.path().join("root");
    let status_d = root.join("var/lib/dpkg/status.d");
    std::fs::create_dir_all(&status_d).unwrap();
    let control = sh(Command::new("dpkg-deb").arg("-f").arg(&deb)).stdout;
    std::fs::write(status_d.join("libkiln1"), control).unwrap();
    let ctrl = dir.path().join("ctrl");
    sh(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    std::fs::copy(ctrl.join("md5sums"), status_d.join("libkiln1.md5sums")).unwrap();
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), OS_RELEASE).unwrap();

    let doc = json(&["sbom", &format!("dir:{}", root.display()), "-o", "json"]);
    assert_eq!(
        rows(&doc),
        vec![("libkiln1".into(), "3.1-2".into(), "amd64".into())]
    );
    let p = &doc["packages"][0];
    assert_eq!(p["source_name"], "kiln");
    assert_eq!(p["files"][0]["path"], "/usr/lib/libkiln.so.1");
    assert!(p["files"][0]["digest"]
        .as_str()
        .unwrap()
        .starts_with("md5:"));
}

#[test]
fn host_root_matches_dpkg_query() {
    if !have("dpkg-query") {
        return;
    }
    let out = sh(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
    ]));
    let mut want: Vec<(String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("ii"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect();
    want.sort();
    let doc = json(&["sbom", "dir:/", "-o", "json"]);
    let got = rows(&doc);
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    assert!(missing.is_empty(), "installed but not listed: {missing:?}");
    assert_eq!(
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "deb")
            .count(),
        want.len()
    );
}

#[test]
fn corpus_image_lists_exactly_the_true_118_packages() {
    let Some(corpus) = corpus() else { return };
    let image = corpus.join("images/bookworm-curl.oci.tar");
    let truth = std::fs::read_to_string(corpus.join("images/bookworm-curl.packages.tsv")).unwrap();
    let mut want: Vec<(String, String, String)> = truth
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].into(), f[1].into(), f[2].into())
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 118);

    let dir = tempfile::tempdir().unwrap();
    let cdx = dir.path().join("corpus.cdx.json");
    let source = format!("oci-archive:{}", image.display());
    let doc = write_validated(
        &["sbom", &source, "-o", "cyclonedx-json"],
        &cdx,
        "validate_cyclonedx.py",
    );
    let mut got: Vec<(String, String, String)> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| {
            let purl = c["purl"].as_str().unwrap();
            let arch = purl
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap()
                .to_string();
            (
                c["name"].as_str().unwrap().into(),
                c["version"].as_str().unwrap().into(),
                arch,
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);

    let spdx = dir.path().join("corpus.spdx.json");
    write_validated(
        &["sbom", &source, "-o", "spdx-json"],
        &spdx,
        "validate_spdx.py",
    );
}

#[test]
fn host_python_distributions_match_importlib() {
    let site = Path::new("/usr/lib/python3/dist-packages");
    if !site.is_dir() {
        eprintln!("skipping: no Debian dist-packages on this machine");
        return;
    }
    // importlib.metadata reads the same dist-info and egg-info directories.
    let out = sh(Command::new(python()).args([
        "-c",
        "import importlib.metadata as m, sys\nfor d in m.distributions(path=[sys.argv[1]]):\n    print(d.metadata['Name'], d.version, sep='\\t')",
        site.to_str().unwrap(),
    ]));
    let mut want: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    want.sort();
    want.dedup();
    if want.is_empty() {
        eprintln!("skipping: no Python distributions in {}", site.display());
        return;
    }
    let doc = json(&["sbom", &format!("dir:{}", site.display()), "-o", "json"]);
    let mut got = typed(&doc, "python");
    got.dedup();
    assert_eq!(got, want);
}

/// Unpack an oci-archive with umoci and return the rootfs.
fn umoci_unpack(archive: &Path, dir: &Path) -> PathBuf {
    let layout = dir.join("unpacked-layout");
    std::fs::create_dir_all(&layout).unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-xf")
        .arg(archive));
    let bundle = dir.join("unpacked-bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    bundle.join("rootfs")
}

#[test]
fn strip_keeps_layers_whiteouts_and_opaque_dirs() {
    let Some(f) = fixture() else { return };
    for (squash, layers) in [(false, 3), (true, 1)] {
        let out = f.root.join(format!("stripped-{squash}.tar"));
        let mut args = vec![
            "strip".to_string(),
            format!("oci-dir:{}", f.umoci.image()),
            format!("oci-archive:{}", out.display()),
        ];
        if squash {
            args.push("--squash".into());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        if have("skopeo") {
            let info = sh(Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci-archive:{}", out.display())));
            let info: Value = serde_json::from_slice(&info.stdout).unwrap();
            assert_eq!(info["Layers"].as_array().unwrap().len(), layers);
        }
        let dir = f.root.join(format!("unpack-{squash}"));
        std::fs::create_dir_all(&dir).unwrap();
        let rootfs = umoci_unpack(&out, &dir);
        assert!(rootfs.join("usr/bin/alpha").exists());
        assert!(
            !rootfs.join("usr/bin/beta").exists(),
            "whiteout of the purged package kept"
        );
        assert!(rootfs.join("usr/share/alpha/fresh").exists());
        assert!(
            !rootfs.join("usr/share/alpha/data").exists(),
            "opaque directory kept"
        );
        assert!(!rootfs.join("var/lib/dpkg").exists());
        assert!(!rootfs
            .join("usr/lib/python3/dist-packages")
            .read_dir()
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".dist-info")));
        // The entrypoint survives in the config.
        let doc = json(&[
            "sbom",
            &format!("oci-archive:{}", out.display()),
            "-o",
            "json",
        ]);
        assert_eq!(
            doc["packages"].as_array().unwrap().len(),
            0,
            "metadata is gone"
        );
    }
}
