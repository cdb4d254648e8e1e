//! Advisories in kiln's database, beside the signature tables, on either
//! engine of the storage seam (a SQLite file or PostgreSQL). Each import
//! runs in one write transaction: a failed or killed import leaves the
//! previous advisories in place.

use kiln_store::{Conn, Location, Migration, Mode, Value};

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

/// The advisory tables' migrations.
const MIGRATIONS: [Migration; 1] = [Migration {
    version: 1,
    sql: SCHEMA,
}];

/// Where the advisory tables record their version in `meta`.
const SCHEMA_KEY: &str = "vuln_schema_version";

/// Errors of the advisory store: the storage seam's.
pub type StoreError = kiln_store::Error;

/// Stores one advisory; handed to the feed of [`Store::import_with`].
pub type AddFn<'a> = dyn FnMut(&Advisory) -> Result<(), StoreError> + 'a;

/// Advisory tables in a kiln database.
#[derive(Debug)]
pub struct Store {
    conn: Conn,
}

impl Store {
    /// Open (creating the tables if needed).
    pub fn open(location: impl Into<Location>) -> Result<Store, StoreError> {
        let conn = Conn::open(&location.into(), Mode::Write)?;
        conn.migrate(SCHEMA_KEY, &MIGRATIONS)?;
        Ok(Store { conn })
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
        let conn = &self.conn;
        conn.write(|| {
            if replace_source {
                conn.execute("DELETE FROM vuln_advisory WHERE source = ?1", &[source.into()])?;
                conn.execute("DELETE FROM vuln_affected WHERE source = ?1", &[source.into()])?;
            }
            let mut count = 0;
            let mut add = |a: &Advisory| -> Result<(), StoreError> {
                let key = [source.into(), Value::from(&a.id)];
                if !replace_source {
                    conn.execute("DELETE FROM vuln_advisory WHERE source = ?1 AND id = ?2", &key)?;
                    conn.execute("DELETE FROM vuln_affected WHERE source = ?1 AND id = ?2", &key)?;
                }
                let record = serde_json::to_string(a).unwrap_or_default();
                conn.execute(
                    "INSERT INTO vuln_advisory (source, id, record) VALUES (?1, ?2, ?3)",
                    &[source.into(), Value::from(&a.id), record.into()],
                )?;
                let mut seen = std::collections::HashSet::new();
                for aff in &a.affected {
                    if let Some(p) = &aff.package {
                        if seen.insert((p.ecosystem.clone(), p.name.clone())) {
                            conn.execute(
                                "INSERT INTO vuln_affected (source, id, ecosystem, package) VALUES (?1, ?2, ?3, ?4)",
                                &[source.into(), Value::from(&a.id), Value::from(&p.ecosystem), Value::from(&p.name)],
                            )?;
                        }
                    }
                }
                count += 1;
                Ok(())
            };
            feed(&mut add)?;
            Ok(count)
        })
    }

    /// Advisories naming `package` in `ecosystem` (or its bare family, so
    /// `Debian` records also apply to `Debian:12`).
    pub fn candidates(
        &self,
        ecosystem: &str,
        package: &str,
    ) -> Result<Vec<(String, Advisory)>, StoreError> {
        let family = ecosystem.split(':').next().unwrap_or(ecosystem);
        let mut rows = self.conn.query(
            "SELECT DISTINCT a.source, a.record FROM vuln_affected f
             JOIN vuln_advisory a ON a.source = f.source AND a.id = f.id
             WHERE f.package = ?1 AND (f.ecosystem = ?2 OR f.ecosystem = ?3)",
            &[package.into(), ecosystem.into(), family.into()],
        )?;
        // The same order from either engine.
        rows.sort();
        let mut out = Vec::new();
        for r in rows {
            if let Ok(a) = serde_json::from_str(&r.text(1)?) {
                out.push((r.text(0)?, a));
            }
        }
        Ok(out)
    }

    /// Number of advisories per source.
    pub fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        for r in self.conn.query(
            "SELECT source, count(*) FROM vuln_advisory GROUP BY source",
            &[],
        )? {
            out.push((r.text(0)?, r.int(1)?));
        }
        out.sort();
        Ok(out)
    }
}

/// The advisory tables as `kiln db export` carries them.
pub const TABLES: &[kiln_store::dump::Table] = {
    use kiln_store::dump::{Kind::Text, Table};
    &[
        Table {
            name: "vuln_advisory",
            columns: &[("source", Text), ("id", Text), ("record", Text)],
            key: &["source", "id"],
            identity: None,
        },
        Table {
            name: "vuln_affected",
            columns: &[
                ("source", Text),
                ("id", Text),
                ("ecosystem", Text),
                ("package", Text),
            ],
            key: &["source", "id", "ecosystem", "package"],
            identity: None,
        },
    ]
};
