//! `kiln slim` on an image the test builds: a C program compiled with gcc
//! and a Python script that reads a data file and imports a plugin by a
//! name it computes, on a root filesystem made of this machine's own
//! Debian files (python3.11 and its libraries), packed with umoci.
//!
//! Static analysis cannot see the computed import, and `--verify` (runc)
//! catches it; tracing the run keeps it (and a file the script only
//! tests for, seen through seccomp notifications); the result passes
//! verification, `skopeo inspect` and `umoci unpack`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn build_image(dir: &Path) -> Option<String> {
    let python = Path::new("/usr/bin/python3.11");
    if !python.exists() {
        eprintln!("skipping: Debian's /usr/bin/python3.11 is not installed (python3-minimal)");
        return None;
    }
    let umoci = Umoci::new(dir, "app");
    let root = umoci.rootfs();
    // Debian's merged-/usr layout.
    for (link, target) in [
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("bin", "usr/bin"),
    ] {
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    for d in ["tmp", "etc", "app/plugins", "usr/local/bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // A C program.
    let src = dir.join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <zlib.h>\nint main(void) { printf(\"hello from C, zlib %s\\n\", zlibVersion()); return 0; }\n",
    )
    .unwrap();
    let hello = root.join("usr/local/bin/hello");
    sh(Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&hello)
        .arg(&src)
        .arg("-lz"));
    let mut libs = ldd(&hello);
    libs.extend(ldd(python));
    libs.sort();
    libs.dedup();
    for l in &libs {
        copy_in(&root, l);
    }
    copy_in(&root, python);
    // The standard library, without what no test needs.
    let stdlib = root.join("usr/lib/python3.11");
    std::fs::create_dir_all(&stdlib).unwrap();
    sh(Command::new("sh")
        .arg("-c")
        .arg(
            "tar -C /usr/lib/python3.11 --exclude=./test --exclude=./idlelib --exclude=./tkinter \
         --exclude=./ensurepip --exclude=./lib2to3 --exclude=__pycache__ --exclude=./site-packages \
         --exclude=./dist-packages -cf - . | tar -C \"$0\" -xf -",
        )
        .arg(&stdlib));
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(
        root.join("app/main.py"),
        r#"import importlib
import os

# The plugin's name is computed at run time: no static analysis can see it.
name = os.environ.get("PLUGIN", "gr" + "eet")
plugin = importlib.import_module("plugins." + name)
# A file that is only tested for, never opened: fanotify cannot see it.
feature = "on" if os.path.exists("/app/feature.flag") else "off"
with open(os.path.join(os.path.dirname(__file__), "data.txt")) as f:
    print(plugin.greet(f.read().strip()), "feature", feature)
"#,
    )
    .unwrap();
    std::fs::write(root.join("app/plugins/__init__.py"), "").unwrap();
    std::fs::write(
        root.join("app/plugins/greet.py"),
        "def greet(who):\n    return f'hello, {who}'\n",
    )
    .unwrap();
    std::fs::write(root.join("app/data.txt"), "kiln\n").unwrap();
    std::fs::write(root.join("app/feature.flag"), "").unwrap();
    std::fs::create_dir_all(root.join("app/www")).unwrap();
    std::fs::write(
        root.join("app/www/index.html"),
        "<p>served by a slim image</p>\n",
    )
    .unwrap();
    // Bulk a slim image must drop.
    std::fs::create_dir_all(root.join("usr/share/bulk")).unwrap();
    std::fs::write(root.join("usr/share/bulk/blob"), vec![7u8; 4 << 20]).unwrap();
    umoci.repack();
    umoci.config(&[
        "--config.entrypoint",
        "python3.11",
        "--config.cmd",
        "/app/main.py",
        "--config.workingdir",
        "/app",
        "--config.env",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "--config.label",
        "org.example.app=demo",
    ]);
    Some(format!("oci-dir:{}", umoci.image()))
}

/// The test image, when this machine can run it (gcc, umoci, runc, root).
fn runnable_image(dir: &Path) -> Option<String> {
    if !(have("gcc") && have("umoci") && have("runc") && have("skopeo")) {
        return None;
    }
    if !is_root() {
        eprintln!("skipping: kiln slim runs containers with runc, which needs root");
        return None;
    }
    build_image(dir)
}

/// Unpack an `oci-archive:` with skopeo and umoci (proving both accept
/// it); returns the root filesystem.
fn unpack_with_umoci(archive: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let layout = dir.join("layout");
    sh(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:slim", layout.display())));
    let bundle = dir.join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:slim", layout.display()))
        .arg(&bundle));
    bundle.join("rootfs")
}

fn slim(src: &str, dest: &Path, mode: &str) -> std::process::Output {
    slim_with(src, dest, &["--mode", mode])
}

/// `kiln slim SRC oci-archive:DEST ARGS… --probe-cmd hello --verify
/// --report json`.
fn slim_with(src: &str, dest: &Path, args: &[&str]) -> std::process::Output {
    kiln()
        .args(["slim", src])
        .arg(format!("oci-archive:{}", dest.display()))
        .args(args)
        .args(["--probe-cmd", "hello", "--verify", "--report", "json"])
        .output()
        .unwrap()
}

#[test]
fn slim_static_misses_the_computed_import_and_tracing_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = runnable_image(tmp.path()) else {
        return;
    };

    // Static analysis alone: the verification run fails and says why.
    let out = slim(&src, &tmp.path().join("static.tar"), "static");
    assert!(
        !out.status.success(),
        "static slimming should fail verification"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verification failed"), "{err}");
    assert!(err.contains("No module named 'plugins'"), "{err}");
    assert!(err.contains("missing: Python module 'plugins'"), "{err}");

    for mode in ["dynamic", "both"] {
        let dest = tmp.path().join(format!("{mode}.tar"));
        let out = slim(&src, &dest, mode);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let probes = report["probes"].as_array().unwrap();
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[0]["original"]["stdout"], "hello, kiln feature on\n");
        assert!(probes[1]["original"]["stdout"]
            .as_str()
            .unwrap()
            .starts_with("hello from C, zlib "));
        assert!(probes.iter().all(|p| p["same"] == true), "{report:#}");
        let (after, before) = (
            report["bytes_after"].as_u64().unwrap(),
            report["bytes_before"].as_u64().unwrap(),
        );
        // Tracing keeps what the runs opened; static analysis also keeps
        // the interpreter's whole standard library.
        if mode == "dynamic" {
            assert!(
                after < before / 2,
                "{mode}: {after} of {before} bytes kept: {:#}",
                report["largest_removed"]
            );
        }
        assert!(after < before, "{mode}: nothing removed");

        // A valid image: skopeo reads it, umoci unpacks it, the config is kept.
        let image = format!("oci-archive:{}", dest.display());
        let inspect = sh(Command::new("skopeo").args(["inspect", "--config", &image]));
        let cfg: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(cfg["config"]["Entrypoint"][0], "python3.11");
        assert_eq!(cfg["config"]["Cmd"][0], "/app/main.py");
        assert_eq!(cfg["config"]["WorkingDir"], "/app");
        assert_eq!(cfg["config"]["Labels"]["org.example.app"], "demo");
        let rootfs = unpack_with_umoci(&dest, &tmp.path().join(mode));
        assert!(rootfs.join("app/plugins/greet.py").exists());
        assert!(rootfs.join("app/data.txt").exists());
        // Seen only through seccomp notifications (a stat, no open).
        assert!(rootfs.join("app/feature.flag").exists());
        assert!(!rootfs.join("usr/share/bulk/blob").exists());
    }
}

#[test]
fn slim_without_an_entrypoint_is_a_clear_error() {
    if !have("umoci") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let umoci = Umoci::new(tmp.path(), "empty");
    std::fs::write(umoci.rootfs().join("file"), "x").unwrap();
    umoci.repack();
    let src = format!("oci-dir:{}", umoci.image());
    let dest = format!("oci-archive:{}", tmp.path().join("out.tar").display());
    let err = failure(&["slim", &src, &dest, "--mode", "static"]);
    assert!(err.contains("no entrypoint or cmd"), "{err}");
}

/// A server: the entrypoint runs detached, HTTP probes reach it through its
/// network namespace, probe commands run beside it with `runc exec`.
#[test]
fn slim_a_server_with_http_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = runnable_image(tmp.path()) else {
        return;
    };
    let dest = tmp.path().join("server.tar");
    let out = slim_with(
        &src,
        &dest,
        &[
            "--mode",
            "dynamic",
            "--entrypoint",
            "python3.11 -m http.server 8000 --bind 127.0.0.1 --directory /app/www",
            "--cmd",
            "",
            "--http-probe",
            "8000/index.html",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 3, "{report:#}");
    assert_eq!(probes[1]["original"]["exit"], 200);
    assert_eq!(
        probes[1]["original"]["stdout"],
        "<p>served by a slim image</p>\n"
    );
    assert_eq!(probes[1]["same"], true);
    assert_eq!(probes[2]["same"], true);
    // The HTTP server module was traced in; the CGI one it never loaded was not.
    let rootfs = unpack_with_umoci(&dest, &tmp.path().join("server"));
    assert!(rootfs.join("usr/lib/python3.11/http/server.py").exists());
    assert!(rootfs.join("app/www/index.html").exists());
    assert!(!rootfs.join("usr/lib/python3.11/smtplib.py").exists());
}

/// Ctrl-C in the middle of a traced run: kiln stops, and no container,
/// tmpfs or fanotify mark is left behind.
#[test]
fn slim_interrupted_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = runnable_image(tmp.path()) else {
        return;
    };
    // Scratch space (and the tmpfs mounted in it) where this test can see it.
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let child = kiln()
        .args(["slim", &src])
        .arg(format!(
            "oci-archive:{}",
            tmp.path().join("out.tar").display()
        ))
        .args([
            "--mode",
            "dynamic",
            "--probe-cmd",
            "python3.11 -c 'import time; time.sleep(120)'",
        ])
        .env("TMPDIR", &scratch)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the sleeping probe's container exists: its state
    // directory under runc's root, named after kiln's pid.
    let prefix = format!("kiln-{}-", child.id());
    let running = || {
        std::fs::read_dir("/run/runc")
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .count()
            })
            .unwrap_or(0)
    };
    // The entrypoint runs first (container 0); the probe is container 1.
    let probe_bundle = || {
        std::fs::read_dir(&scratch)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("bundle-1").exists())
    };
    let start = std::time::Instant::now();
    while !(probe_bundle() && running() > 0) && start.elapsed() < std::time::Duration::from_secs(50)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if running() == 0 {
        let out = child.wait_with_output().unwrap();
        panic!(
            "the probe never started: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    sh(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(running(), 0, "containers left behind");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(scratch.to_str().unwrap()),
        "mounts left behind: {mounts}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch left behind"
    );
    assert!(!tmp.path().join("out.tar").exists());
}

/// Dynamic mode without root says so (and how to avoid it).
#[test]
fn slim_dynamic_needs_root() {
    if !(have("umoci") && have("setpriv")) {
        return;
    }
    if !is_root() {
        eprintln!("skipping: dropping privileges needs root to start with");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let umoci = Umoci::new(tmp.path(), "t");
    umoci.config(&["--config.entrypoint", "/bin/true"]);
    sh(Command::new("chmod").args(["-R", "a+rX"]).arg(tmp.path()));
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "slim",
            &format!("oci-dir:{}", umoci.image()),
            "oci-archive:/tmp/kiln-never-written.tar",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dynamic mode needs root"), "{err}");
    assert!(err.contains("--mode static"), "{err}");
}

#[test]
fn slim_pushes_to_a_registry_the_same_image_it_writes_to_an_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = runnable_image(tmp.path()) else {
        return;
    };
    if !have("docker-registry") {
        return;
    }
    let reg = common::registry::Registry::start(tmp.path(), None, common::registry::Auth::None);
    let archive = tmp.path().join("slim.tar");
    let out = slim(&src, &archive, "dynamic");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = format!("registry:{}/app:slim", reg.host);
    let out = kiln()
        .args([
            "slim",
            &src,
            &dest,
            "--mode",
            "dynamic",
            "--probe-cmd",
            "hello",
        ])
        .args(["--verify", "--report", "json", "--tls-verify=false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The manifest in the registry is the archive's, byte for byte: the
    // same input and flags give the same image.
    let pushed = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:slim", reg.host),
    ]))
    .stdout;
    let local = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", archive.display()),
    ]))
    .stdout;
    assert_eq!(pushed, local);
}
