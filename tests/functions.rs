//! Function signatures and code identity. Programs statically linked with
//! Debian's own static archives (`libz.a`, `libcrypto.a`, `libpng16.a`,
//! fetched with apt) and stripped have no file hash, build-id or symbol in
//! common with any package, and still name each library; the version is
//! exact only where the code pins it (the functions that tell the DB's
//! versions apart point to one), else "not in DB" with the nearest. A
//! packaged library stripped of symbols and build-id keeps its package and
//! revision; AArch64 code (Debian's cross gcc) is matched the same way.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// Debian packages fetched with apt into a fresh directory, and a DB built
/// from them: (temporary dir, the .debs' dir, the DB). `None` (the test
/// skips) without gcc, binutils, apt or dpkg-deb, or when apt cannot
/// fetch them.
fn apt_db(specs: &[&str]) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !(have("gcc") && have("strip") && have("apt-get") && have("dpkg-deb")) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let debs = tmp.path().join("debs");
    if !apt_download(&debs, specs) {
        return None;
    }
    let db = tmp.path().join("kiln.db");
    db_build_debs(&db, &debs);
    Some((tmp, debs, db))
}

#[test]
fn stripped_static_zlib_is_found_by_its_functions() {
    let Some((tmp, debs, db)) = apt_db(&["zlib1g-dev", "zlib1g"]) else {
        return;
    };

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
    // A static, non-PIE executable (the other programs here are PIE).
    sh(Command::new("gcc")
        .args(["-O2", "-static", "-no-pie", "-o"])
        .arg(&app)
        .arg(&src)
        .arg(format!("-I{}", x.join("usr/include").display()))
        .arg(&libz));
    sh(Command::new("strip").arg("--strip-all").arg(&app));
    sh(&mut Command::new(&app));
    // Renamed, with bytes appended (as packers and SlimToolkit's metadata
    // obfuscation do): the code is still there.
    let renamed = root.join("usr/local/bin/not-zlib");
    std::fs::rename(&app, &renamed).unwrap();
    let mut bytes = std::fs::read(&renamed).unwrap();
    bytes.extend((0..4096u32).map(|i| (i * 31 % 251) as u8));
    std::fs::write(&renamed, bytes).unwrap();
    sh(&mut Command::new(&renamed));

    let target = format!("dir:{}", root.display());
    let doc = scan_json(&db, &target);
    let zlib = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "generic" && p["name"] == "zlib")
        .unwrap_or_else(|| panic!("zlib not found: {doc:#}"));
    // Bookworm has one zlib, and most of a static program is other code:
    // the functions alone cannot tell 1.2.13 from a release the DB lacks.
    // zlib's own banner, linked in with inflate, reads the version; the
    // functions agree with it (their nearest version).
    assert_eq!(zlib["version"], "1.2.13", "{zlib:#}");
    assert_eq!(zlib["purl"], "pkg:generic/zlib@1.2.13");
    assert_eq!(zlib["evidence"]["resolution"], "component-version");
    let techniques: Vec<&str> = zlib["evidence"]["techniques"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["technique"].as_str().unwrap())
        .collect();
    assert!(techniques.contains(&"function-hashes"), "{techniques:?}");
    assert!(techniques.contains(&"version-string"), "{techniques:?}");
    let notes: Vec<&str> = zlib["evidence"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("containment")
            && n.contains("zlib 1.2.13")
            && n.contains("does not pin")),
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
    let versions = ["3.0.17", "3.0.20", "3.0.22"];
    let specs: Vec<String> = versions
        .iter()
        .map(|v| format!("libssl-dev={v}-1~deb12u2"))
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let Some((tmp, debs, db)) = apt_db(&specs) else {
        return;
    };
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
        let doc = scan_json(&db, &target);
        let found = typed(&doc, "generic");
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
    db_build_debs(&db2, &held);
    let target = format!("dir:{}", tmp.path().join("root-3.0.20").display());
    let doc = scan_json(&db2, &target);
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
    // Functions only 3.0.22 has, and functions only 3.0.17 has, put the
    // build between the two.
    assert_eq!(
        ssl["evidence"]["version_range"], "vers:generic/>3.0.17|<3.0.22",
        "{ssl:#}"
    );
}

/// C source of a small library whose versions differ the way Debian
/// revisions do: 1.0-2 fixes one function of 1.0-1; 1.1-1 keeps the fix
/// and rewrites two others.
fn demo_source(version: &str, fixed: bool, rewritten: bool) -> String {
    let mut c = format!(
        "#include <string.h>\nconst char *demo_version(void) {{ return \"demo {version}\"; }}\n"
    );
    for k in 0..16 {
        c.push_str(&format!(
            "int demo_f{k}(const int *a, int n) {{ int s = {k}; for (int i = 0; i < n; i++) {{ s = s * {m} + (a[i] ^ (s >> {r})); if (s & {k}) s -= a[i] * {k}; }} return s; }}\n",
            m = k + 3,
            r = k % 7 + 1
        ));
    }
    c.push_str(if fixed {
        "int demo_parse(const char *s, int n) { int v = 0; if (n > 64) return -1; for (int i = 0; i < n && s[i]; i++) { if (s[i] < '0' || s[i] > '9') return -2; v = v * 10 + s[i] - '0'; } return v; }\n"
    } else {
        "int demo_parse(const char *s, int n) { int v = 0; for (int i = 0; i < n && s[i]; i++) { if (s[i] < '0' || s[i] > '9') return -2; v = v * 10 + s[i] - '0'; } return v; }\n"
    });
    c.push_str(if rewritten {
        "long demo_g(const long *a, int n) { long m = 0; for (int i = 0; i < n; i++) m = a[i] > m ? a[i] : m; return m * 2 + n; }\n\
         long demo_h(const char *s) { long h = 5381; while (*s) h = h * 33 + (unsigned char)*s++; return h ^ (h >> 11); }\n"
    } else {
        "long demo_g(const long *a, int n) { long m = 0; for (int i = 0; i < n; i++) m += a[i] * (i + 1); return m - n; }\n\
         long demo_h(const char *s) { long h = 0; while (*s) h = (h << 4) + (unsigned char)*s++; return h; }\n"
    });
    c
}

/// Strip every symbol and remove the build-id note, as a slimming tool
/// might: no file hash or build-id of the package survives.
fn strip_all_and_build_id(path: &std::path::Path) {
    sh(Command::new("strip").arg("--strip-all").arg(path));
    sh(Command::new("objcopy")
        .arg("--remove-section=.note.gnu.build-id")
        .arg(path));
}

fn deb_of<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "deb" && p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not found: {doc:#}"))
}

/// A packaged library stripped of its symbols and build-id is still its
/// package at its exact Debian revision (same loaded sections), a copy
/// with a patched string is still that revision by its functions, and
/// with that revision held out of the DB it is "version not in DB" with
/// the nearest revision by code and the range its functions allow.
#[test]
fn stripped_distro_library_keeps_its_package_and_revision() {
    if !(have("gcc") && have("strip") && have("objcopy") && have("dpkg-deb")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let so = "usr/lib/x86_64-linux-gnu/libdemo.so.1";
    let builds = [
        ("1.0-1", "1.0", false, false),
        ("1.0-2", "1.0", true, false),
        ("1.1-1", "1.1", true, true),
    ];
    let mut debs = Vec::new();
    for (rev, upstream, fixed, rewritten) in builds {
        let src = dir.join(format!("demo-{rev}.c"));
        write_file(&src, &demo_source(upstream, fixed, rewritten));
        let lib = dir.join(format!("libdemo-{rev}.so"));
        sh(Command::new("gcc")
            .args(["-O2", "-shared", "-fPIC", "-Wl,-soname,libdemo.so.1", "-o"])
            .arg(&lib)
            .arg(&src));
        let bytes = std::fs::read(&lib).unwrap();
        debs.push(
            Deb {
                name: "libdemo1",
                version: rev,
                source: Some("demo"),
                files: &[(so, &bytes)],
            }
            .build(dir),
        );
    }
    let build_db = |name: &str, skip: Option<&str>| {
        let d = dir.join(format!("{name}-debs"));
        std::fs::create_dir_all(&d).unwrap();
        for deb in &debs {
            if skip.is_some_and(|s| deb.to_string_lossy().contains(&format!("_{s}_"))) {
                continue;
            }
            std::fs::copy(deb, d.join(deb.file_name().unwrap())).unwrap();
        }
        let db = dir.join(format!("{name}.db"));
        db_build_debs(&db, &d);
        db
    };
    let all = build_db("all", None);

    // Revision 1.0-2 installed without package metadata, then stripped.
    let root = dir.join("root");
    sh(Command::new("dpkg-deb").arg("-x").arg(&debs[1]).arg(&root));
    let lib = root.join(so);
    strip_all_and_build_id(&lib);
    let target = format!("dir:{}", root.display());
    let scan = |db: &std::path::Path| scan_json(db, &target);
    let doc = scan(&all);
    let p = deb_of(&doc, "libdemo1");
    assert_eq!(p["version"], "1.0-2", "{p:#}");
    assert_eq!(p["evidence"]["resolution"], "exact", "{p:#}");
    assert_eq!(
        p["evidence"]["occurrences"][0]["technique"],
        "elf-loaded-bytes"
    );
    // Code proves the code, not the build: said, and the confidence shows it.
    assert!(p["evidence"]["confidence"].as_f64().unwrap() <= 0.7);
    // No upstream component is invented for the package's own file.
    let generic = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "generic")
        .count();
    assert_eq!(generic, 0, "{doc:#}");

    // A byte-patched string: the loaded sections differ, the code does not.
    let mut bytes = std::fs::read(&lib).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"demo 1.0")
        .expect("version string in .rodata");
    bytes[at..at + 8].copy_from_slice(b"DEMO 1.0");
    std::fs::write(&lib, &bytes).unwrap();
    let doc = scan(&all);
    let p = deb_of(&doc, "libdemo1");
    assert_eq!(p["version"], "1.0-2", "{p:#}");
    assert_eq!(
        p["evidence"]["occurrences"][0]["technique"],
        "elf-functions"
    );

    // 1.0-2 held out: never a wrong exact revision; the nearest by code
    // (one function apart, against two) and the range the functions allow.
    let held = build_db("held", Some("1.0-2"));
    let doc = scan(&held);
    let p = deb_of(&doc, "libdemo1");
    assert_eq!(p["version"], "", "{p:#}");
    assert_eq!(p["evidence"]["resolution"], "version-not-in-db");
    assert_eq!(p["evidence"]["nearest_version"], "1.0-1", "{p:#}");
    assert_eq!(
        p["evidence"]["version_range"], "vers:deb/>1.0-1|<1.1-1",
        "{p:#}"
    );

    // The range and the techniques behind an answer reach CycloneDX and
    // SPDX documents that the official schemas accept.
    for (format, script) in [
        ("cyclonedx-json", "validate_cyclonedx.py"),
        ("spdx-json", "validate_spdx.py"),
    ] {
        let out = dir.join(format!("held.{format}.json"));
        let args = [
            "scan",
            "--db",
            held.to_str().unwrap(),
            &target,
            "-o",
            format,
        ];
        write_validated(&args, &out, script);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("vers:deb/>1.0-1|<1.1-1"), "{format}: {text}");
        if format == "cyclonedx-json" {
            assert!(text.contains("kiln:evidence:versionRange"));
        }
    }
    // With the revision known, CycloneDX names the technique that agreed.
    let out = dir.join("all.cdx.json");
    let args = [
        "scan",
        "--db",
        all.to_str().unwrap(),
        &target,
        "-o",
        "cyclonedx-json",
    ];
    let cdx = write_validated(&args, &out, "validate_cyclonedx.py");
    let props = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "libdemo1")
        .map(|c| c["properties"].to_string())
        .unwrap();
    assert!(
        props.contains(r#""name":"kiln:evidence:techniquesAgreeing","value":"elf-functions""#),
        "{props}"
    );
}

/// AArch64: a library's static archive, shipped in real arm64 debs at two
/// upstream versions and built with Debian's cross compiler, is found in
/// a stripped static aarch64 program at its exact version.
#[test]
fn aarch64_static_library_is_found_by_its_functions() {
    let (cc, strip) = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-strip");
    if !(have(cc) && have(strip) && have("dpkg-deb")) {
        eprintln!("skipping: needs {cc} (apt-get install gcc-aarch64-linux-gnu)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let mut archives = Vec::new();
    for (rev, upstream, changed) in [("1.0-1", "1.0", false), ("1.1-1", "1.1", true)] {
        let src = dir.join(format!("demo-{rev}.c"));
        write_file(&src, &demo_source(upstream, changed, changed));
        let obj = dir.join(format!("demo-{rev}.o"));
        sh(Command::new(cc)
            .args(["-O2", "-fPIC", "-c", "-o"])
            .arg(&obj)
            .arg(&src));
        let ar = dir.join(format!("libdemo-{rev}.a"));
        sh(Command::new("ar").arg("rcs").arg(&ar).arg(&obj));
        let bytes = std::fs::read(&ar).unwrap();
        Deb {
            name: "libdemo-dev",
            version: rev,
            source: Some("demo"),
            files: &[("usr/lib/aarch64-linux-gnu/libdemo.a", &bytes)],
        }
        .build_for(&debs, "arm64");
        archives.push(ar);
    }
    let db = dir.join("kiln.db");
    db_build_debs(&db, &debs);

    let app_src = dir.join("app.c");
    write_file(
        &app_src,
        "int demo_f3(const int *, int); int demo_parse(const char *, int);\n\
         int main(int argc, char **argv) { int a[2] = {argc, 3}; return demo_f3(a, 2) + demo_parse(argv[0], 4); }\n",
    );
    let root = dir.join("root");
    let app = root.join("usr/local/bin/app");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    sh(Command::new(cc)
        .args(["-O2", "-static", "-o"])
        .arg(&app)
        .arg(&app_src)
        .arg(&archives[0]));
    sh(Command::new(strip).arg("--strip-all").arg(&app));
    let target = format!("dir:{}", root.display());
    let doc = scan_json(&db, &target);
    let found = typed(&doc, "generic");
    assert_eq!(
        found,
        vec![("demo".to_string(), "1.0".to_string())],
        "{doc:#}"
    );
}

/// Two static libraries in one stripped program: Debian's `libpng16.a`
/// and the `libz.a` it needs are both named, each "not in DB" with its
/// one known version as the nearest (a static link does not pin it), and
/// nothing else is claimed.
#[test]
fn stripped_static_libpng_and_zlib_are_both_found() {
    let Some((tmp, debs, db)) = apt_db(&["libpng-dev", "zlib1g-dev"]) else {
        return;
    };
    let x = tmp.path().join("x");
    for e in std::fs::read_dir(&debs).unwrap() {
        sh(Command::new("dpkg-deb")
            .arg("-x")
            .arg(e.unwrap().path())
            .arg(&x));
    }
    let lib = x.join("usr/lib/x86_64-linux-gnu");
    let src = tmp.path().join("png.c");
    write_file(
        &src,
        r#"#include <png.h>
#include <stdio.h>
int main(void) {
    FILE *f = fopen("/dev/null", "wb");
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop i = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) return 1;
    png_init_io(p, f);
    png_set_IHDR(p, i, 4, 4, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, i);
    png_byte row[12] = {0};
    for (int y = 0; y < 4; y++) png_write_row(p, row);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &i);
    printf("%s\n", png_get_libpng_ver(NULL));
    return 0;
}
"#,
    );
    let root = tmp.path().join("root");
    let app = root.join("usr/local/bin/pngapp");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    sh(Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&app)
        .arg(&src)
        .arg(format!("-I{}", x.join("usr/include").display()))
        .arg(format!("-I{}", x.join("usr/include/libpng16").display()))
        .arg(lib.join("libpng16.a"))
        .arg(lib.join("libz.a"))
        .arg("-lm"));
    sh(Command::new("strip").arg("--strip-all").arg(&app));
    sh(&mut Command::new(&app));
    let target = format!("dir:{}", root.display());
    let doc = scan_json(&db, &target);
    let found: Vec<(String, String, String)> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "generic")
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["evidence"]["resolution"].as_str().unwrap().to_string(),
                p["evidence"]["nearest_version"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let expect = |n: &str, v: &str| {
        (
            n.to_string(),
            "version-not-in-db".to_string(),
            v.to_string(),
        )
    };
    assert_eq!(
        found,
        vec![expect("libpng", "1.6.39"), expect("zlib", "1.2.13")],
        "{doc:#}"
    );
    // The json shows the containment figures behind each claim.
    for p in doc["packages"].as_array().unwrap() {
        if p["type"] == "generic" {
            assert!(
                p["evidence"]["notes"].to_string().contains("containment"),
                "{p:#}"
            );
        }
    }
}
