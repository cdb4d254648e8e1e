//! Versioned schema migrations, embedded in the binary: each component
//! (the signature tables, the advisory tables) lists its steps for both
//! engines and records the version reached in the `meta` table, so a
//! database is brought up to date on open and one written by a newer kiln
//! is refused rather than misread.

use crate::conn::{Conn, Engine};
use crate::error::{Error, Result};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version this step brings the component to.
    pub version: i64,
    /// The step in SQLite's SQL.
    pub sqlite: &'static str,
    /// The same step in PostgreSQL's.
    pub postgres: &'static str,
}

const META: &str = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

impl Conn {
    /// The version `key` records, if the database has kiln's `meta` table
    /// and the key; `Err(NotKiln)` when it holds other tables but no
    /// `meta`.
    pub fn schema_version(&self, key: &str) -> Result<Option<i64>> {
        if !self.has_table("meta")? {
            if self.table_count()? > 0 {
                return Err(Error::NotKiln { db: self.db() });
            }
            return Ok(None);
        }
        let row = self.query_row("SELECT value FROM meta WHERE key = ?1", &[key.into()])?;
        Ok(match row {
            Some(r) => r.text(0)?.parse().ok(),
            None => None,
        })
    }

    /// Apply the steps of `migrations` (in version order) newer than the
    /// version `key` records, in one write transaction, and record the
    /// last. Returns the version now in place.
    pub fn migrate(&self, key: &str, migrations: &[Migration]) -> Result<i64> {
        let latest = migrations.last().map_or(0, |m| m.version);
        self.write(|| {
            let found = self.schema_version(key)?.unwrap_or(0);
            if found > latest {
                return Err(Error::TooNew {
                    db: self.db(),
                    found,
                    supported: latest,
                });
            }
            if found == latest {
                return Ok(latest);
            }
            self.batch(META)?;
            for m in migrations.iter().filter(|m| m.version > found) {
                self.batch(match self.engine() {
                    Engine::Sqlite => m.sqlite,
                    Engine::Postgres => m.postgres,
                })?;
            }
            self.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[key.into(), latest.to_string().into()],
            )?;
            Ok(latest)
        })
    }

    /// Refuse a database of a newer schema than `supported`, for readers.
    pub fn check_version(&self, key: &str, supported: i64) -> Result<Option<i64>> {
        let found = self.schema_version(key)?;
        if let Some(found) = found.filter(|f| *f > supported) {
            return Err(Error::TooNew {
                db: self.db(),
                found,
                supported,
            });
        }
        Ok(found)
    }
}
