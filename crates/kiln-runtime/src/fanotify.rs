//! Recording what a container touches: the rootfs lives on a private tmpfs
//! ([`crate::tmpfs`]) and a fanotify filesystem mark on it reports every
//! open and exec, from
//! any mount namespace (runc's bind mount and `pivot_root` included), and
//! nothing from the rest of the host.
//!
//! fanotify does not see `stat`, `readlink` or failed opens; symlinks on
//! the way to an opened file are recovered by resolving its path in the
//! image (kiln-slim's closure does).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{cpath, sys, Result};

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
