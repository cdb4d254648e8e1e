//! Errors of `kiln-runtime`, each naming the file, command or system call
//! at fault.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Errors while preparing, running or tracing a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// Reading the image tree failed.
    #[error(transparent)]
    Tree(#[from] kiln_tree::TreeError),
    /// runc is not installed.
    #[error("runc is not installed (running an image needs it): apt-get install runc")]
    NoRuntime,
    /// A system call failed.
    #[error("{what}: {err}")]
    Sys {
        /// What was attempted.
        what: String,
        /// The cause.
        err: std::io::Error,
    },
    /// Interrupted by a signal; everything was cleaned up.
    #[error("interrupted; mounts and containers were cleaned up")]
    Interrupted,
}

/// Result alias.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The last OS error, saying what was attempted.
pub(crate) fn sys(what: impl Into<String>) -> RuntimeError {
    RuntimeError::Sys {
        what: what.into(),
        err: std::io::Error::last_os_error(),
    }
}

/// A path as a C string for a system call.
pub(crate) fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| RuntimeError::Sys {
        what: format!("{}: path has a NUL byte", p.display()),
        err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}
