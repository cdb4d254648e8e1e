//! Function signatures: a program statically linked with Debian's own
//! `libz.a` (from the real zlib1g-dev package, fetched with apt) and then
//! stripped has no file hash, build-id or symbol in common with any
//! package, and still names zlib at its exact upstream version.

mod common;

use std::process::Command;

use common::*;

#[test]
fn stripped_static_zlib_is_found_by_its_functions() {
    if !(have("gcc") && have("strip") && have("apt-get") && have("dpkg-deb")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let debs = tmp.path().join("debs");
    if !apt_download(&debs, &["zlib1g-dev", "zlib1g"]) {
        return;
    }
    let db = tmp.path().join("kiln.db");
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(&db)
        .arg("--deb")
        .arg(&debs));

    // A program linking libz.a statically, stripped of every symbol.
    let dev = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("zlib1g-dev"))
        .unwrap();
    let x = tmp.path().join("x");
    sh(Command::new("dpkg-deb").arg("-x").arg(&dev).arg(&x));
    let libz = x.join("usr/lib/x86_64-linux-gnu/libz.a");
    let src = tmp.path().join("app.c");
    write_file(
        &src,
        r#"#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(int argc, char **argv) {
    unsigned char in[4096], out[8192], back[4096];
    memset(in, argc, sizeof in);
    uLongf n = sizeof out, m = sizeof back;
    if (compress2(out, &n, in, sizeof in, 9) != Z_OK) return 1;
    if (uncompress(back, &m, out, n) != Z_OK) return 2;
    gzFile f = gzopen("/dev/null", "wb"); gzwrite(f, in, 16); gzclose(f);
    printf("%lu %lu %lx %lx\n", n, m, crc32(0, in, sizeof in), adler32(1, in, sizeof in));
    return 0;
}
"#,
    );
    let root = tmp.path().join("root");
    let app = root.join("usr/local/bin/app");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    sh(Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&app)
        .arg(&src)
        .arg(format!("-I{}", x.join("usr/include").display()))
        .arg(&libz));
    sh(Command::new("strip").arg("--strip-all").arg(&app));
    sh(&mut Command::new(&app));

    let target = format!("dir:{}", root.display());
    let doc = json(&["scan", "--db", db.to_str().unwrap(), &target, "-o", "json"]);
    let zlib = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "generic" && p["name"] == "zlib")
        .unwrap_or_else(|| panic!("zlib not found: {doc:#}"));
    assert_eq!(zlib["version"], "1.2.13", "{zlib:#}");
    assert_eq!(zlib["purl"], "pkg:generic/zlib@1.2.13");
    let techniques: Vec<&str> = zlib["evidence"]["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["technique"].as_str().unwrap())
        .collect();
    assert!(techniques.contains(&"function-hashes"), "{techniques:?}");
    let notes: Vec<&str> = zlib["evidence"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("containment") && n.contains("zlib 1.2.13")),
        "{notes:?}"
    );
    // One component for the file, whatever agreed on it.
    let zlibs = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "zlib")
        .count();
    assert_eq!(zlibs, 1);
    // Nothing else is claimed for this program.
    let others: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "generic" && p["name"] != "zlib")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

/// Three Debian builds of OpenSSL (3.0.17, 3.0.20, 3.0.22, all in
/// bookworm): a stripped program statically linked with each one's
/// `libcrypto.a` is told apart by containment, at the exact version.
#[test]
fn stripped_static_openssl_versions_are_told_apart() {
    if !(have("gcc") && have("strip") && have("apt-get") && have("dpkg-deb")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let debs = tmp.path().join("debs");
    let versions = ["3.0.17", "3.0.20", "3.0.22"];
    let specs: Vec<String> = versions
        .iter()
        .map(|v| format!("libssl-dev={v}-1~deb12u2"))
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    if !apt_download(&debs, &specs) {
        return;
    }
    let db = tmp.path().join("kiln.db");
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(&db)
        .arg("--deb")
        .arg(&debs));
    let src = tmp.path().join("digest.c");
    write_file(
        &src,
        r#"#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
int main(void) {
    unsigned char md[32], out[64];
    unsigned int n;
    SHA256((const unsigned char *)"kiln", 4, md);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha512(), NULL);
    EVP_DigestUpdate(c, "x", 1);
    EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
    printf("%02x %u\n", md[0], n);
    return 0;
}
"#,
    );
    for v in versions {
        let deb = std::fs::read_dir(&debs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(&format!("_{v}-")))
            .unwrap();
        let x = tmp.path().join(format!("x-{v}"));
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
        let root = tmp.path().join(format!("root-{v}"));
        let app = root.join("usr/local/bin/digest");
        std::fs::create_dir_all(app.parent().unwrap()).unwrap();
        sh(Command::new("gcc")
            .args(["-O2", "-o"])
            .arg(&app)
            .arg(&src)
            .arg(format!("-I{}", x.join("usr/include").display()))
            .arg(x.join("usr/lib/x86_64-linux-gnu/libcrypto.a"))
            .args(["-lpthread", "-ldl"]));
        sh(Command::new("strip").arg("--strip-all").arg(&app));
        let target = format!("dir:{}", root.display());
        let doc = json(&["scan", "--db", db.to_str().unwrap(), &target, "-o", "json"]);
        let found: Vec<(String, String)> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "generic")
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![("openssl".to_string(), v.to_string())],
            "{doc:#}"
        );
    }

    // Hold 3.0.20 out of the DB: its program gets no exact version, only
    // the nearest known one.
    let held = tmp.path().join("held-out");
    std::fs::create_dir_all(&held).unwrap();
    for e in std::fs::read_dir(&debs).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().contains("_3.0.20-") {
            std::fs::copy(&p, held.join(p.file_name().unwrap())).unwrap();
        }
    }
    let db2 = tmp.path().join("held-out.db");
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(&db2)
        .arg("--deb")
        .arg(&held));
    let target = format!("dir:{}", tmp.path().join("root-3.0.20").display());
    let doc = json(&["scan", "--db", db2.to_str().unwrap(), &target, "-o", "json"]);
    let ssl = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openssl")
        .unwrap_or_else(|| panic!("openssl not found: {doc:#}"));
    assert_eq!(ssl["version"], "", "{ssl:#}");
    assert_eq!(ssl["evidence"]["resolution"], "version-not-in-db");
    let nearest = ssl["evidence"]["nearest_version"].as_str().unwrap();
    assert!(nearest == "3.0.17" || nearest == "3.0.22", "{nearest}");
}
