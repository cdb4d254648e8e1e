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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, Location, Mode, Value};

    const STEPS: [Migration; 2] = [
        Migration {
            version: 1,
            sqlite: "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT UNIQUE)",
            postgres: "",
        },
        Migration {
            version: 2,
            sqlite: "CREATE TABLE IF NOT EXISTS u (k TEXT)",
            postgres: "",
        },
    ];

    fn open(dir: &tempfile::TempDir) -> Conn {
        Conn::open(&Location::Sqlite(dir.path().join("x.db")), Mode::Write).unwrap()
    }

    #[test]
    fn migrations_apply_once_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir);
        assert_eq!(c.schema_version("v").unwrap(), None);
        assert_eq!(c.migrate("v", &STEPS[..1]).unwrap(), 1);
        assert!(!c.has_table("u").unwrap());
        assert_eq!(c.migrate("v", &STEPS).unwrap(), 2);
        assert!(c.has_table("u").unwrap());
        c.execute("UPDATE meta SET value = '7' WHERE key = 'v'", &[])
            .unwrap();
        let err = c.migrate("v", &STEPS).unwrap_err().to_string();
        assert!(err.contains("schema version 7 is newer"), "{err}");
    }

    #[test]
    fn a_database_with_other_tables_is_not_kiln() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir);
        c.batch("CREATE TABLE orders (id INTEGER)").unwrap();
        let err = c.migrate("v", &STEPS).unwrap_err();
        assert!(matches!(err, Error::NotKiln { .. }), "{err}");
    }

    #[test]
    fn bulk_inserts_return_ids_and_key_batches_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir);
        c.migrate("v", &STEPS).unwrap();
        let keys = vec![Some("a".to_string()), Some("b".to_string())];
        let rows = c
            .insert_rows(
                "INSERT INTO t (k)",
                "RETURNING k, id",
                &[Column::Text(keys)],
            )
            .unwrap();
        assert_eq!(rows.len(), 2);
        let found = c
            .query(
                "SELECT t.k FROM rarray(?1) AS a CROSS JOIN t ON t.k = a.value",
                &[Value::Texts(vec!["b".into(), "z".into()])],
            )
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text(0).unwrap(), "b");
        // A failed write transaction leaves nothing behind.
        let r: Result<()> = c.write(|| {
            c.execute("INSERT INTO u (k) VALUES ('x')", &[])?;
            Err(Error::NotKiln { db: "test".into() })
        });
        assert!(r.is_err());
        assert_eq!(c.query_int("SELECT count(*) FROM u", &[]).unwrap(), 0);
    }
}
