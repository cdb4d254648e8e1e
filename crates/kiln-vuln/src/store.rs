//! Advisories in kiln's embedded database, beside the signature tables.
//! Each import runs in one transaction: a failed or killed import leaves
//! the previous advisories in place.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use crate::osv::Advisory;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vuln_advisory (
    source   TEXT NOT NULL,
    id       TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE TABLE IF NOT EXISTS vuln_affected (
    source    TEXT NOT NULL,
    id        TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    package   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vuln_affected_pkg ON vuln_affected (ecosystem, package);
CREATE INDEX IF NOT EXISTS vuln_affected_id ON vuln_affected (source, id);
";

/// Errors of the advisory store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database {}: {err}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's complaint.
        err: rusqlite::Error,
    },
    /// The database cannot be written where it is (a read-only file
    /// system, no permission).
    #[error("database {}: cannot write in {}: {err}", path.display(), dir.display())]
    Unwritable {
        /// The database file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Why.
        err: std::io::Error,
    },
}

/// The directory of `path` and why a file cannot be made in it, if not.
fn unwritable(path: &Path) -> Option<(PathBuf, std::io::Error)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::tempfile_in(dir)
        .err()
        .map(|e| (dir.to_path_buf(), e))
}

/// Stores one advisory; handed to the feed of [`Store::import_with`].
pub type AddFn<'a> = dyn FnMut(&Advisory) -> Result<(), StoreError> + 'a;

/// Advisory tables in a kiln database file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating the tables if needed).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |e| StoreError::Db {
            path: path.into(),
            err: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        // SQLite says only "unable to open database file"; say why.
        let why = |e: rusqlite::Error| match unwritable(path) {
            Some((dir, io)) => StoreError::Unwritable {
                path: path.into(),
                dir,
                err: io,
            },
            None => err(e),
        };
        let conn = Connection::open(path).map_err(why)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(why)?;
        conn.execute_batch(SCHEMA).map_err(why)?;
        Ok(Store {
            conn,
            path: path.into(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            err: e,
        }
    }

    /// Store `advisories` from `source`; see [`Store::import_with`].
    pub fn import(
        &mut self,
        source: &str,
        advisories: &[Advisory],
        replace_source: bool,
    ) -> Result<usize, StoreError> {
        self.import_with(source, replace_source, &mut |add| {
            for a in advisories {
                add(a)?;
            }
            Ok(())
        })
    }

    /// Store advisories that `feed` produces one by one (so a large export
    /// never sits in memory whole). With `replace_source`, everything
    /// previously imported from that source goes (a full refresh, as for
    /// the tracker); otherwise records are upserted by id (OSV exports per
    /// ecosystem). All in one transaction: an error, or a kill, leaves the
    /// previous advisories as they were.
    pub fn import_with<E: From<StoreError>>(
        &mut self,
        source: &str,
        replace_source: bool,
        feed: &mut dyn FnMut(&mut AddFn) -> Result<(), E>,
    ) -> Result<usize, E> {
        let path = self.path.clone();
        let e = |err| StoreError::Db {
            path: path.clone(),
            err,
        };
        let tx = self.conn.transaction().map_err(e)?;
        if replace_source {
            tx.execute("DELETE FROM vuln_advisory WHERE source = ?1", [source])
                .map_err(e)?;
            tx.execute("DELETE FROM vuln_affected WHERE source = ?1", [source])
                .map_err(e)?;
        }
        let mut count = 0;
        {
            let mut del_adv = tx
                .prepare("DELETE FROM vuln_advisory WHERE source = ?1 AND id = ?2")
                .map_err(e)?;
            let mut del_aff = tx
                .prepare("DELETE FROM vuln_affected WHERE source = ?1 AND id = ?2")
                .map_err(e)?;
            let mut ins_adv = tx
                .prepare("INSERT INTO vuln_advisory (source, id, record) VALUES (?1, ?2, ?3)")
                .map_err(e)?;
            let mut ins_aff = tx
                .prepare("INSERT INTO vuln_affected (source, id, ecosystem, package) VALUES (?1, ?2, ?3, ?4)")
                .map_err(e)?;
            let mut add = |a: &Advisory| -> Result<(), StoreError> {
                if !replace_source {
                    del_adv.execute(params![source, a.id]).map_err(e)?;
                    del_aff.execute(params![source, a.id]).map_err(e)?;
                }
                let record = serde_json::to_string(a).unwrap_or_default();
                ins_adv.execute(params![source, a.id, record]).map_err(e)?;
                let mut seen = std::collections::HashSet::new();
                for aff in &a.affected {
                    if let Some(p) = &aff.package {
                        if seen.insert((p.ecosystem.clone(), p.name.clone())) {
                            ins_aff
                                .execute(params![source, a.id, p.ecosystem, p.name])
                                .map_err(e)?;
                        }
                    }
                }
                count += 1;
                Ok(())
            };
            feed(&mut add)?;
        }
        tx.commit().map_err(e)?;
        Ok(count)
    }

    /// Advisories naming `package` in `ecosystem` (or its bare family, so
    /// `Debian` records also apply to `Debian:12`).
    pub fn candidates(
        &self,
        ecosystem: &str,
        package: &str,
    ) -> Result<Vec<(String, Advisory)>, StoreError> {
        let family = ecosystem.split(':').next().unwrap_or(ecosystem);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT a.source, a.record FROM vuln_affected f
                 JOIN vuln_advisory a ON a.source = f.source AND a.id = f.id
                 WHERE f.package = ?1 AND (f.ecosystem = ?2 OR f.ecosystem = ?3)",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![package, ecosystem, family], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (source, record) = row.map_err(|e| self.err(e))?;
            if let Ok(a) = serde_json::from_str(&record) {
                out.push((source, a));
            }
        }
        Ok(out)
    }

    /// Number of advisories per source.
    pub fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, count(*) FROM vuln_advisory GROUP BY source ORDER BY source")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}
