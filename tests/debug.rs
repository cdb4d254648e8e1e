//! `kiln debug`, `kiln cp`, `kiln port-forward` and `kiln ps` against a
//! distroless-style target the test builds and runs under `runc run -d`:
//! Debian's nginx (from its real .deb) and its shared libraries only, no
//! shell, running as uid 65532 on a read-only root filesystem, with a
//! tmpfs /tmp.
//!
//! The target must come out exactly as it went in: every file and
//! directory entry of its root hashed before and after, the host's and the
//! target's mount tables compared, and the processes in its pid namespace
//! listed after every command.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::Digest;

const PAGE: &str = "<h1>kiln debug fixture</h1>\n";
const PORT: u16 = 8080;

fn nginx_conf() -> String {
    format!(
        "worker_processes 2;\npid /tmp/nginx.pid;\nerror_log stderr;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path /tmp/body;\n  proxy_temp_path /tmp/proxy;\n  \
         fastcgi_temp_path /tmp/fastcgi;\n  uwsgi_temp_path /tmp/uwsgi;\n  scgi_temp_path /tmp/scgi;\n  \
         server {{ listen 127.0.0.1:{PORT}; root /srv/www; }}\n}}\n"
    )
}

fn ready() -> bool {
    root_or_skip("kiln debug joins namespaces and mounts")
        && have("runc")
        && have("dpkg-deb")
        && have("busybox")
        && have("umoci")
        && have("script")
        && have("setpriv")
}

/// The nginx root filesystem: the binary from Debian's .deb, the host's
/// copies of its libraries, a config, a page, symlinks and a sparse file.
fn build_rootfs(dir: &Path) -> Option<PathBuf> {
    let debs = dir.join("debs");
    if !apt_download(&debs, &["nginx"]) {
        return None;
    }
    let deb = std::fs::read_dir(&debs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nginx_")
        })?;
    let x = dir.join("x");
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let root = dir.join("rootfs");
    for (link, target) in [
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
    ] {
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    let nginx = x.join("usr/sbin/nginx");
    for lib in ldd(&nginx) {
        copy_in(&root, &lib);
    }
    sh(Command::new("cp")
        .arg("-a")
        .arg(&nginx)
        .arg(root.join("usr/sbin/nginx")));
    write_file(&root.join("etc/nginx/nginx.conf"), &nginx_conf());
    write_file(&root.join("etc/passwd"), "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n");
    write_file(&root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n");
    write_file(&root.join("srv/www/index.html"), PAGE);
    // An absolute symlink, and one that climbs far above the root.
    std::os::unix::fs::symlink("/etc/nginx", root.join("etc/current")).unwrap();
    std::os::unix::fs::symlink("/../../../../../tmp", root.join("etc/escape")).unwrap();
    // A 64 MiB file with two 4 KiB data blocks.
    let sparse = root.join("srv/data.bin");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[7u8; 4096], 1 << 20).unwrap();
    f.write_all_at(&[9u8; 4096], 40 << 20).unwrap();
    for d in ["tmp", "proc", "dev", "sys", "home/nonroot"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // runc gives a tmpfs the mode of the directory it covers.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    Some(root)
}

/// `runc run -d` of `args` over `rootfs` as uid 65532 with a read-only root.
fn run_container(dir: &Path, rootfs: &Path, id: &str, args: &[&str]) -> RuncContainer {
    run_container_with(dir, rootfs, id, args, |_| {})
}

/// As `run_container`, with a last change to the runtime config.
fn run_container_with(
    dir: &Path,
    rootfs: &Path,
    id: &str,
    args: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> RuncContainer {
    let bundle = dir.join(format!("bundle-{id}"));
    std::fs::create_dir_all(&bundle).unwrap();
    sh(Command::new("runc").arg("spec").current_dir(&bundle));
    let path = bundle.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    c["process"]["user"] = serde_json::json!({ "uid": 65532, "gid": 65532 });
    c["hostname"] = "nginx-fixture".into();
    c["annotations"] =
        serde_json::json!({ "org.opencontainers.image.ref.name": "fixture/nginx:test" });
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=64m"]
    }));
    edit(&mut c);
    std::fs::write(&path, c.to_string()).unwrap();
    RuncContainer::run(&bundle, id)
}

fn debug(args: &[&str]) -> std::process::Output {
    run(&[&["debug"], args].concat())
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kiln failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry under `root`: path, type, mode, owner, size, mtime, link
/// target and content hash.
fn fingerprint(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let mut line = format!(
            "{} {:o} {}:{} {} {}.{}",
            e.path().strip_prefix(root).unwrap().display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        );
        if m.file_type().is_symlink() {
            line += &format!(" -> {}", std::fs::read_link(e.path()).unwrap().display());
        } else if m.is_file() {
            line += &format!(
                " {}",
                hex::encode(sha2::Sha256::digest(std::fs::read(e.path()).unwrap()))
            );
        }
        out.push(line);
    }
    out
}

/// Host pids in the pid namespace of `pid`.
fn pid_ns_members(pid: i32) -> BTreeSet<i32> {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .collect()
}

/// Attach helpers of sessions into the target of `pid` (a helper joins the
/// target's network namespace; other tests' sessions, running at the same
/// time, are in other ones).
fn helpers_running(pid: i32) -> usize {
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__kiln-attach-helper"))
        })
        .filter(|e| std::fs::read_link(e.path().join("ns/net")).ok().as_ref() == Some(&net))
        .count()
}

/// What must hold after every command: the root unchanged, no mount
/// added anywhere, no process left in the target's pid namespace.
struct Invariants {
    rootfs: PathBuf,
    files: Vec<String>,
    host_mounts: String,
    target_mounts: String,
    procs: BTreeSet<i32>,
    pid: i32,
}

impl Invariants {
    fn take(rootfs: &Path, pid: i32) -> Self {
        Invariants {
            rootfs: rootfs.into(),
            files: fingerprint(rootfs),
            host_mounts: std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
            target_mounts: std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap(),
            procs: pid_ns_members(pid),
            pid,
        }
    }

    fn check(&self, after: &str) {
        // A killed session's processes take a moment to be reaped.
        let start = Instant::now();
        while pid_ns_members(self.pid) != self.procs && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            pid_ns_members(self.pid),
            self.procs,
            "processes left in the target after {after}"
        );
        assert_eq!(helpers_running(self.pid), 0, "a helper outlived {after}");
        assert_eq!(
            fingerprint(&self.rootfs),
            self.files,
            "the target's root changed after {after}"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
            self.host_mounts,
            "host mounts changed after {after}"
        );
        assert_eq!(
            std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap(),
            self.target_mounts,
            "target mounts changed after {after}"
        );
    }
}

/// Wait until nginx answers inside the container.
fn wait_for_nginx(id: &str) {
    let start = Instant::now();
    loop {
        let out = debug(&[
            id,
            "--",
            "wget",
            "-qO-",
            &format!("http://127.0.0.1:{PORT}/"),
        ]);
        if String::from_utf8_lossy(&out.stdout).contains("kiln debug fixture") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nginx did not answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if String::from_utf8_lossy(&out.stderr).contains("is stopped") {
            panic!("nginx exited: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    rootfs: PathBuf,
    nginx: RuncContainer,
}

fn fixture(tag: &str) -> Option<Fixture> {
    if !ready() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let rootfs = build_rootfs(&dir)?;
    let id = format!("kiln-test-{tag}-{}", std::process::id());
    let nginx = run_container(
        &dir,
        &rootfs,
        &id,
        &[
            "/usr/sbin/nginx",
            "-g",
            "daemon off;",
            "-c",
            "/etc/nginx/nginx.conf",
        ],
    );
    wait_for_nginx(&id);
    Some(Fixture {
        _dir: tmp,
        dir,
        rootfs,
        nginx,
    })
}

#[test]
fn debug_sessions_leave_the_target_as_it_was() {
    let Some(f) = fixture("session") else { return };
    let id = f.nginx.id.as_str();
    let inv = Invariants::take(&f.rootfs, f.nginx.pid);

    let out = ok(&debug(&[
        id,
        "--",
        "sh",
        "-c",
        &format!("ps; wget -qO- http://127.0.0.1:{PORT}/"),
    ]));
    assert!(
        out.contains("nginx: master process") && out.contains("nginx: worker process"),
        "{out}"
    );
    assert!(out.contains("kiln debug fixture"), "{out}");
    inv.check("ps and wget");

    let out = ok(&debug(&[id, "--", "cat", "/target/etc/nginx/nginx.conf"]));
    assert_eq!(out, nginx_conf());
    // The target's root is read-only, through the session too.
    let out = debug(&[id, "--", "touch", "/target/etc/new"]);
    assert!(!out.status.success());
    inv.check("cat and touch");

    let out = ok(&debug(&["--chroot", id, "--", "ls", "-a", "/"]));
    let names: BTreeSet<&str> = out.split_whitespace().collect();
    for n in ["etc", "usr", "srv", "tmp", ".kiln"] {
        assert!(names.contains(n), "{n} missing from {out}");
    }
    let out = ok(&debug(&[
        "--chroot",
        id,
        "--",
        "cat",
        "/etc/current/nginx.conf",
    ]));
    assert_eq!(out, nginx_conf());
    inv.check("--chroot");

    // As the target's own user: no capabilities.
    let out = ok(&debug(&[
        "--user",
        id,
        "--",
        "sh",
        "-c",
        "id -u; grep CapEff /proc/self/status",
    ]));
    assert!(
        out.starts_with("65532\n") && out.contains("0000000000000000"),
        "{out}"
    );
    let out = ok(&debug(&["--user=1000:1001", id, "--", "id"]));
    assert!(out.starts_with("uid=1000 gid=1001"), "{out}");
    let out = ok(&debug(&[
        id,
        "--",
        "sh",
        "-c",
        "id -u; grep CapBnd /proc/self/status",
    ]));
    assert!(
        out.starts_with("0\n") && out.contains("00000000a80425fb"),
        "root with runc's default capabilities: {out}"
    );

    // The exit code is the command's.
    assert_eq!(
        debug(&[id, "--", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );

    // pid:N reaches any process.
    let out = ok(&debug(&[
        &format!("pid:{}", f.nginx.pid),
        "--",
        "cat",
        "/target/srv/www/index.html",
    ]));
    assert_eq!(out, PAGE);
    inv.check("pid:N");

    // An interactive shell on a terminal.
    let exe = env!("CARGO_BIN_EXE_kiln");
    let mut child = Command::new("script")
        .args(["-qec", &format!("{exe} debug {id}"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo hi-$((40+2))\ntty\nexit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hi-42"), "{text}");
    assert!(
        text.contains("/dev/pts/"),
        "the shell has a terminal: {text}"
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
    inv.check("an interactive shell");

    // SIGTERM ends the session and everything it started.
    let mut child = kiln()
        .args([
            "debug",
            id,
            "--",
            "sh",
            "-c",
            "sleep 1000 & (sleep 1000 &); sleep 1000",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(pid_ns_members(f.nginx.pid).len() >= inv.procs.len() + 3);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    inv.check("SIGTERM");

    // Ctrl-C (SIGINT to the foreground process group) likewise.
    let mut child = Command::new("setsid")
        .args([
            env!("CARGO_BIN_EXE_kiln"),
            "debug",
            id,
            "--",
            "sh",
            "-c",
            "(sleep 1000 &); sleep 1000",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    inv.check("Ctrl-C");

    // A command that does not exist: 127, as a shell says, and nothing left.
    let out = debug(&[id, "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
    inv.check("a missing command");

    // kiln ps sees the container, with its image annotation.
    let out = ok(&run(&["ps", "-o", "json"]));
    let row: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == id)
        .expect("kiln ps lists the container");
    assert_eq!(row["status"], "running");
    assert_eq!(row["pid"], f.nginx.pid);
    assert_eq!(row["image"], "fixture/nginx:test");
    assert_eq!(row["root"], "/run/runc");
    inv.check("kiln ps");
}

/// A target in a user namespace of its own (container root is host uid
/// 100000): the session joins it, so `--user` is the target's uid as the
/// namespace numbers it.
#[test]
fn user_namespaced_targets_are_joined() {
    let Some(f) = fixture("userns") else { return };
    // The mapped root must reach the root filesystem through the test's
    // private temporary directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = format!("{}-ns", f.nginx.id);
    let args = [
        "/usr/sbin/nginx",
        "-g",
        "daemon off;",
        "-c",
        "/etc/nginx/nginx.conf",
    ];
    let c = run_container_with(&f.dir, &f.rootfs, &id, &args, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "type": "user" }));
        let map = serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        // sysfs and cgroups cannot be mounted from a user namespace: bind them.
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
        mounts.push(
            serde_json::json!({ "destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] }),
        );
    });
    wait_for_nginx(&id);
    let inv = Invariants::take(&f.rootfs, c.pid);
    let out = ok(&debug(&[
        &id,
        "--",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ps",
    ]));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        map,
        ["0", "100000", "65536"],
        "in the target's user namespace: {out}"
    );
    assert!(out.contains("nginx: worker process"), "{out}");
    let out = ok(&debug(&["--user", &id, "--", "id", "-u"]));
    assert_eq!(out, "65532\n");
    let out = ok(&debug(&[
        "--chroot",
        &id,
        "--",
        "cat",
        "/srv/www/index.html",
    ]));
    assert_eq!(out, PAGE);
    inv.check("a user-namespaced target");
}

#[test]
fn cp_and_port_forward_stay_inside_the_target() {
    let Some(f) = fixture("cp") else { return };
    let id = f.nginx.id.as_str();
    let inv = Invariants::take(&f.rootfs, f.nginx.pid);
    let out_dir = f.dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();

    // Out, through an absolute symlink, resolved inside the target.
    ok(&run(&[
        "cp",
        &format!("{id}:/etc/current"),
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("current/nginx.conf")).unwrap(),
        nginx_conf()
    );
    // A directory keeps modes, ownership and holes.
    ok(&run(&[
        "cp",
        &format!("{id}:/srv"),
        out_dir.to_str().unwrap(),
    ]));
    let (a, b) = (f.rootfs.join("srv/data.bin"), out_dir.join("srv/data.bin"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let mb = std::fs::metadata(&b).unwrap();
    assert!(
        mb.blocks() * 512 < 1 << 20,
        "holes kept: {} blocks",
        mb.blocks()
    );
    assert_eq!(mb.mode(), std::fs::metadata(&a).unwrap().mode());
    assert_eq!(mb.mtime(), std::fs::metadata(&a).unwrap().mtime());
    // A symlink that climbs above the root lands inside it (the target's
    // /tmp), never on the host's.
    let marker = format!("kiln-cp-{}", std::process::id());
    let out = run(&[
        "cp",
        &format!("{id}:/etc/escape/{marker}"),
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    // As a tar stream.
    let tar = ok(&run(&["cp", &format!("{id}:/etc/nginx"), "-"]));
    assert!(tar.contains("worker_processes"));
    inv.check("cp out");

    // In: to the writable /tmp, through a symlink made in the target.
    ok(&debug(&[
        id,
        "--",
        "sh",
        "-c",
        &format!("mkdir /target/tmp/real && ln -s /tmp/real /target/tmp/{marker}"),
    ]));
    let local = f.dir.join("upload");
    write_file(&local.join("a.txt"), "uploaded\n");
    std::os::unix::fs::symlink("a.txt", local.join("link")).unwrap();
    ok(&run(&[
        "cp",
        local.to_str().unwrap(),
        &format!("{id}:/tmp/{marker}"),
    ]));
    let out = ok(&debug(&[
        id,
        "--",
        "sh",
        "-c",
        "cat /target/tmp/real/upload/a.txt; readlink /target/tmp/real/upload/link",
    ]));
    assert_eq!(out, "uploaded\na.txt\n");
    assert!(
        !Path::new("/tmp/real/upload").exists(),
        "the host's /tmp was written"
    );
    // Through the escaping symlink: the target's /tmp.
    ok(&run(&[
        "cp",
        local.join("a.txt").to_str().unwrap(),
        &format!("{id}:/etc/escape/{marker}-2"),
    ]));
    let out = ok(&debug(&[
        id,
        "--",
        "cat",
        &format!("/target/tmp/{marker}-2"),
    ]));
    assert_eq!(out, "uploaded\n");
    assert!(
        !Path::new(&format!("/tmp/{marker}-2")).exists(),
        "the host's /tmp was written"
    );
    // '..' above the root is refused.
    let err = failure(&[
        "cp",
        local.join("a.txt").to_str().unwrap(),
        &format!("{id}:/../../{marker}"),
    ]);
    assert!(err.contains("climbs out of the target's root"), "{err}");
    // The read-only root refuses writes.
    let err = failure(&[
        "cp",
        local.join("a.txt").to_str().unwrap(),
        &format!("{id}:/etc/"),
    ]);
    assert!(err.contains("Read-only file system"), "{err}");
    inv.check("cp in");

    port_forward_serves_concurrent_requests(id);
    inv.check("port-forward");
}

fn port_forward_serves_concurrent_requests(id: &str) {
    let mut pf = kiln()
        .args(["port-forward", id, &format!(":{PORT}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(pf.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
                let mut body = String::new();
                s.read_to_string(&mut body).unwrap();
                body
            })
        })
        .collect();
    for t in threads {
        let body = t.join().unwrap();
        assert!(
            body.starts_with("HTTP/1.1 200") && body.ends_with(PAGE),
            "{body}"
        );
    }
    // The port is taken while it runs.
    let port = addr.rsplit(':').next().unwrap();
    let e = failure(&["port-forward", id, &format!("{port}:{PORT}")]);
    assert!(e.contains("in use"), "{e}");
    Command::new("kill")
        .args(["-INT", &pf.id().to_string()])
        .status()
        .unwrap();
    assert!(pf.wait().unwrap().success());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("100 connections"), "{rest}");
}

/// Containers kiln made for image sessions (`kiln-PID-N`) still listed.
fn throwaways() -> Vec<String> {
    ok(&run(&["ps", "-o", "json"]))
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .filter(|id| {
            let parts: Vec<&str> = id.split('-').collect();
            parts.len() == 3
                && parts[0] == "kiln"
                && parts[1..].iter().all(|p| p.parse::<u64>().is_ok())
        })
        .collect()
}

#[test]
fn images_and_toolboxes() {
    let Some(f) = fixture("image") else { return };
    let cache = f.dir.join("cache");
    let env_run = |args: &[&str]| {
        kiln()
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };
    // The nginx root as an image: debugged without running it.
    let umoci = Umoci::new(&f.dir.join("img"), "v1");
    sh(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", f.rootfs.display()))
        .arg(umoci.rootfs()));
    umoci.repack();
    umoci.config(&["--config.entrypoint", "/usr/sbin/nginx"]);
    let image = format!("oci-dir:{}", umoci.image());
    let out = ok(&env_run(&[
        "debug",
        &image,
        "--",
        "sh",
        "-c",
        "ls /target/usr/sbin; ps; cat /proc/net/dev",
    ]));
    assert!(out.contains("nginx\n"), "{out}");
    assert!(
        !out.contains("nginx:"),
        "the entrypoint must not run: {out}"
    );
    assert!(
        out.contains("lo:") && !out.contains("eth0"),
        "no network: {out}"
    );
    assert_eq!(
        throwaways(),
        Vec::<String>::new(),
        "the throwaway container is gone"
    );
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".kiln-debug-"))
        .collect();
    assert!(left.is_empty(), "work directories left: {left:?}");
    let out = ok(&env_run(&[
        "debug",
        "--chroot",
        &image,
        "--",
        "ls",
        "/usr/sbin",
    ]));
    assert_eq!(out, "nginx\n");

    // A toolbox image with a dynamically linked shell and its libraries.
    let tools = Umoci::new(&f.dir.join("tools"), "v1");
    for lib in ldd(Path::new("/bin/dash")) {
        copy_in(&tools.rootfs(), &lib);
    }
    copy_in(
        &tools.rootfs(),
        &std::fs::canonicalize("/bin/dash").unwrap(),
    );
    tools.repack();
    let toolbox = format!("oci-dir:{}", tools.image());
    let dash = std::fs::canonicalize("/bin/dash").unwrap();
    let dash = dash.to_str().unwrap();
    for _ in 0..2 {
        let out = ok(&env_run(&[
            "debug",
            &f.nginx.id,
            "--toolbox",
            &toolbox,
            "--",
            dash,
            "-c",
            "echo $((6*7)); echo /target/srv/*",
        ]));
        assert_eq!(out, "42\n/target/srv/data.bin /target/srv/www\n");
    }
    // The same toolbox from a registry (Debian's docker-registry on
    // loopback): the same digest, so the cached copy serves it.
    if have("docker-registry") && have("skopeo") {
        let reg = common::registry::Registry::start(&f.dir, None, common::registry::Auth::None);
        sh(Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}", tools.image()))
            .arg(format!("docker://{}/tools:v1", reg.host)));
        let remote = format!("registry:{}/tools:v1", reg.host);
        let out = ok(&env_run(&[
            "debug",
            &f.nginx.id,
            "--toolbox",
            &remote,
            "--tls-verify=false",
            "--",
            dash,
            "-c",
            "echo from-registry",
        ]));
        assert_eq!(out, "from-registry\n");
    }
    let cached: Vec<String> = std::fs::read_dir(cache.join("kiln/toolbox"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sha256-"))
        .collect();
    assert_eq!(
        cached.len(),
        1,
        "unpacked once, keyed by digest: {cached:?}"
    );
}

#[test]
fn bad_targets_and_toolboxes_are_refused_clearly() {
    let Some(f) = fixture("bad") else { return };
    let id = f.nginx.id.as_str();
    let e = failure(&["debug", "no-such-container", "--", "true"]);
    assert!(
        e.contains("no runc container named 'no-such-container'") && e.contains("/run/runc"),
        "{e}"
    );
    let e = failure(&["debug", "pid:2147483000", "--", "true"]);
    assert!(e.contains("no process with pid 2147483000"), "{e}");
    let e = failure(&["cp", "pid:2147483000:/etc/passwd", "/tmp/x"]);
    assert!(e.contains("no process with pid 2147483000"), "{e}");

    // Stopped: a container whose process has exited.
    let stopped = run_container(
        &f.dir,
        &f.rootfs,
        &format!("{id}-stopped"),
        &["/usr/sbin/nginx", "-v"],
    );
    let start = Instant::now();
    while !ok(&run(&["ps", "-o", "json"])).contains("\"stopped\"") {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = failure(&["debug", &stopped.id, "--", "true"]);
    assert!(e.contains("is stopped"), "{e}");
    // Paused.
    sh(Command::new("runc").args(["pause", id]));
    let e = failure(&["debug", id, "--", "true"]);
    sh(Command::new("runc").args(["resume", id]));
    assert!(e.contains("is paused") && e.contains("resume"), "{e}");

    // Not root.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_kiln"),
            "debug",
            id,
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("needs root"), "{e}");

    // A toolbox that is not an image.
    let not_image = f.dir.join("notes.tar");
    write_file(&not_image, "just text\n");
    let e = failure(&[
        "debug",
        id,
        "--toolbox",
        &format!("oci-archive:{}", not_image.display()),
        "--",
        "true",
    ]);
    assert!(e.contains("not an image"), "{e}");
    let e = failure(&["debug", id, "--toolbox", "dir:/no/such/dir", "--", "true"]);
    assert!(e.contains("/no/such/dir"), "{e}");
    // A bad --user.
    let e = failure(&["debug", id, "--user=nobody", "--", "true"]);
    assert!(e.contains("UID[:GID]"), "{e}");
    // A port-forward spec that is not one.
    let out = run(&["port-forward", id, "eighty"]);
    assert_eq!(out.status.code(), Some(2));
}
