//! Go binaries built here with Debian's Go toolchain: the modules
//! `kiln scan` reads from their build info match `go version -m`, for
//! plain, `-trimpath` and stripped (`-ldflags=-s -w`) builds.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// (name, version) rows as kiln reports them, from `go version -m`.
fn go_version_m(bin: &Path) -> Vec<(String, String)> {
    let out = sh(Command::new("go").arg("version").arg("-m").arg(bin));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut rows = Vec::new();
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let go = first.rsplit(' ').next().unwrap().trim_start_matches("go");
    rows.push(("stdlib".to_string(), go.to_string()));
    let mut last: Option<usize> = None;
    for l in lines {
        let cols: Vec<&str> = l.trim_start().split('\t').collect();
        match cols[0] {
            "mod" | "dep" => {
                rows.push((cols[1].to_string(), cols[2].to_string()));
                last = Some(rows.len() - 1);
            }
            // A replacement by a versioned module takes its place; a local
            // directory keeps the original path and version.
            "=>" if cols
                .get(2)
                .is_some_and(|v| !v.is_empty() && *v != "(devel)") =>
            {
                if let Some(i) = last {
                    rows[i] = (cols[1].to_string(), cols[2].to_string());
                }
            }
            _ => {}
        }
    }
    rows.sort();
    rows
}

#[test]
fn go_modules_match_go_version_m() {
    if !(have("go") && have("dpkg-deb")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(
        &src.join("go.mod"),
        "module example.com/kilntest\n\ngo 1.19\n\nrequire example.com/kilndep v1.2.3\n\nreplace example.com/kilndep v1.2.3 => ./kilndep\n",
    );
    write_file(
        &src.join("kilndep/go.mod"),
        "module example.com/kilndep\n\ngo 1.19\n",
    );
    write_file(
        &src.join("kilndep/dep.go"),
        "package kilndep\n\nfunc Hello() string { return \"hello from kilndep\" }\n",
    );
    write_file(
        &src.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/kilndep\"\n)\n\nfunc main() { fmt.Println(kilndep.Hello()) }\n",
    );
    let root = dir.path().join("root");
    let variants: [(&str, &[&str]); 3] = [
        ("plain", &[]),
        ("trimpath", &["-trimpath"]),
        ("stripped", &["-trimpath", "-ldflags=-s -w"]),
    ];
    for (name, flags) in variants {
        let bin = root.join(format!("usr/local/bin/app-{name}"));
        sh(Command::new("go")
            .arg("build")
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .env("GOPATH", dir.path().join("gopath"))
            .env("GOCACHE", dir.path().join("gocache"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local"));
    }
    // `kiln scan` inspects every ELF file; any signature DB will do, so
    // build one from a tiny real deb. `kiln sbom` reads the build info
    // too, from the ELF headers and the build-info section alone.
    let deb = Deb {
        name: "kiln-go-fixture",
        version: "1.0-1",
        source: None,
        files: &[("usr/share/kiln-go-fixture/README", b"fixture\n")],
    }
    .build(dir.path());
    let db = dir.path().join("kiln.db");
    let o = run(&[
        "db",
        "build",
        "--db",
        db.to_str().unwrap(),
        "--deb",
        deb.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc = json(&[
        "scan",
        &format!("dir:{}", root.display()),
        "--db",
        db.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let sbom = json(&["sbom", &format!("dir:{}", root.display()), "-o", "json"]);
    for (name, _) in variants {
        let bin = root.join(format!("usr/local/bin/app-{name}"));
        let want = go_version_m(&bin);
        assert!(
            want.iter()
                .any(|(p, v)| p == "example.com/kilndep" && v == "v1.2.3"),
            "{want:?}"
        );
        let location = format!("/usr/local/bin/app-{name}");
        assert_eq!(modules_at(&doc, &location), want, "{name}");
        assert_eq!(modules_at(&sbom, &location), want, "kiln sbom, {name}");
    }
    let dep = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "example.com/kilndep")
        .unwrap();
    assert_eq!(dep["purl"], "pkg:golang/example.com/kilndep@v1.2.3");
}

/// The sorted (module, version) pairs a report lists for one binary.
fn modules_at(doc: &Value, location: &str) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "go" && p["locations"][0]["path"] == location)
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    got
}
