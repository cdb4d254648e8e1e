//! The file-system side of `kiln cp`: walking a tree through fds (never
//! re-resolving a name) and writing one below a directory fd with
//! `O_NOFOLLOW` at every step.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::{Sink, Stats};
use crate::error::{Result, RuntimeError};

/// What is kept of an entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Size in bytes.
    pub size: u64,
    /// Device number (character and block devices).
    pub rdev: u64,
}

impl Meta {
    fn of(st: &libc::stat) -> Meta {
        Meta {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            size: st.st_size as u64,
            rdev: st.st_rdev,
        }
    }

    /// Permission bits only.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// File content: an open file (holes can be found) or a stream.
pub enum Content<'a> {
    /// A regular file.
    File(&'a File),
    /// A stream of `Meta::size` bytes.
    Stream(&'a mut dyn Read),
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn err(what: impl Into<String>) -> RuntimeError {
    crate::error::sys(what)
}

fn own(fd: libc::c_int, what: impl FnOnce() -> String) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(err(what()));
    }
    // SAFETY: fd was just returned by the kernel and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct open_how` of `openat2(2)` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open `path` below `root` as a chroot would resolve it
/// (`RESOLVE_IN_ROOT`, following symlinks), or on the host when there is
/// no root. `flags` as for `open`.
pub fn resolve(
    root: Option<&OwnedFd>,
    path: &Path,
    flags: libc::c_int,
    name: &str,
) -> Result<OwnedFd> {
    let p = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let Some(root) = root else {
        return crate::sys::open(p, flags);
    };
    let flags = flags | libc::O_CLOEXEC;
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, C string and open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c(p).as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    own(fd as libc::c_int, || format!("{name} in the target"))
}

/// A directory to read or write in.
pub fn open_dir(root: Option<&OwnedFd>, path: &Path, name: &str) -> Result<OwnedFd> {
    resolve(root, path, libc::O_RDONLY | libc::O_DIRECTORY, name)
}

fn fstat(fd: &OwnedFd) -> Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer; works on O_PATH fds.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(err("fstat"));
    }
    Ok(st)
}

/// Reopen an `O_PATH` fd for reading, through its own fd (no name is
/// resolved again).
fn reopen(fd: &OwnedFd, flags: libc::c_int) -> Result<OwnedFd> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // SAFETY: valid C string.
    own(
        unsafe { libc::open(c(Path::new(&p)).as_ptr(), flags | libc::O_CLOEXEC) },
        || "reopen an entry".into(),
    )
}

fn read_link(fd: &OwnedFd) -> Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buffer of the given length; empty path reads the link fd.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(err("readlink"));
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

use std::os::unix::ffi::OsStringExt;

/// Walk the entry `fd` (an `O_PATH` fd, resolved by the caller), sending
/// it and everything below it to `sink`; `shown` names it in errors.
pub fn walk(fd: OwnedFd, shown: &Path, sink: &mut dyn Sink) -> Result<Stats> {
    let mut stats = Stats::default();
    node(fd, PathBuf::new(), sink, &mut stats, shown)?;
    Ok(stats)
}

fn node(
    fd: OwnedFd,
    rel: PathBuf,
    sink: &mut dyn Sink,
    stats: &mut Stats,
    shown: &Path,
) -> Result<()> {
    let st = fstat(&fd)?;
    let m = Meta::of(&st);
    stats.entries += 1;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            sink.dir(&rel, &m)?;
            let d = reopen(&fd, libc::O_RDONLY | libc::O_DIRECTORY)?;
            let mut names: Vec<PathBuf> =
                std::fs::read_dir(format!("/proc/self/fd/{}", d.as_raw_fd()))
                    .map_err(|e| RuntimeError::Io {
                        path: shown.join(&rel),
                        err: e,
                    })?
                    .flatten()
                    .map(|e| PathBuf::from(e.file_name()))
                    .collect();
            names.sort();
            for n in names {
                let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                // SAFETY: valid fd and C string.
                let child = own(
                    unsafe { libc::openat(d.as_raw_fd(), c(&n).as_ptr(), flags) },
                    || shown.join(&rel).join(&n).display().to_string(),
                )?;
                node(child, rel.join(&n), sink, stats, shown)?;
            }
            sink.dir_done(&rel, &m)
        }
        libc::S_IFREG => {
            let f = File::from(reopen(&fd, libc::O_RDONLY)?);
            stats.bytes += sink.file(&rel, &m, Content::File(&f))?;
            Ok(())
        }
        libc::S_IFLNK => sink.symlink(&rel, &read_link(&fd)?, &m),
        _ => sink.special(&rel, &m),
    }
}

/// Writes a tree below a directory fd: `rel` "" is `name` in `base`.
pub struct FdSink {
    base: OwnedFd,
    name: PathBuf,
    root: bool,
}

impl FdSink {
    /// Write the top entry as `name` in `base`.
    pub fn new(base: OwnedFd, name: PathBuf) -> FdSink {
        FdSink {
            base,
            name,
            root: crate::runc::is_root(),
        }
    }

    /// The directory holding `rel`, opened one component at a time with
    /// `O_NOFOLLOW` (created if missing), and the last name.
    fn parent(&self, rel: &Path) -> Result<(OwnedFd, PathBuf)> {
        let full = self.name.join(rel);
        let mut parts: Vec<&std::ffi::OsStr> = full
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let last = parts
            .pop()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut dir = reopen(&self.base, libc::O_RDONLY | libc::O_DIRECTORY)?;
        for p in parts {
            dir = open_child_dir(&dir, Path::new(p), true)?;
        }
        Ok((dir, last))
    }

    /// Owner of `name` in `dir`, not following a symlink (root only;
    /// best effort, as `cp -a` as a user).
    fn chown_at(&self, dir: &OwnedFd, name: &Path, m: &Meta) {
        if self.root {
            // SAFETY: valid fd and C string.
            unsafe {
                libc::fchownat(
                    dir.as_raw_fd(),
                    c(name).as_ptr(),
                    m.uid,
                    m.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
        }
    }

    fn own_and_time(&self, fd: &OwnedFd, m: &Meta) -> Result<()> {
        // SAFETY: valid fd; timespec array of two.
        unsafe {
            if self.root && libc::fchown(fd.as_raw_fd(), m.uid, m.gid) != 0 {
                return Err(err("chown"));
            }
            if libc::fchmod(fd.as_raw_fd(), m.perm()) != 0 {
                return Err(err("chmod"));
            }
            let t = [times(m), times(m)];
            if libc::futimens(fd.as_raw_fd(), t.as_ptr()) != 0 {
                return Err(err("set times"));
            }
        }
        Ok(())
    }

    fn fail(&self, rel: &Path) -> impl Fn(RuntimeError) -> RuntimeError + '_ {
        let shown = self.name.join(rel);
        move |e| match e {
            RuntimeError::Sys { what, err } => RuntimeError::Sys {
                what: format!("{what} {}", shown.display()),
                err,
            },
            other => other,
        }
    }
}

fn times(m: &Meta) -> libc::timespec {
    libc::timespec {
        tv_sec: m.mtime,
        tv_nsec: m.mtime_nsec,
    }
}

fn open_child_dir(dir: &OwnedFd, name: &Path, create: bool) -> Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if create {
        // SAFETY: valid fd and C string; EEXIST is checked by the open.
        unsafe { libc::mkdirat(dir.as_raw_fd(), c(name).as_ptr(), 0o700) };
    }
    // SAFETY: valid fd and C string.
    own(
        unsafe { libc::openat(dir.as_raw_fd(), c(name).as_ptr(), flags) },
        || {
            format!(
                "open directory {} (not a directory, or a symlink)",
                name.display()
            )
        },
    )
}

/// Remove a non-directory that is in the way.
fn clear(dir: &OwnedFd, name: &Path) {
    // SAFETY: valid fd and C string; failure leaves the create to report.
    unsafe { libc::unlinkat(dir.as_raw_fd(), c(name).as_ptr(), 0) };
}

impl Sink for FdSink {
    fn dir(&mut self, rel: &Path, _: &Meta) -> Result<()> {
        let (p, last) = self.parent(rel).map_err(self.fail(rel))?;
        open_child_dir(&p, &last, true).map_err(self.fail(rel))?;
        Ok(())
    }

    fn dir_done(&mut self, rel: &Path, m: &Meta) -> Result<()> {
        let (p, last) = self.parent(rel).map_err(self.fail(rel))?;
        let d = open_child_dir(&p, &last, false).map_err(self.fail(rel))?;
        self.own_and_time(&d, m).map_err(self.fail(rel))
    }

    fn file(&mut self, rel: &Path, m: &Meta, content: Content<'_>) -> Result<u64> {
        let (p, last) = self.parent(rel).map_err(self.fail(rel))?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let open = || {
            // SAFETY: valid fd and C string.
            own(
                unsafe { libc::openat(p.as_raw_fd(), c(&last).as_ptr(), flags, 0o600) },
                || "create".to_string(),
            )
        };
        let fd = match open() {
            Ok(fd) => fd,
            Err(_) => {
                clear(&p, &last);
                open().map_err(self.fail(rel))?
            }
        };
        let out = File::from(fd);
        let n = match content {
            Content::File(f) => copy_sparse(f, &out, m.size),
            Content::Stream(r) => write_sparse(r, &out, m.size),
        }
        .map_err(|e| RuntimeError::Io {
            path: self.name.join(rel),
            err: e,
        })?;
        let fd = OwnedFd::from(out);
        self.own_and_time(&fd, m).map_err(self.fail(rel))?;
        Ok(n)
    }

    fn symlink(&mut self, rel: &Path, to: &Path, m: &Meta) -> Result<()> {
        let (p, last) = self.parent(rel).map_err(self.fail(rel))?;
        clear(&p, &last);
        // SAFETY: valid fd and C strings.
        unsafe {
            if libc::symlinkat(c(to).as_ptr(), p.as_raw_fd(), c(&last).as_ptr()) != 0 {
                return Err(self.fail(rel)(err("symlink")));
            }
            self.chown_at(&p, &last, m);
            let t = [times(m), times(m)];
            libc::utimensat(
                p.as_raw_fd(),
                c(&last).as_ptr(),
                t.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            );
        }
        Ok(())
    }

    fn special(&mut self, rel: &Path, m: &Meta) -> Result<()> {
        let kind = m.mode & libc::S_IFMT;
        if kind == libc::S_IFSOCK || (!self.root && kind != libc::S_IFIFO) {
            return Ok(());
        }
        let (p, last) = self.parent(rel).map_err(self.fail(rel))?;
        clear(&p, &last);
        // SAFETY: valid fd and C string.
        unsafe {
            if libc::mknodat(p.as_raw_fd(), c(&last).as_ptr(), m.mode, m.rdev) != 0 {
                return Err(self.fail(rel)(err("mknod")));
            }
            self.chown_at(&p, &last, m);
        }
        Ok(())
    }
}

/// Copy the data regions of `from` (found with `SEEK_DATA`/`SEEK_HOLE`),
/// leaving holes as holes. Returns the bytes written.
fn copy_sparse(from: &File, to: &File, size: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0;
    let mut off: i64 = 0;
    while (off as u64) < size {
        // SAFETY: lseek on a valid fd.
        let data = unsafe { libc::lseek(from.as_raw_fd(), off, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole is left
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(from.as_raw_fd(), data, libc::SEEK_HOLE) }.max(data);
        let mut pos = data as u64;
        let end = (hole as u64).min(size);
        while pos < end {
            let want = ((end - pos) as usize).min(buf.len());
            let n = from.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                break;
            }
            to.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
            written += n as u64;
        }
        off = hole.max(data + 1);
    }
    to.set_len(size)?;
    Ok(written)
}

/// Write a stream, seeking over all-zero blocks so they become holes.
fn write_sparse(from: &mut dyn Read, to: &File, size: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let (mut pos, mut written) = (0u64, 0u64);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            to.write_all_at(&buf[..n], pos)?;
            written += n as u64;
        }
        pos += n as u64;
    }
    to.set_len(pos.max(size.min(pos)))?;
    Ok(written)
}
