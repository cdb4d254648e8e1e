//! Errors of `kiln-slim`, each naming the file, command or condition at fault.

use std::path::PathBuf;

/// Errors while slimming.
#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// Reading the source tree failed.
    #[error(transparent)]
    Tree(#[from] kiln_tree::TreeError),
    /// Writing the output image failed.
    #[error(transparent)]
    Image(#[from] kiln_image::ImageError),
    /// Nothing to run.
    #[error("the image has no entrypoint or cmd to slim for; give --entrypoint (and --cmd)")]
    NoEntrypoint,
    /// Running or tracing the image failed.
    #[error(transparent)]
    Runtime(#[from] kiln_runtime::RuntimeError),
    /// Not root where it is required.
    #[error("{0} needs root (runc, a private tmpfs and fanotify); run as root or use --mode static without --verify")]
    NotRoot(&'static str),
    /// A probe could not be parsed.
    #[error("cannot split probe command {0:?} into words")]
    BadProbe(String),
    /// The slimmed image behaves differently.
    #[error("verification failed: {0}")]
    Verify(String),
}

/// Result alias.
pub type Result<T, E = SlimError> = std::result::Result<T, E>;
