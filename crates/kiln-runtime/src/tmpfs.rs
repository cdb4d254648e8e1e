//! A private tmpfs for a container's root filesystem: its files are the
//! container's alone, a fanotify filesystem mark on it sees nothing of the
//! host, and unmounting it (on drop, on error, on Ctrl-C) removes all.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::error::{cpath, sys, Result, RuntimeError};

/// A tmpfs mounted at a directory, unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of at most `size` bytes at `path` (created if needed).
    pub fn mount(path: &Path, size: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path).map_err(|err| RuntimeError::Io {
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
