//! Entering a running container with a toolbox, changing nothing of it.
//!
//! The work happens in a helper process (kiln re-executed with
//! [`HELPER_ARG`]) so that it is single-threaded when it forks and joins
//! namespaces. The helper:
//!
//! 1. copies the toolbox's and, from inside the target's mount namespace,
//!    the target's mount trees (`open_tree(OPEN_TREE_CLONE)`; bind-mounting
//!    `/proc/PID/root` from outside fails);
//! 2. builds the session's root on a tmpfs in a private mount namespace
//!    (nothing propagates to the host or the target, and nothing is
//!    created in the target's rootfs, not even a mount point);
//! 3. joins the target's network, IPC, UTS, cgroup and pid namespaces,
//!    then forks the session's init, which pivots into the new root,
//!    joins the target's user namespace if it has its own, and runs the
//!    command as a child it reaps; when that exits, the init kills
//!    whatever the command left behind, so no process outlives a session.
//!
//! Mounts need no cleanup: they live only in the private namespace, which
//! goes away with its last process.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};
use crate::sys::{self, Forked};

/// The first argument that makes `kiln` run as the attach helper.
pub const HELPER_ARG: &str = "__kiln-attach-helper";

/// The environment variable the session is passed in (not argv, which
/// `ps` shows to everyone in the target).
pub const SESSION_ENV: &str = "KILN_ATTACH_SESSION";

/// Where the session sees the target's root (default mode) and the
/// toolbox (`--chroot` mode).
pub const TARGET_DIR: &str = "target";
/// Where the toolbox appears in `--chroot` mode.
pub const CHROOT_TOOLS: &str = ".kiln";

/// Whose root the session runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// The toolbox is `/`; the target's root is at `/target`.
    Toolbox,
    /// The target's root is `/`; the toolbox is at `/.kiln`.
    Chroot,
}

/// One debug session, as the helper receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The target process (host pid).
    pub pid: i32,
    /// The toolbox's root on the host.
    pub toolbox: PathBuf,
    /// `PATH` entries of the toolbox, relative to its root.
    pub toolbox_path: Vec<String>,
    /// Root layout.
    pub mode: Mode,
    /// Run as this uid:gid (inside the target's user namespace) instead of
    /// root with a default container's capabilities.
    pub user: Option<(u32, u32)>,
    /// The command; empty for an interactive shell.
    pub args: Vec<String>,
    /// Extra environment (`TERM`, a prompt).
    pub env: Vec<String>,
    /// A directory the private namespace may mount its staging tmpfs on.
    pub stage: PathBuf,
    /// Give the command a terminal of its own, relayed to kiln's (an
    /// interactive shell on a terminal).
    pub tty: bool,
}

static HELPER_PID: AtomicI32 = AtomicI32::new(0);
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn forward_term(_: libc::c_int) {
    let pid = HELPER_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

extern "C" fn note_term(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// Run a session through the helper (`exe`, normally this program) and
/// return the command's exit code. Ctrl-C goes to the command alone (it
/// shares the terminal); SIGTERM is passed on, and the session's init
/// then kills everything the session started.
pub fn run(exe: &Path, session: &Session) -> Result<i32> {
    let spec = serde_json::to_string(session).map_err(|e| RuntimeError::Sys {
        what: "encode the session".into(),
        err: std::io::Error::other(e),
    })?;
    sys::on_signal(libc::SIGINT, libc::SIG_IGN);
    sys::on_signal(libc::SIGQUIT, libc::SIG_IGN);
    sys::on_signal(
        libc::SIGTERM,
        forward_term as *const () as libc::sighandler_t,
    );
    let mut child = std::process::Command::new(exe)
        .arg(HELPER_ARG)
        .env(SESSION_ENV, spec)
        .spawn()
        .map_err(|err| RuntimeError::Sys {
            what: format!("start {}", exe.display()),
            err,
        })?;
    HELPER_PID.store(child.id() as i32, Ordering::SeqCst);
    let status = child.wait().map_err(|err| RuntimeError::Sys {
        what: "wait for the debug session".into(),
        err,
    })?;
    HELPER_PID.store(0, Ordering::SeqCst);
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// The helper's entry point: decode the session, run it, and return the
/// exit code (errors are printed here, as the helper has no other voice).
pub fn helper_main() -> i32 {
    let spec = std::env::var(SESSION_ENV).unwrap_or_default();
    std::env::remove_var(SESSION_ENV);
    let session: Session = match serde_json::from_str(&spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln: error: bad debug session: {e}");
            return 2;
        }
    };
    match helper(&session) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: error: {e}");
            2
        }
    }
}

/// The target's namespaces, opened up front (the target may exit while we
/// work; its fds keep the namespaces).
struct Namespaces {
    joined: Vec<(OwnedFd, libc::c_int, &'static str)>,
    mnt: OwnedFd,
    user: Option<OwnedFd>,
}

const JOINED: &[(&str, libc::c_int)] = &[
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("pid", libc::CLONE_NEWPID),
];

impl Namespaces {
    fn open(pid: i32) -> Result<Namespaces> {
        let ns = |name: &str| {
            let p = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            let same = std::fs::metadata(&p).ok().map(|m| m.ino())
                == std::fs::metadata(format!("/proc/self/ns/{name}"))
                    .ok()
                    .map(|m| m.ino());
            sys::open(&p, libc::O_RDONLY).map(|fd| (fd, same))
        };
        let mut joined = Vec::new();
        for (name, kind) in JOINED {
            let (fd, same) = ns(name)?;
            if !same {
                joined.push((fd, *kind, *name));
            }
        }
        let (user, same_user) = ns("user")?;
        Ok(Namespaces {
            joined,
            mnt: ns("mnt")?.0,
            user: (!same_user).then_some(user),
        })
    }
}

fn helper(s: &Session) -> Result<i32> {
    // Parent gone (kiln killed): end the session as SIGTERM would.
    sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGTERM as libc::c_ulong,
        "set the parent-death signal",
    )?;
    sys::on_signal(libc::SIGINT, libc::SIG_IGN);
    sys::on_signal(libc::SIGQUIT, libc::SIG_IGN);
    sys::on_signal(libc::SIGTERM, note_term as *const () as libc::sighandler_t);
    let ns = Namespaces::open(s.pid)?;
    let root_dir = sys::open(
        Path::new(&format!("/proc/{}/root", s.pid)),
        libc::O_PATH | libc::O_DIRECTORY,
    )?;
    let tools_dir = sys::open(&s.toolbox, libc::O_PATH | libc::O_DIRECTORY)?;
    let tools = sys::clone_tree(&tools_dir, &s.toolbox.display().to_string())?;
    let own_mnt = sys::open(Path::new("/proc/self/ns/mnt"), libc::O_RDONLY)?;
    sys::setns(&ns.mnt, libc::CLONE_NEWNS, "target's mount")?;
    let target = sys::clone_tree(&root_dir, "the target's root");
    sys::setns(&own_mnt, libc::CLONE_NEWNS, "kiln's own mount")?;
    let target = target?;
    sys::unshare_mounts()?;
    let root = s.stage.clone();
    build_root(s.mode, &root, tools, target)?;
    let pty = if s.tty { terminal(&root) } else { None };
    for (fd, kind, name) in &ns.joined {
        sys::setns(fd, *kind, name)?;
    }
    let (master, slave) = match pty {
        Some(p) => (Some(p.master), Some(p.slave)),
        None => (None, None),
    };
    match sys::fork()? {
        Forked::Child => {
            drop(master);
            let code = match session_init(s, &root, ns.user.as_ref(), slave) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("kiln: error: {e}");
                    2
                }
            };
            std::process::exit(code);
        }
        Forked::Parent(init) => {
            drop(slave);
            let mut forward = || {
                if TERMINATED.load(Ordering::SeqCst) {
                    sys::kill(init, libc::SIGTERM);
                }
            };
            if let Some(m) = master {
                crate::pty::relay(&m, &mut forward);
            }
            sys::wait(init, &mut forward)
        }
    }
}

/// A pseudo-terminal from a devpts instance mounted over the session's
/// `/dev/pts`. Without a `/dev/pts` to mount on, and where making one
/// would write into the target's `/dev`, the session uses kiln's own
/// terminal instead.
fn terminal(root: &Path) -> Option<crate::pty::Pty> {
    let dev = root.join("dev");
    let pts = dev.join("pts");
    if !dev.exists() {
        mkdir(&dev).ok()?;
    }
    if !pts.is_dir() {
        let ours = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
        if ours(&dev) != ours(root) {
            return None;
        }
        mkdir(&pts).ok()?;
    }
    match crate::pty::open(&pts) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("kiln: warning: no terminal of the session's own ({e}); using this one");
            None
        }
    }
}

/// The session's root on a fresh tmpfs at `root`.
fn build_root(mode: Mode, root: &Path, tools: OwnedFd, target: OwnedFd) -> Result<()> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    sys::mount(
        "tmpfs",
        root,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=1m"),
    )?;
    let src = root.join(".kiln-src");
    mkdir(&src)?;
    match mode {
        Mode::Toolbox => {
            sys::attach(&tools, &src)?;
            let skip = [TARGET_DIR, "proc", "dev", "sys", "tmp"];
            mirror(&src, root, true, &skip)?;
            detach(&src)?;
            let t = root.join(TARGET_DIR);
            mkdir(&t)?;
            sys::attach(&target, &t)?;
            for d in ["proc", "dev", "sys", "tmp"] {
                mkdir(&root.join(d))?;
            }
            for d in ["dev", "sys"] {
                if t.join(d).is_dir() {
                    sys::bind(&t.join(d), &root.join(d), d == "sys")?;
                }
            }
            sys::mount(
                "tmpfs",
                &root.join("tmp"),
                Some("tmpfs"),
                flags,
                Some("mode=1777"),
            )?;
        }
        Mode::Chroot => {
            sys::attach(&target, &src)?;
            mirror(&src, root, false, &[CHROOT_TOOLS])?;
            detach(&src)?;
            let t = root.join(CHROOT_TOOLS);
            mkdir(&t)?;
            sys::attach(&tools, &t)?;
            let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
            sys::mount("", &t, None, ro, None)?;
        }
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir(p).map_err(|err| RuntimeError::Io {
        path: p.to_path_buf(),
        err,
    })
}

fn detach(p: &Path) -> Result<()> {
    let c = crate::error::cpath(p)?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(crate::error::sys(format!("unmount {}", p.display())));
    }
    std::fs::remove_dir(p).map_err(|err| RuntimeError::Io {
        path: p.to_path_buf(),
        err,
    })
}

/// Make every top-level entry of `src` appear in `dst`: directories and
/// files bind-mounted (with what is mounted below them), symlinks copied.
fn mirror(src: &Path, dst: &Path, readonly: bool, skip: &[&str]) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| RuntimeError::Io { path, err }
    };
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| skip.contains(&n)) {
            continue;
        }
        let (s, d) = (entry.path(), dst.join(&name));
        let kind = entry.file_type().map_err(io(&s))?;
        if kind.is_symlink() {
            let to = std::fs::read_link(&s).map_err(io(&s))?;
            std::os::unix::fs::symlink(to, &d).map_err(io(&d))?;
            continue;
        }
        if kind.is_dir() {
            mkdir(&d)?;
        } else {
            std::fs::File::create(&d).map_err(io(&d))?;
        }
        sys::bind(&s, &d, readonly)?;
    }
    Ok(())
}

/// The first process in the target's pid namespace: pivots into the
/// session's root, runs the command and reaps it and its leftovers.
fn session_init(
    s: &Session,
    root: &Path,
    user_ns: Option<&OwnedFd>,
    tty: Option<OwnedFd>,
) -> Result<i32> {
    sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGTERM as libc::c_ulong,
        "set the parent-death signal",
    )?;
    if s.mode == Mode::Toolbox {
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        sys::mount("proc", &root.join("proc"), Some("proc"), flags, None)?;
    }
    sys::pivot_root(root)?;
    if let Some(fd) = user_ns {
        sys::setns(fd, libc::CLONE_NEWUSER, "target's user")?;
    }
    sys::prctl(
        libc::PR_SET_CHILD_SUBREAPER,
        1,
        "become the session's reaper",
    )?;
    match sys::fork()? {
        Forked::Child => {
            if let Some(t) = &tty {
                if let Err(e) = crate::pty::become_controlling(t) {
                    eprintln!("kiln: error: {e}");
                    std::process::exit(127);
                }
            }
            drop(tty);
            let err = crate::exec::exec(s);
            eprintln!("kiln: error: {err}");
            std::process::exit(127);
        }
        Forked::Parent(cmd) => {
            drop(tty);
            let code = sys::wait(cmd, &mut || {
                if TERMINATED.load(Ordering::SeqCst) {
                    crate::reap::kill_all();
                }
            })?;
            crate::reap::kill_descendants();
            Ok(if TERMINATED.load(Ordering::SeqCst) {
                128 + libc::SIGTERM
            } else {
                code
            })
        }
    }
}
