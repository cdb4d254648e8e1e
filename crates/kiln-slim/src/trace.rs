//! Recording what a container touches: the rootfs lives on a private tmpfs
//! and a fanotify filesystem mark on it reports every open and exec, from
//! any mount namespace (runc's bind mount and `pivot_root` included), and
//! nothing from the rest of the host.
//!
//! fanotify does not see `stat`, `readlink` or failed opens; symlinks on
//! the way to an opened file are recovered by resolving its path in the
//! image (see [`crate::closure`]).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Result, SlimError};

const FAN_CLASS_NOTIF: u32 = 0;
const FAN_CLOEXEC: u32 = 0x1;
const FAN_NONBLOCK: u32 = 0x2;
const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_OPEN: u64 = 0x20;
const FAN_OPEN_EXEC: u64 = 0x1000;
const FAN_ONDIR: u64 = 0x4000_0000;
/// `sizeof(struct fanotify_event_metadata)`.
const META_LEN: usize = 24;

fn sys(what: impl Into<String>) -> SlimError {
    SlimError::Sys {
        what: what.into(),
        err: std::io::Error::last_os_error(),
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SlimError::Sys {
        what: format!("{}: path has a NUL byte", p.display()),
        err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

/// A tmpfs mounted at a directory, unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of at most `size` bytes at `path` (created if needed).
    pub fn mount(path: &Path, size: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path).map_err(|err| SlimError::Io {
            path: path.into(),
            err,
        })?;
        let target = cpath(path)?;
        let opts = CString::new(format!("size={size},mode=755")).unwrap_or_default();
        // SAFETY: all pointers are valid NUL-terminated strings.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(sys(format!("mount tmpfs at {}", path.display())));
        }
        Ok(Tmpfs { path: path.into() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(p) = cpath(&self.path) {
            // SAFETY: valid path; MNT_DETACH never blocks.
            unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// A running fanotify listener.
pub struct Tracer {
    fd: i32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<BTreeSet<String>>>,
}

impl Tracer {
    /// Watch every open and exec on the filesystem that holds `mount`.
    pub fn start(mount: &Path) -> Result<Tracer> {
        // SAFETY: plain syscalls with constant arguments.
        let fd = unsafe {
            libc::fanotify_init(
                FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
            )
        };
        if fd < 0 {
            return Err(sys("fanotify_init (needs CAP_SYS_ADMIN)"));
        }
        let p = cpath(mount)?;
        // SAFETY: fd is ours, p a valid path.
        let r = unsafe {
            libc::fanotify_mark(
                fd,
                FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                FAN_OPEN | FAN_OPEN_EXEC | FAN_ONDIR,
                libc::AT_FDCWD,
                p.as_ptr(),
            )
        };
        if r != 0 {
            let e = sys(format!("fanotify_mark {}", mount.display()));
            // SAFETY: closing our own fd.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let prefix = mount.to_path_buf();
        let thread = std::thread::spawn(move || listen(fd, &flag, &prefix));
        Ok(Tracer {
            fd,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop and return every in-image path (no leading `/`) seen.
    pub fn finish(mut self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: closing our own fd once.
        unsafe { libc::close(self.fd) };
    }
}

fn listen(fd: i32, stop: &AtomicBool, prefix: &Path) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready <= 0 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let mut at = 0usize;
        let n = n as usize;
        while at + META_LEN <= n {
            let event_len =
                u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let efd = i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
            if efd >= 0 {
                if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{efd}")) {
                    let rel = target
                        .strip_prefix(prefix)
                        .map(Path::to_path_buf)
                        .unwrap_or(target);
                    let rel = rel.to_string_lossy().trim_start_matches('/').to_string();
                    seen.insert(rel);
                }
                // SAFETY: the event's fd is ours to close.
                unsafe { libc::close(efd) };
            }
            if event_len < META_LEN {
                break;
            }
            at += event_len;
        }
    }
    seen
}
