//! Thin wrappers over the Linux system calls that entering a container
//! needs (namespaces, the new mount API, `pivot_root`, `fork`), each
//! returning an error that says what was attempted. All `unsafe` for
//! attaching lives here.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{cpath, sys, Result};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Open `path` with `flags` (`O_CLOEXEC` is added).
pub fn open(path: &Path, flags: libc::c_int) -> Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: valid C string; the fd returned is owned by us.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(sys(format!("open {}", path.display())));
    }
    // SAFETY: fd was just returned by open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Join the namespace `fd` refers to.
pub fn setns(fd: &OwnedFd, kind: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: fd is a valid namespace fd we own.
    if unsafe { libc::setns(fd.as_raw_fd(), kind) } != 0 {
        return Err(sys(format!("join the {what} namespace (setns)")));
    }
    Ok(())
}

/// A private copy of this process's mount namespace, with propagation
/// turned off so nothing mounted in it reaches the host or the target.
pub fn unshare_mounts() -> Result<()> {
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(sys("unshare the mount namespace"));
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(sys("make the private mount namespace's mounts private"));
        }
    }
    Ok(())
}

/// A detached copy of the mount tree at `dirfd` (`open_tree` with
/// `OPEN_TREE_CLONE | AT_RECURSIVE`). Must run in the mount namespace the
/// tree belongs to; the copy can then be attached in any namespace.
pub fn clone_tree(dirfd: &OwnedFd, what: &str) -> Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: open_tree with a valid fd and an empty C string.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(sys(format!("copy the mount tree of {what} (open_tree)")));
    }
    // SAFETY: fd was just returned by open_tree.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attach a detached mount tree at `target` (`move_mount`).
pub fn attach(tree: &OwnedFd, target: &Path) -> Result<()> {
    let t = cpath(target)?;
    // SAFETY: valid fd and C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(sys(format!(
            "attach a mount at {} (move_mount)",
            target.display()
        )));
    }
    Ok(())
}

/// `mount(2)`.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let s = CString::new(source).unwrap_or_default();
    let t = cpath(target)?;
    let f = fstype.map(|f| CString::new(f).unwrap_or_default());
    let d = data.map(|d| CString::new(d).unwrap_or_default());
    // SAFETY: all pointers are valid C strings or null.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            d.as_ref().map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if r != 0 {
        return Err(sys(format!(
            "mount {} at {}",
            fstype.unwrap_or(source),
            target.display()
        )));
    }
    Ok(())
}

/// Bind `source` (with what is mounted below it) at `target`, read-only
/// if asked.
pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    let src = source.to_string_lossy();
    mount(&src, target, None, libc::MS_BIND | libc::MS_REC, None)?;
    if readonly {
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        mount("", target, None, flags, None)?;
    }
    Ok(())
}

/// Make `new_root` (a mount point) this mount namespace's root and drop
/// the old one from view.
pub fn pivot_root(new_root: &Path) -> Result<()> {
    let c = cpath(new_root)?;
    // SAFETY: valid C strings; the pivot_root(".", ".") idiom stacks the
    // old root under the new one, and the detach unmounts it.
    unsafe {
        if libc::chdir(c.as_ptr()) != 0 {
            return Err(sys(format!("chdir {}", new_root.display())));
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(sys(format!("pivot_root to {}", new_root.display())));
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(sys("detach the old root"));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(sys("chdir /"));
        }
    }
    Ok(())
}

/// Which side of a `fork` this is.
pub enum Forked {
    /// The new process.
    Child,
    /// The parent, with the child's pid.
    Parent(libc::pid_t),
}

/// `fork(2)`. Only for single-threaded processes (the attach helper).
pub fn fork() -> Result<Forked> {
    // SAFETY: the helper that calls this is single-threaded, so the child
    // may go on running ordinary Rust.
    match unsafe { libc::fork() } {
        -1 => Err(sys("fork")),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Wait for `pid` (retrying when a signal interrupts, after calling
/// `on_eintr`); returns its exit code, 128 + signal for a signal.
pub fn wait(pid: libc::pid_t, on_eintr: &mut dyn FnMut()) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(exit_code(status));
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            on_eintr();
            continue;
        }
        return Err(sys(format!("wait for process {pid}")));
    }
}

/// A wait status as a shell reports it.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Send `sig` to `pid`, ignoring a process that is already gone.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(pid, sig) };
}

/// Set how this process handles `sig`: `handler` or `SIG_IGN`/`SIG_DFL`.
/// Installed without `SA_RESTART`, so a blocking `waitpid` returns
/// `EINTR` and the waiter can act on the signal.
pub fn on_signal(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with only the handler set is valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// `prctl` with one argument.
pub fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: prctl options used here take integer arguments only.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
        return Err(sys(what.to_string()));
    }
    Ok(())
}
