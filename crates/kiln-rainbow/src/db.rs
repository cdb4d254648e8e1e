//! The signature database, behind the storage seam: an embedded SQLite
//! file (the default) or a shared PostgreSQL database, with the same
//! versioned schema and the same logic. On SQLite a build runs in one
//! transaction in WAL mode, so a build killed at any point leaves the
//! previous database intact. On PostgreSQL a build commits every
//! [`PG_BATCH`] packages under the writers' lock, so several builders
//! share the server, and refreshes the derived tables in one transaction
//! at the end; a scan reads one snapshot throughout.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use kiln_store::{Conn, Engine, Location, Migration, Mode};
use rayon::prelude::*;
use serde::Serialize;

use crate::deb::{read_deb, DebRecord};
use crate::error::{RainbowError, Result};
use crate::writer::Writer;

/// The schema version this kiln writes and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// Where the signature tables record their version in `meta`.
const SCHEMA_KEY: &str = "schema_version";

/// The signature tables' migrations (SQLite DDL; PostgreSQL reads it
/// through [`kiln_store::postgres_ddl`]).
pub(crate) const MIGRATIONS: [Migration; 4] = [
    Migration {
        version: 1,
        sql: include_str!("schema/1.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("schema/2.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("schema/3.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("schema/4.sql"),
    },
];

/// The first schema whose contents are keyed by BLAKE3.
const BLAKE3_SCHEMA: i64 = 4;

/// Refuse signature tables of `schema` when their contents are keyed by
/// SHA-256, which kiln no longer computes (`what` names the DB, export or
/// artifact in the message). Exports and registry artifacts are checked by
/// their recorded schema alone.
pub fn require_blake3_keys(what: impl std::fmt::Display, schema: i64) -> Result<()> {
    if schema >= BLAKE3_SCHEMA {
        return Ok(());
    }
    Err(RainbowError::Outdated {
        db: what.to_string(),
        found: schema,
    })
}

/// Packages per PostgreSQL write transaction: short turns under the
/// writers' lock, so concurrent builders interleave.
pub const PG_BATCH: usize = 32;

/// A [`Db::second_reader`] not yet opened; it can cross threads.
pub struct ReaderOpener(kiln_store::Opener);

impl ReaderOpener {
    /// Connect.
    pub fn open(self) -> Result<Db> {
        Ok(Db {
            conn: self.0.open()?,
        })
    }
}

/// An open signature database.
pub struct Db {
    pub(crate) conn: Conn,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("location", self.conn.location())
            .finish()
    }
}

/// What one ingest did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    /// Packages newly added.
    pub added: usize,
    /// Packages already present and skipped.
    pub skipped: usize,
    /// Files recorded.
    pub files: usize,
    /// Archives that could not be read, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

impl IngestReport {
    /// Add what another ingest did.
    pub fn absorb(&mut self, other: IngestReport) {
        self.added += other.added;
        self.skipped += other.skipped;
        self.files += other.files;
        self.failed.extend(other.failed);
    }
}

/// Counts for `kiln db stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The database: a file, or a PostgreSQL URL without its password.
    pub path: String,
    /// Distinct package names.
    pub packages: i64,
    /// Package builds (name, version, arch).
    pub versions: i64,
    /// File rows across all versions.
    pub files: i64,
    /// Distinct paths.
    pub paths: i64,
    /// Distinct contents (unique hashes).
    pub contents: i64,
    /// ELF contents with identity facts.
    pub elf_contents: i64,
    /// ELF contents with a stored code identity (function set, digest of
    /// loaded sections).
    pub code_identities: i64,
    /// Distinct function hashes in the signatures.
    pub function_hashes: i64,
    /// Of those, shipped by several projects (set aside).
    pub common_function_hashes: i64,
    /// (project, upstream version)s with function signatures.
    pub function_versions: i64,
    /// Size of the database file (or PostgreSQL database) in bytes.
    pub size_bytes: u64,
    /// Projects with learned version templates, and the template kinds
    /// each has (`string`, `fn-int`, `libname`, …).
    pub template_projects: std::collections::BTreeMap<String, Vec<String>>,
    /// An interrupted bulk build left the derived tables stale.
    pub derive_pending: bool,
}

impl std::fmt::Display for Stats {
    /// The `kiln db stats` table: one figure a line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "database        {}", self.path)?;
        writeln!(f, "packages        {}", self.packages)?;
        writeln!(f, "versions        {}", self.versions)?;
        writeln!(f, "files           {}", self.files)?;
        writeln!(f, "paths           {}", self.paths)?;
        writeln!(f, "unique contents {}", self.contents)?;
        writeln!(f, "ELF contents    {}", self.elf_contents)?;
        writeln!(f, "code identities {}", self.code_identities)?;
        writeln!(
            f,
            "function hashes {} ({} common to several projects), in {} project versions",
            self.function_hashes, self.common_function_hashes, self.function_versions
        )?;
        let names: Vec<&str> = self.template_projects.keys().map(String::as_str).collect();
        let shown = names
            .iter()
            .take(12)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if names.len() > 12 { ", …" } else { "" };
        writeln!(
            f,
            "templates       {} projects ({shown}{more}; -o json lists them all)",
            names.len()
        )?;
        if self.derive_pending {
            writeln!(
                f,
                "derived tables  stale: an interrupted build; the next `kiln db build` refreshes them"
            )?;
        }
        write!(
            f,
            "size            {} bytes ({:.1} MiB)",
            self.size_bytes,
            self.size_bytes as f64 / 1048576.0
        )
    }
}

/// A DB from before schema 4 keys its contents by SHA-256, which a scan no
/// longer computes: reading it would match nothing by bytes, and adding
/// to it would mix two kinds of key. One that holds contents is refused
/// with the way out; an empty one migrates.
fn refuse_sha256_keys(conn: &Conn, found: Option<i64>) -> Result<()> {
    let found = found.unwrap_or(0);
    if found >= BLAKE3_SCHEMA
        || !conn.has_table("content")?
        || conn.query_int("SELECT count(*) FROM content", &[])? == 0
    {
        return Ok(());
    }
    require_blake3_keys(format!("database {}", conn.location()), found)
}

impl Db {
    /// Open (creating if needed) for writing, and bring the schema up to
    /// date. A SQLite directory kiln cannot write in (a read-only file
    /// system) is said to be one.
    pub fn open(location: impl Into<Location>) -> Result<Db> {
        let conn = Conn::open(&location.into(), Mode::Write)?;
        refuse_sha256_keys(&conn, conn.schema_version(SCHEMA_KEY)?)?;
        conn.migrate(SCHEMA_KEY, &MIGRATIONS)?;
        Ok(Db { conn })
    }

    /// Open an existing database for reading (also from read-only media).
    /// On PostgreSQL every query reads the snapshot taken here.
    pub fn open_readonly(location: impl Into<Location>) -> Result<Db> {
        let location = location.into();
        let conn = Conn::open(&location, Mode::Read)?;
        let found = conn.check_version(SCHEMA_KEY, SCHEMA_VERSION)?;
        if found.is_none() && !conn.has_table("package")? {
            return Err(RainbowError::Empty(location.to_string()));
        }
        refuse_sha256_keys(&conn, found)?;
        Ok(Db { conn })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        self.conn.location()
    }

    /// The connection, for the advisory store and exports that share it.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The schema version the DB was built with (this kiln's, for a DB
    /// without one recorded). DBs before schema 4 that hold contents are
    /// refused on open (their keys are SHA-256).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .schema_version(SCHEMA_KEY)?
            .unwrap_or(SCHEMA_VERSION))
    }

    /// Write a consistent, compacted copy of a SQLite database to `dest`
    /// (which must not exist) while readers and writers carry on: `VACUUM
    /// INTO` reads one snapshot of the DB. A PostgreSQL database is copied
    /// with `kiln db export` instead.
    pub fn snapshot(&self, dest: &Path) -> Result<()> {
        let text = dest.to_str().ok_or_else(|| RainbowError::Io {
            path: dest.into(),
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        })?;
        if self.conn.engine() != Engine::Sqlite {
            return Err(RainbowError::Io {
                path: dest.into(),
                err: std::io::Error::other(
                    "a PostgreSQL database is copied with `kiln db export`, not as a file",
                ),
            });
        }
        self.conn.execute("VACUUM INTO ?1", &[text.into()])?;
        Ok(())
    }

    /// SQLite's `quick_check`: every page and index is readable and well
    /// formed. An error names the first problem found. PostgreSQL checks
    /// its own pages; there kiln checks the schema is its own.
    pub fn check(&self) -> Result<()> {
        if self.conn.engine() != Engine::Sqlite {
            self.conn.check_version(SCHEMA_KEY, SCHEMA_VERSION)?;
            return Ok(());
        }
        let first = self
            .conn
            .query_row("PRAGMA quick_check(1)", &[])?
            .map(|r| r.text(0))
            .transpose()?
            .unwrap_or_default();
        if first == "ok" {
            return Ok(());
        }
        Err(RainbowError::Corrupt {
            db: self.location().to_string(),
            reason: format!("the database is damaged: {first}"),
        })
    }

    /// A second, independent read connection to the same database (on
    /// PostgreSQL: from the pool, reading the same snapshot).
    pub fn second_reader(&self) -> Result<Db> {
        Ok(Db {
            conn: self.conn.second()?,
        })
    }

    /// [`Db::second_reader`], opened later, on whichever thread calls
    /// [`ReaderOpener::open`]: a scan's helper threads connect while the
    /// layers start streaming rather than before.
    pub fn reader_opener(&self) -> ReaderOpener {
        ReaderOpener(self.conn.opener())
    }

    /// Read `.deb` files (and `.whl` wheels, npm tarballs) in parallel and
    /// add the packages not yet present, deriving templates and function
    /// commonness at the end. `progress` is called once per archive read.
    pub fn ingest_debs(
        &mut self,
        debs: &[PathBuf],
        progress: &(dyn Fn(&Path) + Sync),
    ) -> Result<IngestReport> {
        self.ingest(debs, progress, Derive::Now)
    }

    /// [`Db::ingest_debs`], with the derivation now or, for a build of
    /// many batches, later: each batch commits its raw facts and marks the
    /// derived tables stale, and [`Db::derive`] refreshes them once at the
    /// end. Scans meanwhile see the derived state of the last finished
    /// build, never a half-derived one.
    pub fn ingest(
        &mut self,
        debs: &[PathBuf],
        progress: &(dyn Fn(&Path) + Sync),
        derive: Derive,
    ) -> Result<IngestReport> {
        let known = self.known_packages()?;
        let (tx, rx) = mpsc::sync_channel::<(PathBuf, Result<DebRecord>)>(16);
        let mut report = IngestReport::default();
        // SQLite: the whole ingest is one transaction, derived in it too.
        // PostgreSQL: turns of `PG_BATCH` packages, derived at the end.
        let whole = self.conn.engine() == Engine::Sqlite;
        let batch = if whole { usize::MAX } else { PG_BATCH };
        let conn = &self.conn;
        let mut writer = Writer::new(conn);
        // Packages written in the open transaction, if one is open.
        let mut open: Option<usize> = None;
        if whole {
            conn.begin_write()?;
            open = Some(0);
        }
        let result = std::thread::scope(|s| -> Result<()> {
            s.spawn(move || {
                debs.par_iter().for_each_with(tx, |tx, p| {
                    let _ = tx.send((p.clone(), read_archive(p)));
                    progress(p);
                });
            });
            for (path, rec) in rx {
                let rec = match rec {
                    Ok(rec) => rec,
                    Err(e) => {
                        report.failed.push((path, e.to_string()));
                        continue;
                    }
                };
                if known.contains(&(rec.name.clone(), rec.version.clone(), rec.arch.clone())) {
                    report.skipped += 1;
                    continue;
                }
                if open.is_none() {
                    conn.begin_write()?;
                }
                let written = open.unwrap_or(0) + 1;
                open = Some(written);
                if writer.add(&rec)? {
                    report.added += 1;
                    report.files += rec.files.len();
                } else {
                    report.skipped += 1;
                }
                if written >= batch {
                    open = None;
                    finish_batch(conn, &mut writer, Derive::Later)?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            if open.is_some() {
                let _ = conn.end_write(false);
            }
            return Err(e);
        }
        if open.is_some() {
            finish_batch(
                conn,
                &mut writer,
                if whole { derive } else { Derive::Later },
            )?;
        }
        if derive == Derive::Now && !whole {
            self.derive()?;
        }
        Ok(report)
    }

    /// Refresh the derived tables (templates, their specificity, function
    /// commonness and distinctive counts) in one write transaction.
    pub fn derive(&mut self) -> Result<()> {
        let conn = &self.conn;
        conn.write(|| derive_in(conn))
    }

    /// Whether an ingest left the derived tables stale (an interrupted
    /// bulk build): the next build's derivation refreshes them.
    pub fn derive_pending(&self) -> Result<bool> {
        Ok(self.conn.query_int(
            "SELECT count(*) FROM meta WHERE key = 'derive_pending' AND value = '1'",
            &[],
        )? > 0)
    }

    /// Every (name, version, arch) the DB holds.
    pub fn known_packages(&self) -> Result<std::collections::HashSet<(String, String, String)>> {
        let mut out = std::collections::HashSet::new();
        self.conn.for_each(
            "SELECT name, version, arch FROM package",
            &[],
            &mut |r| -> Result<()> {
                out.insert((r.text(0)?, r.text(1)?, r.text(2)?));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Counts and size.
    pub fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| self.conn.query_int(sql, &[]);
        Ok(Stats {
            path: self.location().to_string(),
            packages: count("SELECT count(DISTINCT name) FROM package")?,
            versions: count("SELECT count(*) FROM package")?,
            files: count("SELECT count(*) FROM file")?,
            paths: count("SELECT count(*) FROM path")?,
            contents: count("SELECT count(*) FROM content")?,
            elf_contents: count("SELECT count(*) FROM elf")?,
            code_identities: count("SELECT count(*) FROM elf_functions")?,
            function_hashes: count("SELECT count(*) FROM func_hash")?,
            common_function_hashes: count("SELECT count(*) FROM func_hash WHERE common <> 0")?,
            function_versions: count("SELECT count(*) FROM func_version")?,
            size_bytes: self.conn.size_bytes(),
            template_projects: self.template_projects()?,
            derive_pending: self.derive_pending()?,
        })
    }

    /// Projects with templates and their kinds.
    fn template_projects(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        self.conn.for_each(
            "SELECT DISTINCT project, kind FROM template",
            &[],
            &mut |r| -> Result<()> {
                out.entry(r.text(0)?).or_default().push(r.text(1)?);
                Ok(())
            },
        )?;
        out.values_mut().for_each(|kinds| kinds.sort());
        Ok(out)
    }
}

/// A package archive read by its kind: wheel, npm tarball or `.deb`.
fn read_archive(p: &Path) -> Result<DebRecord> {
    if p.extension().is_some_and(|x| x == "whl") {
        crate::wheel::read_wheel(p)
    } else if crate::npm::is_tarball(p) {
        crate::npm::read_tarball(p)
    } else {
        read_deb(p)
    }
}

/// Close an open write transaction: postings merged, derived tables
/// refreshed or marked stale, committed.
fn finish_batch(conn: &Conn, writer: &mut Writer<'_>, derive: Derive) -> Result<()> {
    let done = writer
        .flush_functions()
        .map_err(RainbowError::from)
        .and_then(|()| match derive {
            Derive::Now => derive_in(conn),
            Derive::Later => set_stale(conn, true),
        });
    conn.end_write(done.is_ok())?;
    done
}

/// When an ingest refreshes the derived tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derive {
    /// In the ingest's own transaction.
    Now,
    /// Later, with [`Db::derive`]; the ingest marks them stale.
    Later,
}

fn derive_in(conn: &Conn) -> Result<()> {
    crate::templates::derive(conn)?;
    set_stale(conn, false)
}

fn set_stale(conn: &Conn, stale: bool) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('derive_pending', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[if stale { "1" } else { "0" }.into()],
    )?;
    Ok(())
}

/// The signature tables as `kiln db export` carries them, parents before
/// the rows that refer to them.
pub const TABLES: &[kiln_store::dump::Table] = {
    use kiln_store::dump::{Kind::*, Table};
    &[
        Table {
            name: "meta",
            columns: &[("key", Text), ("value", Text)],
            key: &["key"],
            identity: None,
        },
        Table {
            name: "package",
            columns: &[
                ("id", Int),
                ("ecosystem", Text),
                ("name", Text),
                ("version", Text),
                ("arch", Text),
                ("source", Text),
                ("source_version", Text),
                ("depends", Text),
                ("archive_sha256", Text),
            ],
            key: &["id"],
            identity: Some("id"),
        },
        Table {
            name: "path",
            columns: &[("id", Int), ("path", Text)],
            key: &["id"],
            identity: Some("id"),
        },
        Table {
            name: "content",
            columns: &[("id", Int), ("digest", Blob), ("size", Int)],
            key: &["id"],
            identity: Some("id"),
        },
        Table {
            name: "file",
            columns: &[
                ("package_id", Int),
                ("path_id", Int),
                ("kind", Text),
                ("mode", Int),
                ("content_id", Int),
                ("link_target", Text),
                ("conffile", Int),
            ],
            key: &["package_id", "path_id"],
            identity: None,
        },
        Table {
            name: "elf",
            columns: &[
                ("content_id", Int),
                ("machine", Int),
                ("kind", Int),
                ("build_id", Blob),
                ("soname", Text),
                ("note_package", Text),
                ("needed", Text),
                ("verdefs", Text),
            ],
            key: &["content_id"],
            identity: None,
        },
        Table {
            name: "elf_string",
            columns: &[("content_id", Int), ("s", Text)],
            key: &["content_id", "s"],
            identity: None,
        },
        Table {
            name: "template_seen",
            columns: &[
                ("project", Text),
                ("kind", Text),
                ("symbol", Text),
                ("pattern", Text),
                ("version", Text),
            ],
            key: &["project", "kind", "symbol", "pattern", "version"],
            identity: None,
        },
        Table {
            name: "libname_seen",
            columns: &[
                ("project", Text),
                ("base", Text),
                ("file_version", Text),
                ("version", Text),
            ],
            key: &["project", "base", "file_version", "version"],
            identity: None,
        },
        Table {
            name: "template",
            columns: &[
                ("id", Int),
                ("project", Text),
                ("kind", Text),
                ("symbol", Text),
                ("pattern", Text),
                ("versions", Int),
                ("others", Int),
            ],
            key: &["id"],
            identity: Some("id"),
        },
        Table {
            name: "func_version",
            columns: &[
                ("id", Int),
                ("project", Text),
                ("version", Text),
                ("distinctive", Int),
            ],
            key: &["id"],
            identity: Some("id"),
        },
        Table {
            name: "func_hash",
            columns: &[("hash", Int), ("common", Int), ("versions", Blob)],
            key: &["hash"],
            identity: None,
        },
        Table {
            name: "elf_functions",
            columns: &[("content_id", Int), ("hashes", Blob), ("loaded", Blob)],
            key: &["content_id"],
            identity: None,
        },
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(dir: &tempfile::TempDir) -> Location {
        Location::Sqlite(dir.path().join("sig.db"))
    }

    /// A DB as schema 3 left it: SHA-256 keys in `content.sha256`.
    fn schema3(dir: &tempfile::TempDir, rows: bool) -> Location {
        let loc = sqlite(dir);
        let conn = Conn::open(&loc, Mode::Write).unwrap();
        conn.migrate(SCHEMA_KEY, &MIGRATIONS[..3]).unwrap();
        if rows {
            conn.execute(
                "INSERT INTO content (sha256, size) VALUES (?1, 3)",
                &[vec![0u8; 32].into()],
            )
            .unwrap();
        }
        loc
    }

    #[test]
    fn a_schema3_db_with_contents_is_refused_for_reading_and_writing() {
        let dir = tempfile::tempdir().unwrap();
        let loc = schema3(&dir, true);
        for err in [
            Db::open_readonly(loc.clone()).err().unwrap(),
            Db::open(loc.clone()).err().unwrap(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(err, RainbowError::Outdated { found: 3, .. }),
                "{text}"
            );
            assert!(
                text.contains("sig.db") && text.contains("kiln db build"),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_schema3_db_migrates_to_blake3_keys() {
        let dir = tempfile::tempdir().unwrap();
        let loc = schema3(&dir, false);
        let db = Db::open(loc).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let n = db
            .conn
            .query_int("SELECT count(*) FROM content WHERE digest IS NULL", &[])
            .unwrap();
        assert_eq!(n, 0);
    }
}
