//! Rust binaries built here with `cargo auditable`: the crates `kiln scan`
//! reads from their `.dep-v0` audit data match the build's `Cargo.lock`,
//! also after `strip`.

mod common;

use std::process::Command;

use common::*;

/// (name, version) of every package in a `Cargo.lock`.
fn lock_packages(lock: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut name = None;
    for l in lock.lines() {
        if let Some(n) = l.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(v) = l.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                rows.push((n, v.trim_matches('"').to_string()));
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn rust_crates_match_cargo_lock() {
    if !(have("cargo") && have("cargo-auditable") && have("strip")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(
        &src.join("Cargo.toml"),
        "[package]\nname = \"kilnapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nkilndep = { path = \"kilndep\" }\n",
    );
    write_file(
        &src.join("src/main.rs"),
        "fn main() { println!(\"{}\", kilndep::hello()); }\n",
    );
    write_file(
        &src.join("kilndep/Cargo.toml"),
        "[package]\nname = \"kilndep\"\nversion = \"0.3.1\"\nedition = \"2021\"\n",
    );
    write_file(
        &src.join("kilndep/src/lib.rs"),
        "pub fn hello() -> &'static str { \"hello from kilndep\" }\n",
    );
    sh(Command::new("cargo")
        .args(["auditable", "build", "--release", "--offline", "-q"])
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .current_dir(&src));
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let bin = root.join("usr/bin/kilnapp");
    std::fs::copy(dir.path().join("target/release/kilnapp"), &bin).unwrap();
    sh(Command::new("strip").arg(&bin));
    let lock = std::fs::read_to_string(src.join("Cargo.lock")).unwrap();
    let want = lock_packages(&lock);
    assert_eq!(want.len(), 2, "{lock}");

    let target = format!("dir:{}", root.display());
    // `kiln scan` inspects every ELF file; a DB is all it needs.
    let db = dir.path().join("kiln.db");
    let deb = Deb {
        name: "placeholder",
        version: "1",
        source: None,
        files: &[("usr/share/placeholder/README", b"placeholder for a DB\n")],
    }
    .build(dir.path());
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(&db)
        .arg("--deb")
        .arg(&deb));
    let doc = json(&["scan", "--db", db.to_str().unwrap(), &target, "-o", "json"]);
    let mut got: Vec<(String, String)> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "cargo")
        .map(|p| {
            assert_eq!(
                p["purl"],
                format!(
                    "pkg:cargo/{}@{}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            );
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    // `kiln sbom` reads the same audit data without a DB.
    let sbom = json(&["sbom", &target, "-o", "json"]);
    let mut listed: Vec<(String, String)> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "cargo")
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed, want, "kiln sbom");
}
