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
    /// No container with this id under the state roots searched.
    #[error("no runc container named '{id}' (searched {roots}); `kiln ps` lists the ones kiln can see, --runc-root names another state root")]
    UnknownContainer {
        /// The id given.
        id: String,
        /// The roots searched.
        roots: String,
    },
    /// The container exists but cannot be entered.
    #[error("container '{id}' is {status}: {}", match status {
        crate::container::Status::Paused => "resume it first (runc resume)",
        _ => "only a running container can be entered",
    })]
    NotRunning {
        /// The container.
        id: String,
        /// Its status.
        status: crate::container::Status,
    },
    /// `pid:N` names no process.
    #[error("no process with pid {0}")]
    NoProcess(String),
    /// Entering namespaces and mounting need root.
    #[error("{0} needs root (it joins another process's namespaces and mounts); run it with sudo")]
    NotRoot(&'static str),
    /// No toolbox: neither given nor installed.
    #[error("{0}")]
    Toolbox(String),
    /// A path given for `cp` that leaves the target's root.
    #[error("{path}: climbs out of the target's root through '..'")]
    Escapes {
        /// The path.
        path: String,
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
