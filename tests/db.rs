//! `kiln db build` from the machine's apt indexes: selection by name
//! pattern, batches in their own transactions, and a build killed half-way
//! that the next build finishes without fetching anything twice.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn packages(db: &std::path::Path) -> i64 {
    let out = Command::new("sqlite3")
        .arg(format!("file:{}?mode=ro", db.display()))
        .arg("SELECT count(*) FROM package")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn an_interrupted_pattern_build_resumes_without_fetching_twice() {
    if !(have("apt-get") && have("sqlite3")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let args = |db: &std::path::Path| {
        let mut c = kiln();
        c.args(["db", "build", "-q", "--db"]).arg(db).args([
            "--apt-pattern",
            "zlib1g",
            "--apt-pattern",
            "libzstd1",
            "--apt-pattern",
            "liblz4-1",
            "--apt-pattern",
            "libbz2-1.0",
            "--batch",
            "1",
            "--jobs",
            "1",
        ]);
        c
    };
    // Killed as soon as the first batch is committed.
    let mut child = args(&db).spawn().unwrap();
    let start = Instant::now();
    while packages(&db) == 0 && start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = packages(&db);
    if first == 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "no package was fetched in CI"
        );
        eprintln!("skipping: apt could not fetch the packages (no package registry?)");
        return;
    }
    // The next build fetches only what is missing and derives once.
    let out = args(&db).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{first} already in the DB")),
        "resume skipped the committed batches: {err}"
    );
    assert_eq!(packages(&db), 4, "{err}");
    let stats = json(&["db", "stats", "--db", db.to_str().unwrap(), "-o", "json"]);
    assert_eq!(stats["derive_pending"], false, "{stats:#}");
    assert!(
        stats["template_projects"]
            .as_object()
            .is_some_and(|m| m.contains_key("zstd")),
        "zstd's version templates were learned: {stats:#}"
    );
    // A third build has nothing to do.
    let out = args(&db).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 already in the DB, 0 downloaded"), "{err}");
}
