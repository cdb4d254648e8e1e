//! `kiln cp`: files in and out of a target's root, confined to it.
//!
//! The path on the target's side is resolved with `openat2(RESOLVE_IN_ROOT)`
//! from `/proc/PID/root`, so symlinks (absolute ones too) and `..` resolve
//! as in a chroot, in the kernel, without races: nothing outside the
//! target's root is ever read or written. Below the named path, every
//! entry is opened relative to its parent's fd with `O_NOFOLLOW`, so a
//! symlink inside a copied tree is copied as a symlink, never followed.
//! Modes, ownership, times and holes are kept; `-` streams a tar.

mod fs;
mod tar_io;

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, RuntimeError};
pub use fs::Meta;

/// One end of a copy.
#[derive(Debug, Clone)]
pub enum Side {
    /// A path on the host (`-` for stdin or stdout, as a tar stream).
    Host(PathBuf),
    /// A path inside the root of process `pid`.
    Target {
        /// Process whose root it is.
        pid: i32,
        /// Path as the target sees it.
        path: String,
    },
}

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Bytes of file content written (holes excluded).
    pub bytes: u64,
}

/// Sinks receive a tree top-down: a directory before what it holds, and
/// `dir_done` once its children are written, so its mode and times can be
/// set last (a read-only directory is still filled).
pub(crate) trait Sink {
    fn dir(&mut self, rel: &Path, m: &Meta) -> Result<()>;
    fn dir_done(&mut self, rel: &Path, m: &Meta) -> Result<()>;
    fn file(&mut self, rel: &Path, m: &Meta, content: fs::Content<'_>) -> Result<u64>;
    fn symlink(&mut self, rel: &Path, to: &Path, m: &Meta) -> Result<()>;
    fn special(&mut self, rel: &Path, m: &Meta) -> Result<()>;
}

/// Copy `from` to `to` (one of them normally a target). Like `cp -a`: a
/// directory is copied whole, into an existing directory under its own
/// name or as the new name.
pub fn copy(from: &Side, to: &Side) -> Result<Stats> {
    match (from, to) {
        (Side::Host(p), to) if p.as_os_str() == "-" => {
            let (root, path) = resolve_side(to)?;
            let dir = fs::open_dir(root.as_ref(), &path, &side_name(to))?;
            let mut sink = fs::FdSink::new(dir, PathBuf::from("."));
            tar_io::read(std::io::stdin().lock(), &mut sink)
        }
        (from, Side::Host(p)) if p.as_os_str() == "-" => {
            let (fd, name) = source(from)?;
            let mut sink = tar_io::TarSink::new(std::io::stdout().lock(), name.clone());
            let stats = fs::walk(fd, &name, &mut sink)?;
            sink.finish()?;
            Ok(stats)
        }
        (from, to) => {
            let (fd, name) = source(from)?;
            let (ddir, dname) = destination(to, &name)?;
            let mut sink = fs::FdSink::new(ddir, dname);
            fs::walk(fd, &name, &mut sink)
        }
    }
}

/// The source, opened (`O_PATH`, symlinks followed inside the root), and
/// the name it is copied under.
fn source(side: &Side) -> Result<(OwnedFd, PathBuf)> {
    let (root, path) = resolve_side(side)?;
    let (_, name) = split(&path, side)?;
    let fd = fs::resolve(root.as_ref(), &path, libc::O_PATH, &side_name(side))?;
    Ok((fd, name))
}

/// Where to write: into `path` under the source's name if it is an
/// existing directory, else `path` itself (its parent must exist).
fn destination(side: &Side, src_name: &Path) -> Result<(OwnedFd, PathBuf)> {
    let (root, path) = resolve_side(side)?;
    if let Ok(dir) = fs::open_dir(root.as_ref(), &path, &side_name(side)) {
        return Ok((dir, src_name.to_path_buf()));
    }
    let (parent, name) = split(&path, side)?;
    Ok((
        fs::open_dir(root.as_ref(), &parent, &side_name(side))?,
        name,
    ))
}

fn side_name(side: &Side) -> String {
    match side {
        Side::Host(p) => p.display().to_string(),
        Side::Target { path, .. } => path.clone(),
    }
}

/// The root to resolve in (the target's, or none for the host) and the
/// path, checked not to climb out of the target's root.
fn resolve_side(side: &Side) -> Result<(Option<OwnedFd>, PathBuf)> {
    match side {
        Side::Host(p) => Ok((None, p.clone())),
        Side::Target { pid, path } => {
            let clean = confine(path)?;
            let root = crate::sys::open(
                Path::new(&format!("/proc/{pid}/root")),
                libc::O_PATH | libc::O_DIRECTORY,
            )
            .map_err(|_| RuntimeError::NoProcess(pid.to_string()))?;
            Ok((Some(root), clean))
        }
    }
}

/// A target path made relative to its root; a path whose `..` would climb
/// above the root is refused rather than silently clamped.
pub fn confine(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir if !out.pop() => {
                return Err(RuntimeError::Escapes {
                    path: path.display().to_string(),
                });
            }
            Component::ParentDir => {}
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Parent and last name of a path to copy; the root itself has no name.
fn split(path: &Path, side: &Side) -> Result<(PathBuf, PathBuf)> {
    let name = path
        .file_name()
        .filter(|n| *n != OsStr::new(".."))
        .ok_or_else(|| RuntimeError::Io {
            path: PathBuf::from(side_name(side)),
            err: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "name a file or directory (not a root or '..'); use DIR/. forms only with '-'",
            ),
        })?;
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((parent, PathBuf::from(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_are_confined() {
        assert_eq!(
            confine("/etc/../etc/nginx").unwrap(),
            Path::new("etc/nginx")
        );
        assert_eq!(confine("a/./b/").unwrap(), Path::new("a/b"));
        assert!(confine("/../etc/passwd").is_err());
        assert!(confine("etc/../../x").is_err());
    }
}
