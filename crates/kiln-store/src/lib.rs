//! The storage seam under kiln's databases: one small SQL interface over
//! an embedded SQLite file (the default, one machine) and a shared
//! PostgreSQL server (many builders and scanners on many machines).
//!
//! The signature DB ([`kiln-rainbow`]) and the advisory store
//! ([`kiln-vuln`]) write their logic once against [`Conn`]. SQL is written
//! in the dialect both engines accept (`ON CONFLICT … DO NOTHING`,
//! `RETURNING`, `?N` placeholders); [`Conn`] turns `?N` into `$N` for
//! PostgreSQL and a batch key array, `rarray(?N) AS a`, into SQLite's
//! carray or PostgreSQL's `unnest`. What the engines do differently —
//! bulk inserts, write locks, snapshots, migrations — sits behind
//! methods here.
//!
//! ```no_run
//! use kiln_store::{Conn, Location, Value};
//! let conn = Conn::open(&Location::parse("postgres://kiln@localhost/kiln"), kiln_store::Mode::Write)?;
//! let rows = conn.query("SELECT name FROM package WHERE id = ?1", &[Value::Int(1)])?;
//! # Ok::<(), kiln_store::Error>(())
//! ```
#![deny(missing_docs)]

mod conn;
pub mod dump;
mod error;
mod migrate;
mod pg;
mod sqlite;
mod value;

pub use conn::{Conn, Engine, Mode, Opener};
pub use error::{Error, Result};
pub use migrate::{postgres_ddl, Migration};
pub use value::{Column, Kind, Row, Rows, Value};

use std::path::PathBuf;

/// Where a database lives: a SQLite file, or a PostgreSQL server named by
/// a `postgres://` (or `postgresql://`) URL, or a libpq key=value string
/// starting with `postgres:`.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// Read what a user typed after `--db` (or in `KILN_DB`).
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(PathBuf::from(s))
        }
    }

    /// The SQLite file, if this is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Sqlite(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Sqlite(p.clone())
    }
}

impl From<&std::path::Path> for Location {
    fn from(p: &std::path::Path) -> Self {
        Location::Sqlite(p.to_path_buf())
    }
}

/// A file's path, or the URL with any password replaced by `***`, so
/// errors and logs never show a secret.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host) = rest.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_the_rest_files() {
        assert!(matches!(
            Location::parse("postgres://h/db"),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::parse("postgresql://h/db"),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::parse("postgres.db"),
            Location::Sqlite(_)
        ));
    }

    #[test]
    fn passwords_never_print() {
        let l = Location::parse("postgres://kiln:hunter2@db.example:5432/kiln");
        assert_eq!(l.to_string(), "postgres://kiln:***@db.example:5432/kiln");
        let l = Location::parse("postgres://kiln@db/kiln");
        assert_eq!(l.to_string(), "postgres://kiln@db/kiln");
    }
}
