//! Errors of the rainbow table.

use std::path::PathBuf;

/// An error building, reading or matching against the signature DB.
#[derive(Debug, thiserror::Error)]
pub enum RainbowError {
    /// A `.deb` could not be read.
    #[error("{}: {reason}", path.display())]
    BadDeb {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// I/O on a named file.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] kiln_store::Error),
    /// A DB built before schema 4 keys file contents by SHA-256; kiln
    /// cannot convert those keys without the files.
    #[error("{db}: signature schema {found} keys file contents by SHA-256, which this kiln no longer reads (schema 4 uses BLAKE3); rebuild it with `kiln db build`")]
    Outdated {
        /// The database, export or artifact, as the message names it.
        db: String,
        /// Its schema version.
        found: i64,
    },
    /// A database with no signature tables was opened for reading.
    #[error("database {0}: no signature tables here; build them with `kiln db build`")]
    Empty(String),
    /// The image's files could not be read again.
    #[error(transparent)]
    Tree(#[from] kiln_tree::TreeError),
    /// A bug in kiln (a worker thread panicked), reported rather than
    /// hidden behind an empty answer.
    #[error("internal error: {0}")]
    Internal(String),
    /// A stored value is not one kiln writes.
    #[error("database {db}: {reason}")]
    Corrupt {
        /// The database.
        db: String,
        /// What is wrong.
        reason: String,
    },
    /// The DB's version templates do not compile.
    #[error("version templates: {0}")]
    Template(String),
    /// `apt-get` failed or is missing.
    #[error("apt: {0}")]
    Apt(String),
}

/// Result alias for this crate.
pub type Result<T, E = RainbowError> = std::result::Result<T, E>;

impl RainbowError {
    /// A helper thread (`what`) panicked: a bug, reported with the panic's
    /// message rather than taking the caller down with it.
    pub fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        RainbowError::Internal(format!("the {what} thread panicked: {why}"))
    }
}
