//! A terminal for an interactive session: a pseudo-terminal from a devpts
//! instance of the session's own (so `tty`, job control and `/dev/pts/N`
//! work inside), relayed to kiln's terminal in raw mode, with window
//! size changes passed on.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{sys, Result};

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::SeqCst);
}

/// Both ends of a pseudo-terminal.
pub struct Pty {
    /// kiln's end.
    pub master: OwnedFd,
    /// The session's end (its stdin, stdout, stderr and controlling
    /// terminal).
    pub slave: OwnedFd,
}

/// Mount a new devpts instance at `pts` (in the session's private mount
/// namespace) and open a pseudo-terminal in it.
pub fn open(pts: &Path) -> Result<Pty> {
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    let opts = "newinstance,ptmxmode=0666,mode=0620";
    crate::sys::mount("devpts", pts, Some("devpts"), flags, Some(opts))?;
    let master = crate::sys::open(&pts.join("ptmx"), libc::O_RDWR | libc::O_NOCTTY)?;
    let mut n: libc::c_uint = 0;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK and TIOCGPTN take pointers to ints we own.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) != 0 {
            return Err(sys("unlock the pseudo-terminal"));
        }
        if libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) != 0 {
            return Err(sys("number the pseudo-terminal"));
        }
    }
    let slave = crate::sys::open(&pts.join(n.to_string()), libc::O_RDWR | libc::O_NOCTTY)?;
    copy_size(0, master.as_raw_fd());
    Ok(Pty { master, slave })
}

/// Make `slave` the calling process's controlling terminal and stdio, in a
/// session of its own.
pub fn become_controlling(slave: &OwnedFd) -> Result<()> {
    // SAFETY: plain system calls on fds we own.
    unsafe {
        if libc::setsid() < 0 {
            return Err(sys("start a session (setsid)"));
        }
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(sys("take the terminal (TIOCSCTTY)"));
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(sys("attach the terminal"));
            }
        }
    }
    Ok(())
}

fn copy_size(from: libc::c_int, to: libc::c_int) {
    // SAFETY: a zeroed winsize is valid; failures (not a terminal) are
    // harmless.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// kiln's terminal in raw mode until dropped.
struct Raw(Option<libc::termios>);

impl Raw {
    fn new() -> Raw {
        // SAFETY: termios calls on fd 0 with a zeroed buffer.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Raw(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Raw(Some(saved))
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

/// Relay kiln's stdin to `master` and `master` to kiln's stdout until the
/// session's side closes; `stop` is checked whenever a signal arrives.
pub fn relay(master: &OwnedFd, on_signal: &mut dyn FnMut()) {
    crate::sys::on_signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t);
    let _raw = Raw::new();
    let m = master.as_raw_fd();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 << 10];
    loop {
        if RESIZED.swap(false, Ordering::SeqCst) {
            copy_size(0, m);
        }
        let mut fds = [
            libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            on_signal();
            continue;
        }
        if fds[0].revents != 0 && !pump(m, 1, &mut buf) {
            return; // EIO: every holder of the session's end has closed it
        }
        if fds[1].revents != 0 && !pump(0, m, &mut buf) {
            stdin_open = false;
        }
    }
}

/// Move one read's worth from `from` to `to`; false at end or error.
fn pump(from: libc::c_int, to: libc::c_int, buf: &mut [u8]) -> bool {
    // SAFETY: buffer of the given length.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut done = 0;
    while done < n as usize {
        // SAFETY: slice within the buffer.
        let w = unsafe { libc::write(to, buf[done..].as_ptr().cast(), n as usize - done) };
        if w <= 0 {
            return false;
        }
        done += w as usize;
    }
    true
}
