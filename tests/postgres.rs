//! The shared PostgreSQL signature DB against the embedded SQLite one, on
//! a real server (`initdb`/`pg_ctl` on loopback) with real Debian packages
//! fetched through the machine's apt sources: the same scans, concurrent
//! builders, scans during a build, lossless export/import both ways, and
//! clear errors for bad databases.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::pg::Postgres;
use common::{apt_download, failure, have, kiln, run, sh};
use serde_json::{json, Value};

/// Real bookworm libraries (and jq, a program linking two of them).
const PACKAGES: &[&str] = &[
    "zlib1g",
    "libzstd1",
    "liblz4-1",
    "libbz2-1.0",
    "libexpat1",
    "libpcre2-8-0",
    "libyaml-0-2",
    "libffi8",
    "libjansson4",
    "libonig5",
    "libjq1",
    "jq",
    "libxxhash0",
    "libsqlite3-0",
];

struct Fixture {
    debs: Vec<PathBuf>,
    /// A root file system of some of the packages with dpkg's database
    /// gone and one library stripped: identified from bytes alone.
    root: PathBuf,
    osv: PathBuf,
}

fn fixture() -> Option<&'static Fixture> {
    static FIX: OnceLock<Option<Fixture>> = OnceLock::new();
    FIX.get_or_init(make_fixture).as_ref()
}

fn make_fixture() -> Option<Fixture> {
    if !have("dpkg-deb") || !have("strip") {
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres");
    let debs_dir = dir.join("debs");
    if !debs_dir.is_dir() && !apt_download(&debs_dir, PACKAGES) {
        return None;
    }
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&debs_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), PACKAGES.len(), "one .deb per package");
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    for d in debs
        .iter()
        .filter(|d| !d.to_string_lossy().contains("sqlite"))
    {
        sh(Command::new("dpkg-deb").arg("-x").arg(d).arg(&root));
    }
    std::fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
    )
    .unwrap();
    let lib = std::fs::read_dir(root.join("usr/lib/x86_64-linux-gnu"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("libexpatw.so.1."))
        .expect("libexpat in the root");
    sh(Command::new("strip").arg("--strip-all").arg(&lib));
    let osv = dir.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    let rec = json!({
        "schema_version": "1.6.0",
        "id": "DEBIAN-CVE-2099-0001",
        "modified": "2026-11-30T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": "zlib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:9.9-1"}]}],
        }],
    });
    std::fs::write(osv.join("DEBIAN-CVE-2099-0001.json"), rec.to_string()).unwrap();
    Some(Fixture { debs, root, osv })
}

fn build(db: &str, debs: &[PathBuf]) {
    let mut cmd = kiln();
    cmd.args(["db", "build", "-q", "--db", db]);
    for d in debs {
        cmd.arg("--deb").arg(d);
    }
    sh(&mut cmd);
}

fn out(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn scan(db: &str, f: &Fixture) -> String {
    scan_source(db, &format!("dir:{}", f.root.display()))
}

fn scan_source(db: &str, source: &str) -> String {
    out(&["scan", source, "--db", db, "-o", "json", "-q"])
}

/// `db stats` without what differs by engine (location, size on disk).
fn stats(db: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(&out(&["db", "stats", "--db", db, "-o", "json"])).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("path");
    o.remove("size_bytes");
    v
}

fn decompressed(path: &Path) -> Vec<u8> {
    let mut buf = Vec::new();
    zstd::Decoder::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    buf
}

fn export(db: &str, file: &Path) -> Vec<u8> {
    out(&[
        "db",
        "export",
        "--db",
        db,
        "--file",
        file.to_str().unwrap(),
        "-q",
    ]);
    decompressed(file)
}

#[test]
fn postgres_gives_the_same_scans_as_sqlite_and_exports_round_trip() {
    let (Some(f), Some(pg)) = (fixture(), Postgres::start()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lite = tmp.path().join("kiln.db");
    let lite = lite.to_str().unwrap();
    let url = pg.create("same");
    build(lite, &f.debs);
    build(&url, &f.debs);
    assert_eq!(stats(lite), stats(&url));
    let from_lite = scan(lite, f);
    assert_eq!(from_lite, scan(&url, f), "byte-identical scan JSON");
    let doc: Value = serde_json::from_str(&from_lite).unwrap();
    assert!(doc["packages"].as_array().unwrap().len() >= 10, "{doc}");

    // Many images in one run, in parallel through the pool: one JSON
    // document per line, in the order given, an error line for a source
    // that cannot be read, and exit status 2 for it.
    let root = format!("dir:{}", f.root.display());
    let usr = format!("dir:{}", f.root.join("usr").display());
    let o = run(&[
        "scan",
        &root,
        "dir:/nonexistent",
        &usr,
        &root,
        "--db",
        &url,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let lines: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0] == doc && lines[3] == doc, "{}", lines[0]);
    assert!(lines[1]["error"].as_str().unwrap().contains("/nonexistent"));
    assert_eq!(
        lines[2],
        serde_json::from_str::<Value>(&scan_source(&url, &usr)).unwrap()
    );

    // Advisories and `kiln vuln` through either engine.
    let osv = f.osv.to_str().unwrap();
    for db in [lite, url.as_str()] {
        out(&["db", "vuln", "import", "--db", db, "--osv", osv]);
    }
    let source = format!("dir:{}", f.root.display());
    let vuln = |db: &str| out(&["vuln", &source, "--db", db, "-o", "json", "-q"]);
    let (a, b) = (vuln(lite), vuln(&url));
    assert_eq!(a, b);
    assert!(a.contains("DEBIAN-CVE-2099-0001"), "{a}");

    // SQLite -> export -> PostgreSQL -> export: the same bytes; and back.
    let first = export(lite, &tmp.path().join("a.zst"));
    let copy = pg.create("copy");
    out(&[
        "db",
        "import",
        tmp.path().join("a.zst").to_str().unwrap(),
        "--db",
        &copy,
        "-q",
    ]);
    assert!(
        first == export(&copy, &tmp.path().join("b.zst")),
        "SQLite -> PostgreSQL is lossless"
    );
    let back = tmp.path().join("back.db");
    let back = back.to_str().unwrap();
    out(&[
        "db",
        "import",
        tmp.path().join("b.zst").to_str().unwrap(),
        "--db",
        back,
        "-q",
    ]);
    assert!(
        first == export(back, &tmp.path().join("c.zst")),
        "PostgreSQL -> SQLite is lossless"
    );
    assert_eq!(scan(&copy, f), from_lite);
    assert_eq!(scan(back, f), from_lite);
    // The PostgreSQL DB's own export equals the SQLite build's but for
    // ids: same tables, same row counts.
    let own = export(&url, &tmp.path().join("d.zst"));
    assert_eq!(
        own.len() / 1000,
        first.len() / 1000,
        "same size within rounding"
    );

    // An import never lands on a DB that holds packages.
    let err = failure(&[
        "db",
        "import",
        tmp.path().join("a.zst").to_str().unwrap(),
        "--db",
        &url,
    ]);
    assert!(err.contains("not empty"), "{err}");
    // A truncated export is refused and leaves the target untouched.
    let cut = tmp.path().join("cut.zst");
    let mut enc = zstd::Encoder::new(std::fs::File::create(&cut).unwrap(), 3).unwrap();
    std::io::Write::write_all(&mut enc, &first[..first.len() / 2]).unwrap();
    enc.finish().unwrap();
    let empty = pg.create("empty");
    let err = failure(&["db", "import", cut.to_str().unwrap(), "--db", &empty]);
    assert!(
        err.contains("ends early") || err.contains("malformed"),
        "{err}"
    );
    assert_eq!(pg.psql("empty", "SELECT count(*) FROM package"), "0");
}

#[test]
fn two_builders_at_once_equal_one_build_of_the_union() {
    let (Some(f), Some(pg)) = (fixture(), Postgres::start()) else {
        return;
    };
    let n = f.debs.len();
    // Overlapping halves: the middle third is in both.
    let (a, b) = (&f.debs[..n * 2 / 3], &f.debs[n / 3..]);
    let url = pg.create("shared");
    let spawn = |debs: &[PathBuf]| {
        let mut cmd = kiln();
        cmd.args(["db", "build", "-q", "--db", &url]);
        for d in debs {
            cmd.arg("--deb").arg(d);
        }
        cmd.stdout(Stdio::null()).spawn().unwrap()
    };
    let (mut one, mut two) = (spawn(a), spawn(b));
    assert!(one.wait().unwrap().success());
    assert!(two.wait().unwrap().success());
    let whole = pg.create("whole");
    build(&whole, &f.debs);
    assert_eq!(stats(&url), stats(&whole));
    assert_eq!(scan(&url, f), scan(&whole, f));
    let dupes = pg.psql(
        "shared",
        "SELECT count(*) FROM (SELECT path FROM path GROUP BY path HAVING count(*) > 1) d",
    );
    assert_eq!(dupes, "0");
}

#[test]
fn a_scan_during_a_build_sees_the_old_or_the_new_database() {
    let (Some(f), Some(pg)) = (fixture(), Postgres::start()) else {
        return;
    };
    let url = pg.create("live");
    let half = f.debs.len() / 2;
    build(&url, &f.debs[..half]);
    let before = scan(&url, f);
    let mut cmd = kiln();
    cmd.args(["db", "build", "-q", "--db", &url]);
    for d in &f.debs[half..] {
        cmd.arg("--deb").arg(d);
    }
    let mut builder = cmd.stdout(Stdio::null()).spawn().unwrap();
    let mut seen = Vec::new();
    while builder.try_wait().unwrap().is_none() {
        seen.push(scan(&url, f));
    }
    assert!(builder.wait().unwrap().success());
    let after = scan(&url, f);
    assert_ne!(before, after, "the build changed what the scan finds");
    eprintln!("{} scans ran during the build", seen.len());
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(*s == before || *s == after, "a scan saw a half-built DB");
    }
}

#[test]
fn bad_databases_are_clear_errors() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let err = failure(&[
        "db",
        "stats",
        "--db",
        "postgres://kiln@127.0.0.1:notaport/x",
    ]);
    assert!(err.contains("database URL"), "{err}");
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = failure(&[
        "db",
        "stats",
        "--db",
        &format!("postgres://kiln@127.0.0.1:{port}/x"),
    ]);
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("notapassword"));
    let err = failure(&[
        "db",
        "stats",
        "--db",
        &format!("postgres://kiln:notapassword@127.0.0.1:{port}/x"),
    ]);
    assert!(err.contains("kiln:***@"), "the password is hidden: {err}");

    let newer = pg.create("newer");
    let none = tempfile::tempdir().unwrap();
    let none = none.path().to_str().unwrap();
    sh(kiln()
        .args(["db", "vuln", "import", "--db", &newer, "--osv", none])
        .stderr(Stdio::null()));
    pg.psql(
        "newer",
        "UPDATE meta SET value = '99' WHERE key = 'vuln_schema_version'",
    );
    let err = failure(&["db", "vuln", "import", "--db", &newer, "--osv", none]);
    assert!(err.contains("schema version 99 is newer"), "{err}");
    pg.psql(
        "newer",
        "INSERT INTO meta (key, value) VALUES ('schema_version', '99')",
    );
    let err = failure(&["db", "stats", "--db", &newer]);
    assert!(err.contains("schema version 99 is newer"), "{err}");

    let alien = pg.create("alien");
    pg.psql("alien", "CREATE TABLE orders (id int)");
    let err = failure(&["db", "stats", "--db", &alien]);
    assert!(err.contains("not a kiln database"), "{err}");
    let err = failure(&["db", "build", "--db", &alien, "--deb", "/dev/null"]);
    assert!(err.contains("not a kiln database"), "{err}");

    let empty = pg.create("blank");
    let err = failure(&["db", "stats", "--db", &empty]);
    assert!(err.contains("no signature tables"), "{err}");
}
