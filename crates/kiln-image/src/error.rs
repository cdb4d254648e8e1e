//! Typed errors for image sources. Every variant names the file, blob or
//! path at fault so that a user can tell *what* is broken, not just that
//! something is.

use std::path::PathBuf;

/// An error opening or reading an image source.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The source string could not be understood.
    #[error("invalid source {input:?}: {reason}")]
    BadReference {
        /// What the user typed.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// An I/O error on a named file.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A JSON document (index, manifest, config) did not parse.
    #[error("{what}: invalid JSON: {err}")]
    Json {
        /// Which document, e.g. `blob sha256:… (image manifest)`.
        what: String,
        /// The parser's complaint.
        err: serde_json::Error,
    },
    /// A blob named by a manifest or index is not in the source.
    #[error("blob {digest} is missing from {location}")]
    MissingBlob {
        /// The digest that was looked for.
        digest: String,
        /// The layout or archive searched.
        location: String,
    },
    /// A blob's content does not hash to its digest.
    #[error("blob {expected}: digest mismatch: content hashes to {actual}")]
    DigestMismatch {
        /// The digest the manifest promised.
        expected: String,
        /// The digest the bytes have.
        actual: String,
    },
    /// A blob has a different size than its descriptor claims.
    #[error("blob {digest}: size mismatch: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size observed.
        actual: u64,
    },
    /// A digest string is malformed or uses an algorithm kiln does not verify.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    BadDigest(String),
    /// A layer or manifest media type kiln does not understand.
    #[error("blob {digest}: unsupported media type {media_type:?}")]
    UnknownMediaType {
        /// The blob's digest.
        digest: String,
        /// The media type found.
        media_type: String,
    },
    /// No manifest in an index matches the requested platform.
    #[error("{location}: no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform {
        /// The index searched.
        location: String,
        /// The requested platform.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// The requested reference (tag / ref name) is not in the layout.
    #[error("{location}: no image named {reference:?} (available: {available})")]
    NoSuchReference {
        /// The layout searched.
        location: String,
        /// The ref asked for.
        reference: String,
        /// What the layout offers.
        available: String,
    },
    /// A layout or archive holds several images and no reference picks one.
    #[error("{location}: holds {count} images; name one with {hint}")]
    AmbiguousImage {
        /// The layout searched.
        location: String,
        /// How many candidates were found.
        count: usize,
        /// How to pick one.
        hint: String,
    },
    /// A registry refused or failed a request; `location` is
    /// `HOST/REPOSITORY` (never with credentials).
    #[error("{location}: {reason}")]
    Registry {
        /// `HOST/REPOSITORY`, or the host alone.
        location: String,
        /// What went wrong, with the HTTP status where there is one.
        reason: String,
    },
    /// The source is structurally not what it claims to be.
    #[error("{location}: {reason}")]
    Malformed {
        /// The source file or directory.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer decompresses to more than the configured limits allow.
    #[error("blob {digest}: refused as a decompression bomb: {reason}")]
    DecompressionBomb {
        /// The layer's digest.
        digest: String,
        /// Which limit was passed.
        reason: String,
    },
    /// A compressed stream is corrupt or truncated.
    #[error("blob {digest}: corrupt {format} stream: {err}")]
    Corrupt {
        /// The layer's digest.
        digest: String,
        /// gzip or zstd.
        format: &'static str,
        /// The decoder's complaint.
        err: std::io::Error,
    },
}

impl ImageError {
    /// An I/O error reading from a source that is not one file (an
    /// archive member, a registry blob), named by its location.
    pub(crate) fn at(location: &str, err: std::io::Error) -> Self {
        ImageError::Io {
            path: PathBuf::from(location),
            err,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            err,
        }
    }

    /// Wrap this error in an `io::Error` so it can travel through `Read`
    /// adapters and be recovered with [`ImageError::from_io`].
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// Recover an `ImageError` that was wrapped by [`ImageError::into_io`],
    /// or `None` if the I/O error came from somewhere else.
    pub fn from_io(err: &std::io::Error) -> Option<&ImageError> {
        err.get_ref().and_then(|e| e.downcast_ref::<ImageError>())
    }
}

/// Result alias for this crate.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
