//! Vendored components: versions learned from real packages read from
//! copies no package database lists.
//!
//! The self-contained test compiles a small library with gcc in three
//! versions: two go into the DB as real `.deb` packages (dpkg-deb), the
//! third — a version the DB has never seen — is vendored auditwheel-style
//! into a wheel next to a client library that only mentions the library's
//! version. The corpus test does the same with Debian's own OpenSSL and
//! the `cryptography` wheel that links OpenSSL statically.

mod common;

use std::path::Path;
use std::process::Command;

use common::{corpus, have, json, kiln, sh, Deb};
use serde_json::Value;

/// A library with the usual version carriers: a banner string, a version
/// function returning packed hex, one returning a string.
fn libdemo(dir: &Path, version: &str) -> Vec<u8> {
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    let src = dir.join(format!("demo-{version}.c"));
    std::fs::write(
        &src,
        format!(
            r#"
#include <stdio.h>
static const char banner[] = "libdemo version {version} (c) Demo Authors";
int demo_version(void) {{ return ({a} << 16) | ({b} << 8) | {c}; }}
const char *demo_version_string(void) {{ return "{version}"; }}
void demo_hello(void) {{ puts(banner); }}
"#,
            a = parts[0],
            b = parts[1],
            c = parts[2]
        ),
    )
    .unwrap();
    let out = dir.join(format!("libdemo.so.{version}"));
    sh(Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-Wl,-soname,libdemo.so.1", "-o"])
        .arg(&out)
        .arg(&src));
    sh(Command::new("strip").arg("--strip-unneeded").arg(&out));
    std::fs::read(&out).unwrap()
}

fn components(doc: &Value) -> Vec<(String, String, String, Option<String>)> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "generic")
        .map(|p| {
            (
                p["locations"][0]["path"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["parent"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Pack `root` (holding `demo_py/` and `demo_py.libs/`) into a wheel with
/// its dist-info, as auditwheel leaves them.
fn pack_wheel(dir: &Path, root: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(root.join("demo_py")).unwrap();
    std::fs::write(
        root.join("demo_py/__init__.py"),
        "\"\"\"A wheel that vendors libdemo; kiln's test fixture.\"\"\"\n\nVERSION = '0.1.0'\n",
    )
    .unwrap();
    let info = root.join("demo_py-0.1.0.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: demo_py\nVersion: 0.1.0\n\n",
    )
    .unwrap();
    std::fs::write(
        info.join("WHEEL"),
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    )
    .unwrap();
    std::fs::write(info.join("RECORD"), "").unwrap();
    let out = dir.join(format!(
        "{}-dist",
        root.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&out).unwrap();
    let wheel = out.join("demo_py-0.1.0-cp311-cp311-linux_x86_64.whl");
    sh(Command::new("sh")
        .arg("-c")
        .arg("cd \"$0\" && python3 -m zipfile -c \"$1\" demo_py demo_py.libs demo_py-0.1.0.dist-info")
        .arg(root)
        .arg(&wheel));
    wheel
}

/// Install `wheel` under `root` and delete its metadata: only the bytes
/// are left.
fn install_without_metadata(wheel: &Path, root: &Path) {
    unpack_without_metadata(
        wheel,
        &root.join("usr/lib/python3/dist-packages"),
        "demo_py-0.1.0.dist-info",
    );
}

/// Unpack `wheel` into `site` and delete its `dist_info` directory.
fn unpack_without_metadata(wheel: &Path, site: &Path, dist_info: &str) {
    std::fs::create_dir_all(site).unwrap();
    sh(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(wheel)
        .arg(site));
    std::fs::remove_dir_all(site.join(dist_info)).unwrap();
}

#[test]
fn unknown_version_of_a_vendored_library_is_read_with_learned_templates() {
    if !(have("gcc") && have("dpkg-deb") && have("strip") && have("python3")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("kiln.db");
    let db_s = db.to_str().unwrap();
    for v in ["1.2.3", "1.3.0"] {
        let lib = libdemo(dir, v);
        let so = format!("usr/lib/x86_64-linux-gnu/libdemo.so.{v}");
        let deb = Deb {
            name: "libdemo1",
            version: &format!("{v}-1"),
            source: Some("demo"),
            files: &[(so.as_str(), &lib)],
        }
        .build(dir);
        sh(kiln()
            .args(["db", "build", "-q", "--db", db_s, "--deb"])
            .arg(&deb));
    }

    // A wheel vendoring libdemo 1.4.7 (unknown to the DB), renamed as
    // auditwheel does, plus a client library that merely mentions versions.
    let wheel_root = dir.join("wheel");
    let libs = wheel_root.join("demo_py.libs");
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::write(
        libs.join("libdemo-1a2b3c4d.so.1.4.7"),
        libdemo(dir, "1.4.7"),
    )
    .unwrap();
    std::fs::create_dir_all(wheel_root.join("demo_py")).unwrap();
    let client = dir.join("client.c");
    std::fs::write(
        &client,
        r#"
#include <stdio.h>
void client_hello(void) { puts("needs Demo 1.2.3 or newer"); puts("1.2.3"); puts("libdemo 1.3.0"); }
"#,
    )
    .unwrap();
    sh(Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(wheel_root.join("demo_py/_client.so"))
        .arg(&client));
    let wheel = pack_wheel(dir, &wheel_root);
    sh(kiln()
        .args(["db", "build", "-q", "--db", db_s, "--wheel"])
        .arg(&wheel));

    // Install it, then delete the metadata: only the bytes are left.
    let root = dir.join("root");
    install_without_metadata(&wheel, &root);

    let target = format!("dir:{}", root.display());
    let doc = json(&["scan", "--db", db_s, &target, "-o", "json"]);
    let comps = components(&doc);
    let demo: Vec<_> = comps.iter().filter(|c| c.1 == "demo").collect();
    assert_eq!(demo.len(), 1, "{comps:?}");
    let (path, _, version, parent) = demo[0];
    assert!(
        path.ends_with("demo_py.libs/libdemo-1a2b3c4d.so.1.4.7"),
        "{path}"
    );
    assert_eq!(version, "1.4.7");
    assert_eq!(parent.as_deref(), Some("pkg:pypi/demo-py@0.1.0"));
    let pkg = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "generic" && p["name"] == "demo")
        .unwrap();
    assert_eq!(pkg["purl"], "pkg:generic/demo@1.4.7");
    let techniques: Vec<&str> = pkg["evidence"]["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["technique"].as_str().unwrap())
        .collect();
    for t in ["version-function", "version-string", "library-name"] {
        assert!(techniques.contains(&t), "{t} missing from {techniques:?}");
    }
    // The Python package is recognised from its files alone.
    assert!(
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["purl"] == "pkg:pypi/demo-py@0.1.0"),
        "{doc:#}"
    );
    // A client that only mentions versions is no libdemo.
    assert!(
        !comps.iter().any(|c| c.0.ends_with("_client.so")),
        "phantom component in the client: {comps:?}"
    );

    // CycloneDX nests the component inside the Python package.
    let cdx = dir.join("bom.json");
    sh(kiln()
        .args([
            "scan",
            "--db",
            db_s,
            &target,
            "-o",
            "cyclonedx-json",
            "--file",
        ])
        .arg(&cdx));
    let bom: Value = serde_json::from_slice(&std::fs::read(&cdx).unwrap()).unwrap();
    let host = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purl"] == "pkg:pypi/demo-py@0.1.0")
        .expect("python package component");
    assert_eq!(host["components"][0]["purl"], "pkg:generic/demo@1.4.7");
    common::validate("validate_cyclonedx.py", &cdx);
}

/// Debian's OpenSSL teaches the version string; `cryptography` links a
/// newer OpenSSL statically into `_rust.abi3.so`.
#[test]
fn corpus_cryptography_wheel_openssl_without_dist_info() {
    let Some(corpus) = corpus() else { return };
    if !have("python3") {
        return;
    }
    let wheels = corpus.join("wheels");
    let wheel =
        wheels.join("cryptography-44.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let db_s = db.to_str().unwrap();
    let debs = corpus.join("debian-bookworm");
    sh(kiln()
        .args(["db", "build", "-q", "--db", db_s, "--deb"])
        .arg(&debs)
        .arg("--wheel")
        .arg(&wheel));
    let site = tmp.path().join("root/venv/lib/python3.11/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    sh(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&site));
    for e in std::fs::read_dir(&site).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dist-info") {
            std::fs::remove_dir_all(p).unwrap();
        }
    }
    let target = format!("dir:{}", tmp.path().join("root").display());
    let doc = json(&["scan", "--db", db_s, &target, "-o", "json"]);
    let comps = components(&doc);
    assert_eq!(
        comps,
        vec![(
            "/venv/lib/python3.11/site-packages/cryptography/hazmat/bindings/_rust.abi3.so".into(),
            "openssl".into(),
            "3.4.0".into(),
            Some("pkg:pypi/cryptography@44.0.0".into())
        )]
    );
}

/// Is `python3 -m pip` there? Outside CI its absence skips the test; in
/// CI it fails it.
fn have_pip() -> bool {
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pip {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 -m pip is missing in CI: .ci/run must install python3-pip"
        );
        eprintln!("skipping: python3 -m pip is not available");
    }
    pip
}

/// The wheel of `spec` (`NAME==VERSION`), fetched with pip and unpacked
/// into `site` (relative to `dir/root`) with its `*.dist-info` deleted: a
/// `dir:` source of the package's files alone.
fn pip_install_without_metadata(dir: &Path, site: &str, spec: &str) -> String {
    let wheels = dir.join("wheels");
    sh(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&wheels)
        .arg(spec));
    let (name, version) = spec.split_once("==").unwrap();
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&format!("{name}-{version}-")))
        .unwrap();
    let site = dir.join("root").join(site);
    unpack_without_metadata(&wheel, &site, &format!("{name}-{version}.dist-info"));
    format!("dir:{}", dir.join("root").display())
}

/// `--pip NAME==VERSION` fetches the wheel through the machine's pip, and
/// the installed package is recognised from its files alone.
#[test]
fn pip_wheel_is_fetched_and_recognised_without_metadata() {
    if !have_pip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let db_s = db.to_str().unwrap();
    sh(kiln().args(["db", "build", "-q", "--db", db_s, "--pip", "six==1.16.0"]));
    let target =
        pip_install_without_metadata(tmp.path(), "usr/lib/python3/dist-packages", "six==1.16.0");
    let doc = json(&["scan", "--db", db_s, &target, "-o", "json"]);
    let six = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purl"] == "pkg:pypi/six@1.16.0")
        .unwrap_or_else(|| panic!("six not recognised: {doc:#}"));
    assert_eq!(six["found_by"], "kiln-rainbow-wheel");
}

/// A library of 32 functions whose shapes differ (small shift counts and
/// loop lengths survive normalisation), as real code does. From 1.1 on,
/// functions 0..8 gain a step; from 1.2 on, functions 8..16 too. With
/// `version_fn`, `demo_version()` returns the packed version.
fn libgen(dir: &Path, version: &str, version_fn: bool) -> Vec<u8> {
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    let mut src = String::from("#include <stdint.h>\n");
    if version_fn {
        src.push_str(&format!(
            "int demo_version(void) {{ return ({} << 16) | ({} << 8) | {}; }}\n",
            parts[0], parts[1], parts[2]
        ));
    }
    for i in 0..32u32 {
        let mut body = String::new();
        for k in 0..(3 + i % 5) {
            let s = 1 + (i * 7 + k * 3) % 29;
            body.push_str(&match (i * 7 + k) % 4 {
                0 => format!("    h ^= h >> {s};\n"),
                1 => format!("    h = h * 31 + (x << {s});\n"),
                2 => format!("    h = (h << {s}) | (h >> (64 - {s}));\n"),
                _ => format!(
                    "    for (int j = 0; j < {}; j++) h += (x >> j) ^ {s};\n",
                    3 + k
                ),
            });
        }
        let changed_in_1_1 = i < 8 && parts[1] >= 1;
        let changed_in_1_2 = (8..16).contains(&i) && parts[1] >= 2;
        if changed_in_1_1 || changed_in_1_2 {
            body.push_str("    h -= (h >> 5) ^ (x << 3);\n");
        }
        src.push_str(&format!(
            "uint64_t demo_f{i}(uint64_t x) {{\n    uint64_t h = x + {i};\n{body}    return h;\n}}\n"
        ));
    }
    let tag = if version_fn { "fn" } else { "nofn" };
    let c = dir.join(format!("gen-{version}-{tag}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(format!("libdemo-{version}-{tag}.so"));
    sh(Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-Wl,-soname,libdemo.so.1", "-o"])
        .arg(&out)
        .arg(&c));
    sh(Command::new("strip").arg("--strip-unneeded").arg(&out));
    std::fs::read(&out).unwrap()
}

/// The holdout (#13): demo 1.0.0 and 1.1.0 built as real debs, only 1.0.0
/// ingested, 1.2.0 vendored into a wheel. With its version function the
/// wheel's copy is read as 1.2.0; without it, only function hashes name
/// the project, and they do not pin a version: "not in DB", nearest 1.0.0,
/// never 1.0.0 as exact.
#[test]
fn a_release_the_db_lacks_is_read_or_left_unpinned_never_guessed() {
    if !(have("gcc") && have("dpkg-deb") && have("strip") && have("python3")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("kiln.db");
    let db_s = db.to_str().unwrap();
    let debs: Vec<std::path::PathBuf> = ["1.0.0", "1.1.0"]
        .iter()
        .map(|v| {
            let lib = libgen(dir, v, true);
            let so = format!("usr/lib/x86_64-linux-gnu/libdemo.so.{v}");
            Deb {
                name: "libdemo1",
                version: &format!("{v}-1"),
                source: Some("demo"),
                files: &[(so.as_str(), &lib)],
            }
            .build(dir)
        })
        .collect();
    sh(kiln()
        .args(["db", "build", "-q", "--db", db_s, "--deb"])
        .arg(&debs[0]));

    for (case, version_fn) in [("with-fn", true), ("without-fn", false)] {
        let wheel_root = dir.join(case);
        let libs = wheel_root.join("demo_py.libs");
        std::fs::create_dir_all(&libs).unwrap();
        // auditwheel's name from the soname: no version in it.
        std::fs::write(
            libs.join("libdemo-1a2b3c4d.so.1"),
            libgen(dir, "1.2.0", version_fn),
        )
        .unwrap();
        let wheel = pack_wheel(dir, &wheel_root);
        let root = dir.join(format!("{case}-root"));
        install_without_metadata(&wheel, &root);
        let target = format!("dir:{}", root.display());
        let doc = json(&["scan", "--db", db_s, &target, "-o", "json"]);
        let demo: Vec<&Value> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "generic" && p["name"] == "demo")
            .collect();
        assert_eq!(demo.len(), 1, "{case}: {doc:#}");
        let ev = &demo[0]["evidence"];
        eprintln!("{case}: {} {ev:#}", demo[0]["version"]);
        let notes = ev["notes"].to_string();
        assert!(notes.contains("function-hashes"), "{case}: {notes}");
        assert_ne!(demo[0]["version"], "1.0.0", "{case}: a false exact version");
        if version_fn {
            assert_eq!(demo[0]["version"], "1.2.0", "{case}: {ev:#}");
            assert!(
                ev["techniques"].to_string().contains("version-function"),
                "{ev:#}"
            );
        } else {
            assert_eq!(demo[0]["version"], "", "{case}: {ev:#}");
            assert_eq!(ev["resolution"], "version-not-in-db", "{case}: {ev:#}");
            assert_eq!(ev["nearest_version"], "1.0.0", "{case}: {ev:#}");
            assert!(notes.contains("does not pin"), "{case}: {notes}");
        }
    }
}

/// A wheel version the DB lacks is never reported as the one it has: with
/// idna 3.6 in the DB, an installed idna 3.7 (whose `core.py` and
/// `idnadata.py` changed) is `version-not-in-db`, nearest 3.6 — files
/// answer to their path in the site directory, where wheels record them,
/// so a changed file contradicts 3.6. (It was a false exact 3.6.)
#[test]
fn a_wheel_version_the_db_lacks_is_not_reported_as_one_it_has() {
    if !have_pip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let db_s = db.to_str().unwrap();
    sh(kiln().args(["db", "build", "-q", "--db", db_s, "--pip", "idna==3.6"]));
    let target =
        pip_install_without_metadata(tmp.path(), "venv/lib/python3.11/site-packages", "idna==3.7");
    let doc = json(&["scan", "--db", db_s, &target, "-o", "json"]);
    let idna = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "idna")
        .unwrap_or_else(|| panic!("idna not found: {doc:#}"));
    assert_eq!(
        idna["evidence"]["resolution"], "version-not-in-db",
        "{idna:#}"
    );
    assert_eq!(idna["evidence"]["nearest_version"], "3.6");
    assert_ne!(idna["version"], "3.6");
}
