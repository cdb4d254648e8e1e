//! What fanotify cannot see: `stat`, `access`, `readlink` and failed
//! opens. runc installs a seccomp filter that turns those system calls
//! into user notifications and hands the notification fd to this listener
//! (OCI `linux.seccomp.listenerPath`); each call's path is read from the
//! caller's memory, recorded, and the call continues unchanged
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Result, RuntimeError};

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// x86-64 system calls that name a path, and which argument holds it
/// (with the directory-fd argument, if any).
pub const SYSCALLS: &[(&str, i32, usize, Option<usize>)] = &[
    ("open", 2, 0, None),
    ("stat", 4, 0, None),
    ("lstat", 6, 0, None),
    ("access", 21, 0, None),
    ("readlink", 89, 0, None),
    ("openat", 257, 1, Some(0)),
    ("newfstatat", 262, 1, Some(0)),
    ("readlinkat", 267, 1, Some(0)),
    ("faccessat", 269, 1, Some(0)),
    ("statx", 332, 1, Some(0)),
    ("openat2", 437, 1, Some(0)),
    ("faccessat2", 439, 1, Some(0)),
];

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// A listener for runc's seccomp notification fds.
pub struct Listener {
    /// The socket runc connects to.
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listen on a socket in `dir`.
    pub fn start(dir: &Path) -> Result<Listener> {
        let path = dir.join("seccomp.sock");
        let sock = UnixListener::bind(&path).map_err(|err| RuntimeError::Io {
            path: path.clone(),
            err,
        })?;
        sock.set_nonblocking(true).map_err(|err| RuntimeError::Io {
            path: path.clone(),
            err,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, st) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || accept_loop(&sock, &s, &st));
        Ok(Listener {
            path,
            stop,
            seen,
            thread: Some(thread),
        })
    }

    /// Stop and return the in-image paths (no leading `/`) seen.
    pub fn finish(mut self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(sock: &UnixListener, stop: &AtomicBool, seen: &Arc<Mutex<BTreeSet<String>>>) {
    let mut handlers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match sock.accept() {
            Ok((conn, _)) => {
                if let Some(fd) = receive_fd(&conn) {
                    let seen = Arc::clone(seen);
                    handlers.push(std::thread::spawn(move || serve(fd, &seen)));
                }
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// The notification fd runc sends with `SCM_RIGHTS` (with the container
/// state as the message body, which is not needed here).
fn receive_fd(conn: &UnixStream) -> Option<OwnedFd> {
    let _ = conn.set_nonblocking(false);
    let mut body = [0u8; 8192];
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // Room for one fd of control data.
    let mut cmsg = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    // SAFETY: walking the control messages the kernel just wrote.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
                return Some(OwnedFd::from_raw_fd(fd));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

/// Answer notifications until the container's processes are gone.
fn serve(fd: OwnedFd, seen: &Mutex<BTreeSet<String>>) {
    let raw = fd.as_raw_fd();
    loop {
        let mut pfd = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 200) };
        if r < 0 || pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut n = Notif::default();
        // SAFETY: n is a properly sized, writable seccomp_notif.
        if unsafe { libc::ioctl(raw, SECCOMP_IOCTL_NOTIF_RECV as _, &mut n) } != 0 {
            continue;
        }
        if let Some(p) = path_of(&n) {
            if let Ok(mut s) = seen.lock() {
                s.insert(p);
            }
        }
        let mut resp = NotifResp {
            id: n.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        // SAFETY: resp is a valid seccomp_notif_resp for this id.
        unsafe { libc::ioctl(raw, SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) };
    }
}

/// The path a notified call names, made absolute in the container's view.
fn path_of(n: &Notif) -> Option<String> {
    let &(_, _, arg, dirfd) = SYSCALLS.iter().find(|s| s.1 == n.data.nr)?;
    let addr = n.data.args[arg];
    let mem = std::fs::File::open(format!("/proc/{}/mem", n.pid)).ok()?;
    let mut buf = vec![0u8; 4096];
    let got = std::os::unix::fs::FileExt::read_at(&mem, &mut buf, addr).ok()?;
    let end = buf[..got].iter().position(|b| *b == 0)?;
    let path = String::from_utf8_lossy(&buf[..end]).into_owned();
    if path.is_empty() {
        return None;
    }
    if path.starts_with('/') {
        return Some(path.trim_start_matches('/').to_string());
    }
    let base = match dirfd.map(|i| n.data.args[i] as i32) {
        Some(fd) if fd != libc::AT_FDCWD => {
            std::fs::read_link(format!("/proc/{}/fd/{fd}", n.pid)).ok()?
        }
        _ => std::fs::read_link(format!("/proc/{}/cwd", n.pid)).ok()?,
    };
    let joined = base.join(path);
    Some(joined.to_string_lossy().trim_start_matches('/').to_string())
}
