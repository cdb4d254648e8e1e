//! Errors building or reading a squashed tree.

use std::path::PathBuf;

use kiln_image::ImageError;

/// An error building or reading a [`crate::Tree`].
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The image source failed (missing blob, digest mismatch, bomb, …).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A layer's tar stream is corrupt or truncated.
    #[error("layer {layer}: corrupt tar: {reason}")]
    CorruptTar {
        /// The layer's digest.
        layer: String,
        /// What went wrong.
        reason: String,
    },
    /// A member name climbs out of the root with `..`.
    #[error("layer {layer}: entry {path:?} climbs out of the image root")]
    PathEscape {
        /// The layer's digest.
        layer: String,
        /// The offending member name.
        path: String,
    },
    /// Symlinks loop, or chain more than the kernel's 40 hops.
    #[error("{path}: too many levels of symbolic links (loop?)")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// The path is not in the tree.
    #[error("{path}: no such file in the image")]
    NotFound {
        /// The path asked for (as resolved inside the image).
        path: String,
    },
    /// The path is not a regular file.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The path asked for.
        path: String,
    },
    /// A file is larger than the caller allowed.
    #[error("{path}: {size} bytes is more than the {limit} allowed")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// I/O on a `dir:` source.
    #[error("{}: {err}", path.display())]
    Io {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
}

impl TreeError {
    /// Classify an I/O error from a layer stream: a wrapped [`ImageError`]
    /// comes back out as itself, anything else is a corrupt tar.
    pub(crate) fn from_layer_io(layer: &str, e: std::io::Error) -> Self {
        if ImageError::from_io(&e).is_some() {
            return TreeError::Image(kiln_image::LayerReader::unwrap_error(e));
        }
        TreeError::CorruptTar {
            layer: layer.to_string(),
            reason: e.to_string(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = TreeError> = std::result::Result<T, E>;
