//! Errors of the storage seam. Each names the database (a file, or a URL
//! without its password) so a user with several knows which one failed.

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("database {db}: {err}")]
    Sqlite {
        /// The database.
        db: String,
        /// SQLite's complaint.
        err: rusqlite::Error,
    },
    /// PostgreSQL failed (the server's message, with its SQLSTATE).
    #[error("database {db}: {}", pg_message(err))]
    Postgres {
        /// The database.
        db: String,
        /// The client's error.
        err: postgres::Error,
    },
    /// A PostgreSQL URL that does not parse.
    #[error("database URL {db}: {reason}")]
    BadUrl {
        /// The URL, without its password.
        db: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server cannot be reached or refused the login.
    #[error("database {db}: cannot connect: {reason}")]
    Connect {
        /// The database.
        db: String,
        /// Why.
        reason: String,
    },
    /// The database has tables but is not one kiln made.
    #[error("database {db}: not a kiln database (it holds tables, but no kiln schema record); give an empty database or a kiln one")]
    NotKiln {
        /// The database.
        db: String,
    },
    /// The database was written by a newer kiln.
    #[error("database {db}: schema version {found} is newer than this kiln understands ({supported}); upgrade kiln")]
    TooNew {
        /// The database.
        db: String,
        /// Version found.
        found: i64,
        /// Newest version this kiln knows.
        supported: i64,
    },
    /// A file could not be created or read.
    #[error("{db}: {err}")]
    Io {
        /// The file or directory.
        db: String,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A stored value has a type kiln never writes there.
    #[error("database column {index}: expected {wanted}, found {found}")]
    Column {
        /// The column's position in the row.
        index: usize,
        /// The type expected.
        wanted: &'static str,
        /// The type found.
        found: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The server's own message and SQLSTATE where it sent one; otherwise the
/// client's (a closed connection, a type mismatch).
pub(crate) fn pg_message(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = err.to_string();
            let mut src = std::error::Error::source(err);
            while let Some(e) = src {
                s.push_str(": ");
                s.push_str(&e.to_string());
                src = e.source();
            }
            s
        }
    }
}

impl Error {
    /// Whether retrying the transaction may succeed: a PostgreSQL
    /// serialization failure or deadlock, or SQLite busy.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Postgres { err, .. } => err.code().is_some_and(|c| {
                *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            }),
            Error::Sqlite { err, .. } => matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
