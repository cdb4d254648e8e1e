//! Running an unpacked image with `runc`: an OCI runtime config written
//! here (private PID, IPC, UTS, mount and network namespaces: no network),
//! one container per run, always deleted afterwards.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::error::{Result, RuntimeError};

/// Set by the SIGINT/SIGTERM handler; runs stop and clean up.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catch Ctrl-C and SIGTERM so mounts and containers are cleaned up
/// (runc passes the signal on to the container, whose run then ends).
pub fn catch_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Is this process root?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The `runc` binary, checked to run.
#[derive(Debug, Clone)]
pub struct Runc(PathBuf);

impl Runc {
    /// Find `runc` on `PATH` (Debian installs it in /usr/sbin).
    pub fn find() -> Result<Runc> {
        for p in ["runc", "/usr/sbin/runc", "/usr/bin/runc"] {
            if Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return Ok(Runc(p.into()));
            }
        }
        Err(RuntimeError::NoRuntime)
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// argv.
    pub args: Vec<String>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Where a seccomp notification listener waits (see [`crate::seccomp`]).
    #[serde(skip)]
    pub seccomp_listener: Option<PathBuf>,
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunResult {
    /// The command.
    pub args: Vec<String>,
    /// Exit code (128 + signal for a signal).
    pub exit: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Killed at the time limit.
    pub timed_out: bool,
}

pub(crate) const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The OCI runtime config for one process over `rootfs`.
fn config(rootfs: &Path, p: &Process) -> serde_json::Value {
    let mut c = base_config(rootfs, p);
    if let Some(listener) = &p.seccomp_listener {
        let names: Vec<&str> = crate::seccomp::SYSCALLS.iter().map(|s| s.0).collect();
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": listener,
            "syscalls": [{ "names": names, "action": "SCMP_ACT_NOTIFY" }]
        });
    }
    c
}

fn base_config(rootfs: &Path, p: &Process) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": p.uid, "gid": p.gid },
            "args": p.args,
            "env": p.env,
            "cwd": if p.cwd.is_empty() { "/" } else { &p.cwd },
            "capabilities": { "bounding": CAPS, "effective": CAPS, "permitted": CAPS },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": rootfs, "readonly": false },
        "hostname": "kiln-slim",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A fresh container id and its bundle directory with the config for `p`.
fn bundle(work: &Path, rootfs: &Path, p: &Process) -> Result<(String, PathBuf)> {
    let n = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let id = format!("kiln-{}-{n}", std::process::id());
    let bundle = work.join(format!("bundle-{n}"));
    std::fs::create_dir_all(&bundle).map_err(|err| RuntimeError::Io {
        path: bundle.clone(),
        err,
    })?;
    let cfg_path = bundle.join("config.json");
    std::fs::write(&cfg_path, config(rootfs, p).to_string()).map_err(|err| RuntimeError::Io {
        path: cfg_path.clone(),
        err,
    })?;
    Ok((id, bundle))
}

/// Run `p` in a fresh container over `rootfs`, with a time limit. The
/// container is deleted whatever happens.
pub fn run(
    runc: &Runc,
    work: &Path,
    rootfs: &Path,
    p: &Process,
    limit: Duration,
) -> Result<RunResult> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(RuntimeError::Interrupted);
    }
    let (id, bundle) = bundle(work, rootfs, p)?;
    let guard = Container {
        runc: runc.clone(),
        id: id.clone(),
    };
    let mut cmd = Command::new(&runc.0);
    cmd.arg("run").arg("--bundle").arg(&bundle).arg(&id);
    let result = wait_output(cmd, limit, &|| guard.kill());
    drop(guard);
    let _ = std::fs::remove_dir_all(&bundle);
    let mut r = result?;
    r.args = p.args.clone();
    Ok(r)
}

/// A long-running container (a server), started detached so probes can
/// run beside it with `runc exec` and HTTP requests can reach it through
/// its network namespace. Killed and deleted on drop.
pub struct Detached {
    guard: Container,
    pid: i32,
    process: Process,
    log: PathBuf,
}

/// Start `p` detached over `rootfs`; its output goes to a log file.
pub fn start(runc: &Runc, work: &Path, rootfs: &Path, p: &Process) -> Result<Detached> {
    let (id, bundle) = bundle(work, rootfs, p)?;
    let guard = Container {
        runc: runc.clone(),
        id: id.clone(),
    };
    let log = launch(runc, &["run", "--detach"], &bundle, &id, "output.log")?;
    let pid = crate::container::find(&[PathBuf::from(RUNC_ROOT)], &id)?.pid;
    Ok(Detached {
        guard,
        pid,
        process: p.clone(),
        log,
    })
}

/// `runc VERB… --bundle BUNDLE ID` for a command that returns while the
/// container's init goes on. The init inherits runc's stdio and keeps it
/// open, so it goes to a log file in the bundle (a pipe would never end);
/// a failure says what runc wrote there.
fn launch(runc: &Runc, verb: &[&str], bundle: &Path, id: &str, log: &str) -> Result<PathBuf> {
    let log = bundle.join(log);
    let io = |err| RuntimeError::Io {
        path: log.clone(),
        err,
    };
    let out = std::fs::File::create(&log).map_err(io)?;
    let err_out = out.try_clone().map_err(io)?;
    let status = Command::new(&runc.0)
        .args(verb)
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err_out)
        .status()
        .map_err(|err| RuntimeError::Sys {
            what: format!("cannot start {}", runc.0.display()),
            err,
        })?;
    if !status.success() {
        return Err(RuntimeError::Sys {
            what: format!(
                "runc {} {id}: {}",
                verb.join(" "),
                std::fs::read_to_string(&log).unwrap_or_default().trim()
            ),
            err: std::io::Error::other("container did not start"),
        });
    }
    Ok(log)
}

impl Detached {
    /// Run `args` inside the container with `runc exec`.
    pub fn exec(&self, args: &[String], limit: Duration) -> Result<RunResult> {
        let mut cmd = Command::new(&self.guard.runc.0);
        cmd.arg("exec")
            .arg("--cwd")
            .arg(if self.process.cwd.is_empty() {
                "/"
            } else {
                &self.process.cwd
            })
            .arg("--user")
            .arg(format!("{}:{}", self.process.uid, self.process.gid));
        for e in &self.process.env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg(&self.guard.id).args(args);
        let mut r = wait_output(cmd, limit, &|| {})?;
        r.args = args.to_vec();
        Ok(r)
    }

    /// `GET http://127.0.0.1:PORT/PATH` from inside the container's network
    /// namespace, retried until the server answers or `limit` passes. The
    /// status code is the result's `exit`, the body its `stdout`.
    pub fn http_get(&self, port: u16, path: &str, limit: Duration) -> Result<RunResult> {
        let ns = format!("/proc/{}/ns/net", self.pid);
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let url = format!("http://127.0.0.1:{port}{path}");
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        let handle = std::thread::spawn(move || -> std::io::Result<(Vec<u8>, bool)> {
            use std::io::Write;
            let f = std::fs::File::open(&ns)?;
            // SAFETY: setns on this thread only, with an fd we own.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) } != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let start = Instant::now();
            loop {
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(mut s) => {
                        s.set_read_timeout(Some(limit))?;
                        s.write_all(request.as_bytes())?;
                        let mut buf = Vec::new();
                        s.read_to_end(&mut buf)?;
                        return Ok((buf, false));
                    }
                    Err(_) if start.elapsed() < limit && !INTERRUPTED.load(Ordering::SeqCst) => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(_) => return Ok((Vec::new(), true)),
                }
            }
        });
        let (raw, timed_out) = handle
            .join()
            .map_err(|_| RuntimeError::Sys {
                what: format!("GET {url}"),
                err: std::io::Error::other("request thread panicked"),
            })?
            .map_err(|err| RuntimeError::Sys {
                what: format!("GET {url} in the container's network namespace"),
                err,
            })?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(RunResult {
            args: vec!["GET".into(), url],
            exit: status,
            stdout: body.to_string(),
            stderr: head.to_string(),
            timed_out,
        })
    }

    /// Stop the server; returns what it wrote.
    pub fn stop(self) -> RunResult {
        self.guard.kill();
        std::thread::sleep(Duration::from_millis(100));
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        RunResult {
            args: self.process.args.clone(),
            exit: 128 + libc::SIGKILL,
            stdout: String::new(),
            stderr: output,
            timed_out: false,
        }
    }
}

/// Run a command to completion (or `limit`), capturing its output.
fn wait_output(mut cmd: Command, limit: Duration, on_timeout: &dyn Fn()) -> Result<RunResult> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| RuntimeError::Sys {
            what: format!("cannot start {cmd:?}"),
            err,
        })?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_end(&mut o);
        }
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_end(&mut e);
        }
        e
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(err) => {
                return Err(RuntimeError::Sys {
                    what: format!("waiting for {cmd:?}"),
                    err,
                })
            }
        }
        if !timed_out && (start.elapsed() > limit || INTERRUPTED.load(Ordering::SeqCst)) {
            timed_out = start.elapsed() > limit;
            on_timeout();
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(RuntimeError::Interrupted);
    }
    use std::os::unix::process::ExitStatusExt;
    let exit = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    Ok(RunResult {
        args: Vec::new(),
        exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        timed_out,
    })
}

/// A container made with `runc create` and never started: its namespaces
/// and root exist, but no program of the image runs (its init waits in
/// runc until deleted). What `kiln debug IMAGE` attaches to.
pub struct Created {
    _guard: Container,
    /// Host pid of the container's (waiting) init.
    pub pid: i32,
    /// Container id.
    pub id: String,
}

/// Create (not start) a container over `rootfs` with private namespaces
/// and no network. runc checks that `p.args[0]` exists in the root; it is
/// never run.
pub fn create(runc: &Runc, work: &Path, rootfs: &Path, p: &Process) -> Result<Created> {
    let (id, bundle) = bundle(work, rootfs, p)?;
    let guard = Container {
        runc: runc.clone(),
        id: id.clone(),
    };
    launch(runc, &["create"], &bundle, &id, "create.log")?;
    let pid = crate::container::find(&[PathBuf::from(RUNC_ROOT)], &id)?.pid;
    Ok(Created {
        _guard: guard,
        pid,
        id,
    })
}

/// runc's default state root (as root).
const RUNC_ROOT: &str = "/run/runc";

/// Deletes its container on drop.
struct Container {
    runc: Runc,
    id: String,
}

impl Container {
    fn kill(&self) {
        let _ = Command::new(&self.runc.0)
            .args(["kill", &self.id, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(&self.runc.0)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
