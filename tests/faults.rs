//! Faults while kiln writes: `kill -9` at spread-out points, a full disk
//! (a small tmpfs) and a read-only destination (a read-only tmpfs), for
//! `db build`, `db vuln import`, `strip` and `slim --mode static`. The
//! previous DB or destination must stay intact and readable, anything
//! partial must be gone or named `.kiln-…`, and the error must name the
//! cause. Mounting needs root; elsewhere these tests say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs mounted for the test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        sh(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        Tmpfs(dir.to_path_buf())
    }

    /// Give the file system room again (a full disk cleared up).
    fn grow(&self) {
        sh(Command::new("mount")
            .args(["-o", "remount,size=64m"])
            .arg(&self.0));
    }

    fn read_only(&self) {
        sh(Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn ready() -> bool {
    if !is_root() {
        eprintln!("skipping: these tests mount tmpfs file systems, which needs root");
        return false;
    }
    have("mount") && have("dpkg-deb") && have("umoci") && have("gcc")
}

/// Spread-out kill points over `span`, reproducibly (a fixed LCG).
fn kill_points(span: Duration, n: usize) -> Vec<Duration> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let jitter = (x >> 33) % 1000;
            let slot = span.as_micros() as u64 * (i as u64 * 1000 + jitter) / (n as u64 * 1000);
            Duration::from_micros(slot)
        })
        .collect()
}

/// Run `args`, SIGKILL it after `after` (if still running).
fn run_killed(args: &[String], after: Duration) {
    let mut child = kiln()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn timed(args: &[String]) -> Duration {
    let start = Instant::now();
    let out = kiln().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// Files in `dir` other than `keep` must be kiln's marked temporaries.
fn only_marked_leftovers(dir: &Path, keep: &[&str]) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if keep
            .iter()
            .any(|k| name == *k || name.starts_with(&format!("{k}-")))
        {
            continue;
        }
        assert!(
            name.starts_with(".kiln-"),
            "unmarked leftover {name} in {}",
            dir.display()
        );
    }
}

/// A tmpfs size with room for `file` and little more.
fn room_for(file: &Path) -> String {
    let kib = std::fs::metadata(file).unwrap().len() / 1024;
    format!("{}k", kib + 48)
}

fn debs(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join(format!("debs-{n}"));
    std::fs::create_dir_all(&out).unwrap();
    let payload: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for i in 0..n {
        let name = format!("kiln-fault-{n}-{i}");
        let files: Vec<(String, Vec<u8>)> = (0..20)
            .map(|j| {
                let mut p = payload.clone();
                p.extend_from_slice(format!("{i}-{j}").as_bytes());
                (format!("usr/share/{name}/f{j}"), p)
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), &d[..])).collect();
        Deb {
            name: &name,
            version: "1.0-1",
            source: None,
            files: &refs,
        }
        .build(&out);
    }
    out
}

fn stats(db: &Path) -> serde_json::Value {
    json(&["db", "stats", "--db", db.to_str().unwrap(), "-o", "json"])
}

#[test]
fn db_build_survives_kill_full_disk_and_read_only() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = debs(&dir.join("a"), 1);
    let more = debs(&dir.join("b"), 30);
    let base = dir.join("base.db");
    db_build_debs(&base, &first);
    let args = |db: &Path| -> Vec<String> {
        [
            "db",
            "build",
            "-q",
            "--db",
            db.to_str().unwrap(),
            "--deb",
            more.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let probe = dir.join("probe.db");
    std::fs::copy(&base, &probe).unwrap();
    let span = timed(&args(&probe));
    let after = stats(&probe)["packages"].as_i64().unwrap();
    for (i, at) in kill_points(span, 20).into_iter().enumerate() {
        let work = dir.join(format!("k{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let db = work.join("kiln.db");
        std::fs::copy(&base, &db).unwrap();
        run_killed(&args(&db), at);
        // Readable, and every package whole: a build commits per batch.
        let n = stats(&db)["packages"].as_i64().unwrap();
        assert!((1..=after).contains(&n), "kill at {at:?}: {n} packages");
        only_marked_leftovers(&work, &["kiln.db"]);
    }

    let before = stats(&base);
    let full = Tmpfs::mount(&dir.join("full"), &room_for(&base));
    let db = full.0.join("kiln.db");
    std::fs::copy(&base, &db).unwrap();
    let err = failure(&args(&db).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("full") || err.contains("No space"), "{err}");
    // SQLite needs room for its shared-memory file even to read a WAL
    // database; once there is room, the old DB is there, whole.
    full.grow();
    assert_eq!(stats(&db)["packages"], before["packages"]);

    let ro = Tmpfs::mount(&dir.join("ro"), "16m");
    let db = ro.0.join("kiln.db");
    std::fs::copy(&base, &db).unwrap();
    ro.read_only();
    let err = failure(&args(&db).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.to_lowercase().contains("read-only") || err.contains("readonly"),
        "{err}"
    );
    assert_eq!(stats(&db)["packages"], before["packages"]);
}

fn osv_dir(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join(format!("osv-{n}"));
    std::fs::create_dir_all(&out).unwrap();
    for i in 0..n {
        let rec = serde_json::json!({
            "id": format!("DEBIAN-CVE-2099-{i:05}"),
            "modified": "2026-11-26T00:00:00Z",
            "details": "x".repeat(2000),
            "affected": [{"package": {"ecosystem": "Debian:12", "name": format!("pkg{i}")},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-1"}]}]}],
        });
        std::fs::write(out.join(format!("r{i}.json")), rec.to_string()).unwrap();
    }
    out
}

#[test]
fn vuln_import_survives_kill_full_disk_and_read_only() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let small = osv_dir(&dir.join("a"), 3);
    let big = osv_dir(&dir.join("b"), 3000);
    let base = dir.join("base.db");
    let import = |db: &Path, from: &Path| -> Vec<String> {
        [
            "db",
            "vuln",
            "import",
            "--db",
            db.to_str().unwrap(),
            "--osv",
            from.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    timed(&import(&base, &small));
    let count = |db: &Path| -> String {
        let out = sh(Command::new("sqlite3")
            .arg(db)
            .arg("SELECT count(*) FROM vuln_advisory"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // On a read-only file system a WAL database reads only as immutable.
    let count_ro = |db: &Path| -> String {
        let uri = format!("file:{}?immutable=1", db.display());
        let out = sh(Command::new("sqlite3")
            .arg("-readonly")
            .arg(uri)
            .arg("SELECT count(*) FROM vuln_advisory"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let old = count(&base);
    let probe = dir.join("probe.db");
    std::fs::copy(&base, &probe).unwrap();
    let span = timed(&import(&probe, &big));
    let new = count(&probe);
    assert_ne!(old, new);
    for (i, at) in kill_points(span, 20).into_iter().enumerate() {
        let work = dir.join(format!("k{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let db = work.join("kiln.db");
        std::fs::copy(&base, &db).unwrap();
        run_killed(&import(&db, &big), at);
        // All or nothing: an import is one transaction.
        let n = count(&db);
        assert!(n == old || n == new, "kill at {at:?}: {n} advisories");
        only_marked_leftovers(&work, &["kiln.db"]);
    }

    let full = Tmpfs::mount(&dir.join("full"), &room_for(&base));
    let db = full.0.join("kiln.db");
    std::fs::copy(&base, &db).unwrap();
    let err = failure(
        &import(&db, &big)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(err.contains("full") || err.contains("No space"), "{err}");
    full.grow();
    assert_eq!(count(&db), old);

    let ro = Tmpfs::mount(&dir.join("ro"), "16m");
    let db = ro.0.join("kiln.db");
    std::fs::copy(&base, &db).unwrap();
    ro.read_only();
    let err = failure(
        &import(&db, &big)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        err.to_lowercase().contains("read-only") || err.contains("readonly"),
        "{err}"
    );
    assert_eq!(count_ro(&db), old);
}

/// An image with a static entrypoint and some bulk, as an OCI layout.
fn image(dir: &Path) -> String {
    let src = dir.join("hello.c");
    write_file(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n",
    );
    let umoci = Umoci::new(&dir.join("img"), "v1");
    let root = umoci.rootfs();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    sh(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("bin/hello"))
        .arg(&src));
    std::fs::create_dir_all(root.join("usr/share/bulk")).unwrap();
    for i in 0..200 {
        let data: Vec<u8> = (0..25_000u32).map(|x| (x * 7 + i) as u8).collect();
        std::fs::write(root.join(format!("usr/share/bulk/f{i}")), data).unwrap();
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    umoci.repack();
    umoci.config(&["--config.entrypoint", "/bin/hello"]);
    format!("oci-dir:{}", umoci.image())
}

/// `kiln CMD SRC DEST …` (strip or slim): kill, full disk, read-only.
fn writer_faults(cmd: &[&str], extra: &[&str]) {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = image(dir);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dest = out_dir.join("image.tar");
    let args = |dest: &Path| -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.push(src.clone());
        a.push(format!("oci-archive:{}", dest.display()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // The destination holds an earlier result.
    let span = timed(&args(&dest));
    let old = std::fs::read(&dest).unwrap();
    for at in kill_points(span, 20) {
        run_killed(&args(&dest), at);
        let now = std::fs::read(&dest).unwrap();
        // Deterministic writes: the old and a new complete archive are
        // the same bytes; anything else is a torn write.
        assert_eq!(now, old, "kill at {at:?} changed the destination");
        only_marked_leftovers(&out_dir, &["image.tar"]);
    }

    let full = Tmpfs::mount(&dir.join("full"), "200k");
    let small = full.0.join("image.tar");
    std::fs::write(&small, b"previous").unwrap();
    let err = failure(&args(&small).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("No space") || err.contains("full"), "{err}");
    assert_eq!(std::fs::read(&small).unwrap(), b"previous");
    only_marked_leftovers(&full.0, &["image.tar"]);

    let ro = Tmpfs::mount(&dir.join("ro"), "16m");
    let kept = ro.0.join("image.tar");
    std::fs::write(&kept, b"previous").unwrap();
    ro.read_only();
    let err = failure(&args(&kept).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"previous");
}

#[test]
fn strip_survives_kill_full_disk_and_read_only() {
    writer_faults(&["strip", "-q"], &["--squash"]);
}

#[test]
fn slim_static_survives_kill_full_disk_and_read_only() {
    writer_faults(&["slim", "-q"], &["--mode", "static", "--report", "json"]);
}

/// A signature DB cut short, overwritten in the middle, of a newer schema,
/// or not a DB at all: `db stats` (which checks every page) fails with an
/// error naming the file; `scan` fails the same way, or — where the damage
/// is in pages it never reads — answers exactly as with the good DB.
#[test]
fn damaged_signature_dbs_are_clear_errors() {
    if !have("dpkg-deb") || !have("sqlite3") || !have("umoci") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let debs = debs(&dir.join("a"), 3);
    let good = dir.join("good.db");
    db_build_debs(&good, &debs);
    // A clean, checkpointed file to damage.
    sh(Command::new("sqlite3")
        .arg(&good)
        .arg("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;"));
    let bytes = std::fs::read(&good).unwrap();
    let umoci = Umoci::new(&dir.join("img"), "v1");
    std::fs::create_dir_all(umoci.rootfs().join("etc")).unwrap();
    std::fs::write(umoci.rootfs().join("etc/os-release"), "ID=debian\n").unwrap();
    umoci.repack();
    let src = format!("oci-dir:{}", umoci.image());

    let truncated = dir.join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let overwritten = dir.join("overwritten.db");
    let mut o = bytes.clone();
    let mid = o.len() / 2;
    for b in &mut o[mid..mid + 8192] {
        *b = 0xa5;
    }
    std::fs::write(&overwritten, o).unwrap();
    let garbage = dir.join("garbage.db");
    std::fs::write(&garbage, b"this is not a database").unwrap();
    let newer = dir.join("newer.db");
    std::fs::write(&newer, &bytes).unwrap();
    sh(Command::new("sqlite3")
        .arg(&newer)
        .arg("UPDATE meta SET value = '99' WHERE key = 'schema_version'"));

    let want =
        json(&["scan", &src, "--db", good.to_str().unwrap(), "-o", "json"])["packages"].clone();
    for db in [&truncated, &overwritten, &garbage, &newer] {
        let d = db.to_str().unwrap();
        let out = run(&["scan", &src, "--db", d, "-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if out.status.success() {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["packages"], want, "{d}: a different answer");
        } else {
            assert_eq!(out.status.code(), Some(2));
            assert!(stderr.contains(d), "{stderr}");
        }
        let err = failure(&["db", "stats", "--db", d]);
        assert!(err.contains(d), "{err}");
    }
    let err = failure(&["db", "stats", "--db", newer.to_str().unwrap()]);
    assert!(err.contains("99"), "{err}");
}
