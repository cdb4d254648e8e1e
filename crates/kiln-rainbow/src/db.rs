//! The signature database: an embedded SQLite file with a versioned,
//! portable schema. Builds run in one transaction in WAL mode, so a build
//! killed at any point leaves the previous database intact and readable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use kiln_catalog::Ecosystem;
use rayon::prelude::*;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::deb::{read_deb, DebRecord, FileKind};
use crate::error::{RainbowError, Result};

/// The schema version this kiln writes and reads.
pub const SCHEMA_VERSION: i64 = 3;
const SCHEMA: &str = include_str!("schema.sql");

/// An open signature database.
pub struct Db {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
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
    /// Database file.
    pub path: PathBuf,
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
    /// Size of the database file in bytes.
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
        writeln!(f, "database        {}", self.path.display())?;
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

/// A connection that can read `path`. A database in WAL mode needs its
/// shared-memory file even to be read; on a read-only file system (a DB
/// shipped in an image or a read-only volume) that cannot be made, so the
/// file is opened as immutable, which it is there.
fn connect_for_reading(path: &Path) -> Result<Connection> {
    let usable = |c: Connection| -> rusqlite::Result<Connection> {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(c)
    };
    let normal = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY))
    .and_then(usable);
    let err = match normal {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if tempfile::tempfile_in(dir).is_ok() {
        return Err(db_err(path, err));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| RainbowError::Io {
        path: path.into(),
        err: e,
    })?;
    let uri = format!("file:{}?immutable=1", uri_escape(&abs.to_string_lossy()));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(usable)
    .map_err(|e| db_err(path, e))
}

/// Escape what a SQLite URI filename gives meaning to.
fn uri_escape(p: &str) -> String {
    p.chars()
        .map(|c| match c {
            '%' => "%25".to_string(),
            '?' => "%3f".to_string(),
            '#' => "%23".to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl Db {
    /// Open (creating if needed) for writing. A directory kiln cannot
    /// write in (a read-only file system) is said to be one, rather than
    /// SQLite's "unable to open database file".
    pub fn open(path: &Path) -> Result<Db> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| RainbowError::Io {
            path: dir.into(),
            err: e,
        })?;
        tempfile::tempfile_in(dir).map_err(|e| RainbowError::Io {
            path: dir.into(),
            err: e,
        })?;
        let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
        let db = Db {
            conn,
            path: path.into(),
        };
        db.pragma()?;
        db.check_version()?;
        db.conn.execute_batch(SCHEMA).map_err(|e| db.err(e))?;
        db.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(|e| db.err(e))?;
        Ok(db)
    }

    /// Open an existing database for reading, also from read-only media.
    pub fn open_readonly(path: &Path) -> Result<Db> {
        if !path.exists() {
            return Err(RainbowError::Io {
                path: path.into(),
                err: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no signature database here; build one with `kiln db build`",
                ),
            });
        }
        let conn = connect_for_reading(path)?;
        let db = Db {
            conn,
            path: path.into(),
        };
        db.check_version()?;
        Ok(db)
    }

    fn pragma(&self) -> Result<()> {
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
                 PRAGMA cache_size = -65536;",
            )
            .map_err(|e| self.err(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the DB was built with (this kiln's, for a DB
    /// without one recorded). Older DBs still work; they lack what later
    /// schemas added (schema 3: code identities and compact function
    /// signatures).
    pub fn schema_version(&self) -> Result<i64> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.err(e))?
            > 0;
        if !has_meta {
            return Ok(SCHEMA_VERSION);
        }
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(found.and_then(|v| v.parse().ok()).unwrap_or(SCHEMA_VERSION))
    }

    fn check_version(&self) -> Result<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(RainbowError::SchemaTooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> RainbowError {
        db_err(&self.path, e)
    }

    /// Write a consistent, compacted copy of the database to `dest` (which
    /// must not exist) while readers and writers carry on: `VACUUM INTO`
    /// reads one snapshot of the DB.
    pub fn snapshot(&self, dest: &Path) -> Result<()> {
        let text = dest.to_str().ok_or_else(|| RainbowError::Io {
            path: dest.into(),
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        })?;
        self.conn
            .execute("VACUUM INTO ?1", params![text])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// SQLite's `quick_check`: every page and index is readable and well
    /// formed. An error names the first problem found.
    pub fn check(&self) -> Result<()> {
        let first: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if first == "ok" {
            return Ok(());
        }
        Err(RainbowError::Io {
            path: self.path.clone(),
            err: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the database is damaged: {first}"),
            ),
        })
    }

    /// A second, independent read connection to the same database.
    pub(crate) fn reopen(&self) -> Result<Db> {
        Db::open_readonly(&self.path)
    }

    /// Read `.deb` files (and `.whl` wheels) in parallel and add the packages not yet present,
    /// all in one transaction, deriving templates and function commonness
    /// in it too. `progress` is called once per archive read.
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
        let known = self.known_archives()?;
        let (tx, rx) = mpsc::sync_channel::<(PathBuf, Result<DebRecord>)>(16);
        let mut report = IngestReport::default();
        let db_path = self.path.clone();
        let txn = self.conn.transaction().map_err(|e| db_err(&db_path, e))?;
        let mut writer = Writer::new(&txn).map_err(|e| db_err(&db_path, e))?;
        std::thread::scope(|s| -> Result<()> {
            s.spawn(move || {
                debs.par_iter().for_each_with(tx, |tx, p| {
                    let rec = if p.extension().is_some_and(|x| x == "whl") {
                        crate::wheel::read_wheel(p)
                    } else if crate::npm::is_tarball(p) {
                        crate::npm::read_tarball(p)
                    } else {
                        read_deb(p)
                    };
                    progress(p);
                    let _ = tx.send((p.clone(), rec));
                });
            });
            for (path, rec) in rx {
                match rec {
                    Ok(rec) => {
                        if known.contains_key(&(
                            rec.name.clone(),
                            rec.version.clone(),
                            rec.arch.clone(),
                        )) {
                            report.skipped += 1;
                            continue;
                        }
                        match writer.add(&rec).map_err(|e| db_err(&db_path, e))? {
                            true => {
                                report.added += 1;
                                report.files += rec.files.len();
                            }
                            false => report.skipped += 1,
                        }
                    }
                    Err(e) => report.failed.push((path, e.to_string())),
                }
            }
            Ok(())
        })?;
        writer.flush_functions().map_err(|e| db_err(&db_path, e))?;
        drop(writer);
        match derive {
            Derive::Now => derive_in(&txn, &db_path)?,
            Derive::Later => set_stale(&txn, true).map_err(|e| db_err(&db_path, e))?,
        }
        txn.commit().map_err(|e| db_err(&db_path, e))?;
        Ok(report)
    }

    /// Refresh the derived tables (templates, their specificity, function
    /// commonness and distinctive counts) in one transaction.
    pub fn derive(&mut self) -> Result<()> {
        let db_path = self.path.clone();
        let txn = self.conn.transaction().map_err(|e| db_err(&db_path, e))?;
        derive_in(&txn, &db_path)?;
        txn.commit().map_err(|e| db_err(&db_path, e))
    }

    /// Whether an ingest left the derived tables stale (an interrupted
    /// bulk build): the next build's derivation refreshes them.
    pub fn derive_pending(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM meta WHERE key = 'derive_pending' AND value = '1'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Every (name, version, arch) the DB holds.
    pub fn known_packages(&self) -> Result<std::collections::HashSet<(String, String, String)>> {
        Ok(self.known_archives()?.into_keys().collect())
    }

    fn known_archives(&self) -> Result<HashMap<(String, String, String), ()>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, version, arch FROM package")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), ())))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Counts and size.
    pub fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        Ok(Stats {
            path: self.path.clone(),
            packages: count("SELECT count(DISTINCT name) FROM package")?,
            versions: count("SELECT count(*) FROM package")?,
            files: count("SELECT count(*) FROM file")?,
            paths: count("SELECT count(*) FROM path")?,
            contents: count("SELECT count(*) FROM content")?,
            elf_contents: count("SELECT count(*) FROM elf")?,
            // Tables of schema 3; a DB of an older schema has none.
            code_identities: count("SELECT count(*) FROM elf_functions").unwrap_or(0),
            function_hashes: count("SELECT count(*) FROM func_hash").unwrap_or(0),
            common_function_hashes: count("SELECT count(*) FROM func_hash WHERE common")
                .unwrap_or(0),
            function_versions: count("SELECT count(*) FROM func_version").unwrap_or(0),
            size_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            template_projects: self.template_projects()?,
            derive_pending: self.derive_pending().unwrap_or(false),
        })
    }

    /// Projects with templates and their kinds (none before schema 2).
    fn template_projects(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let Ok(mut stmt) = self
            .conn
            .prepare("SELECT DISTINCT project, kind FROM template ORDER BY project, kind")
        else {
            return Ok(out);
        };
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (project, kind) = row.map_err(|e| self.err(e))?;
            out.entry(project).or_default().push(kind);
        }
        Ok(out)
    }
}

/// When an ingest refreshes the derived tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derive {
    /// In the ingest's own transaction.
    Now,
    /// Later, with [`Db::derive`]; the ingest marks them stale.
    Later,
}

fn derive_in(txn: &Connection, db_path: &Path) -> Result<()> {
    crate::templates::derive(txn).map_err(|e| match e {
        crate::templates::DeriveError::Sql(e) => db_err(db_path, e),
        crate::templates::DeriveError::Pattern(p) => RainbowError::Template(p),
    })?;
    set_stale(txn, false).map_err(|e| db_err(db_path, e))
}

fn set_stale(conn: &Connection, stale: bool) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('derive_pending', ?1)",
        [if stale { "1" } else { "0" }],
    )?;
    Ok(())
}

/// Values for a `rarray(?)` parameter (SQLite's carray, loaded with
/// `rusqlite::vtab::array::load_module`): one query looks up a whole batch
/// through an index, with `CROSS JOIN` pinning the array as the outer loop.
pub(crate) fn rarray<T: Into<rusqlite::types::Value>>(
    items: impl IntoIterator<Item = T>,
) -> std::rc::Rc<Vec<rusqlite::types::Value>> {
    std::rc::Rc::new(items.into_iter().map(Into::into).collect())
}

fn db_err(path: &Path, e: rusqlite::Error) -> RainbowError {
    RainbowError::Db {
        path: path.into(),
        err: e,
    }
}

/// Prepared statements for one ingest transaction, with caches so shared
/// paths and contents are looked up once.
struct Writer<'c> {
    conn: &'c Connection,
    add_package: rusqlite::Statement<'c>,
    add_path: rusqlite::Statement<'c>,
    get_path: rusqlite::Statement<'c>,
    add_content: rusqlite::Statement<'c>,
    get_content: rusqlite::Statement<'c>,
    add_file: rusqlite::Statement<'c>,
    add_elf: rusqlite::Statement<'c>,
    add_string: rusqlite::Statement<'c>,
    add_template: rusqlite::Statement<'c>,
    add_libname: rusqlite::Statement<'c>,
    add_func_version: rusqlite::Statement<'c>,
    get_func_version: rusqlite::Statement<'c>,
    add_functions: rusqlite::Statement<'c>,
    paths: HashMap<String, i64>,
    contents: HashMap<[u8; 32], i64>,
    /// (project, upstream version) -> func_version id.
    func_versions: HashMap<(String, String), u32>,
    /// Function hash -> versions this build saw it in, merged into
    /// `func_hash` by [`Writer::flush_functions`].
    new_postings: HashMap<u64, Vec<u32>>,
}

impl<'c> Writer<'c> {
    fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Writer {
            conn,
            add_package: conn.prepare(
                "INSERT OR IGNORE INTO package (ecosystem, name, version, arch, source, source_version, depends, archive_sha256) \
                 VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            add_path: conn.prepare("INSERT INTO path (path) VALUES (?1)")?,
            get_path: conn.prepare("SELECT id FROM path WHERE path = ?1")?,
            add_content: conn.prepare("INSERT INTO content (sha256, size) VALUES (?1, ?2)")?,
            get_content: conn.prepare("SELECT id FROM content WHERE sha256 = ?1")?,
            add_file: conn.prepare(
                "INSERT OR REPLACE INTO file (package_id, path_id, kind, mode, content_id, link_target, conffile) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            add_elf: conn.prepare(
                "INSERT OR IGNORE INTO elf (content_id, machine, kind, build_id, soname, note_package, needed, verdefs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            add_string: conn.prepare(
                "INSERT OR IGNORE INTO elf_string (content_id, s) VALUES (?1, ?2)",
            )?,
            add_template: conn.prepare(
                "INSERT OR IGNORE INTO template_seen (project, kind, symbol, pattern, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            add_libname: conn.prepare(
                "INSERT OR IGNORE INTO libname_seen (project, base, file_version, version) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
            add_func_version: conn.prepare(
                "INSERT OR IGNORE INTO func_version (project, version) VALUES (?1, ?2)",
            )?,
            get_func_version: conn
                .prepare("SELECT id FROM func_version WHERE project = ?1 AND version = ?2")?,
            func_versions: HashMap::new(),
            new_postings: HashMap::new(),
            add_functions: conn.prepare(
                "INSERT OR IGNORE INTO elf_functions (content_id, hashes, loaded) VALUES (?1, ?2, ?3)",
            )?,
            paths: HashMap::new(),
            contents: HashMap::new(),
        })
    }

    fn func_version(&mut self, project: &str, version: &str) -> rusqlite::Result<u32> {
        let key = (project.to_string(), version.to_string());
        if let Some(id) = self.func_versions.get(&key) {
            return Ok(*id);
        }
        self.add_func_version.execute(params![project, version])?;
        let id: u32 = self
            .get_func_version
            .query_row(params![project, version], |r| r.get(0))?;
        self.func_versions.insert(key, id);
        Ok(id)
    }

    /// Merge this build's function postings into `func_hash`: each hash
    /// once, its posting list the union of old and new versions.
    fn flush_functions(&mut self) -> rusqlite::Result<()> {
        let mut get = self
            .conn
            .prepare("SELECT versions FROM func_hash WHERE hash = ?1")?;
        let mut put = self.conn.prepare(
            "INSERT OR REPLACE INTO func_hash (hash, common, versions) VALUES (?1, 0, ?2)",
        )?;
        let mut hashes: Vec<(u64, Vec<u32>)> = self.new_postings.drain().collect();
        hashes.sort_unstable_by_key(|h| h.0 as i64);
        for (hash, mut ids) in hashes {
            ids.sort_unstable();
            ids.dedup();
            let old: Option<Vec<u8>> = get.query_row([hash as i64], |r| r.get(0)).optional()?;
            let merged = match old {
                Some(o) => {
                    crate::funcmatch::postings::merge(&crate::funcmatch::postings::decode(&o), &ids)
                }
                None => ids,
            };
            put.execute(params![
                hash as i64,
                crate::funcmatch::postings::encode(&merged)
            ])?;
        }
        Ok(())
    }

    fn path_id(&mut self, path: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.paths.get(path) {
            return Ok(*id);
        }
        let id = match self.get_path.query_row([path], |r| r.get(0)).optional()? {
            Some(id) => id,
            None => self.add_path.insert([path])?,
        };
        self.paths.insert(path.to_string(), id);
        Ok(id)
    }

    /// Returns the content id and whether it was new.
    fn content_id(&mut self, sha: &[u8; 32], size: u64) -> rusqlite::Result<(i64, bool)> {
        if let Some(id) = self.contents.get(sha) {
            return Ok((*id, false));
        }
        let (id, new) = match self
            .get_content
            .query_row([&sha[..]], |r| r.get(0))
            .optional()?
        {
            Some(id) => (id, false),
            None => (
                self.add_content.insert(params![&sha[..], size as i64])?,
                true,
            ),
        };
        self.contents.insert(*sha, id);
        Ok((id, new))
    }

    fn add(&mut self, rec: &DebRecord) -> rusqlite::Result<bool> {
        let n = self.add_package.execute(params![
            rec.name,
            rec.version,
            rec.arch,
            rec.source,
            rec.source_version,
            rec.depends.join(" "),
            rec.archive_sha256,
            rec.ecosystem.label(),
        ])?;
        if n == 0 {
            return Ok(false);
        }
        let package_id = self.conn.last_insert_rowid();
        let project = crate::project::project_name(&rec.source);
        let upstream = crate::project::upstream_version(&rec.source_version).unwrap_or_default();
        for f in &rec.files {
            for t in &f.templates {
                self.add_template
                    .execute(params![project, t.kind, t.symbol, t.pattern, upstream])?;
            }
            // Only distro packages teach library names and function
            // signatures: a wheel's vendored copies are what they identify.
            let learns = rec.ecosystem == Ecosystem::Deb;
            if learns && !upstream.is_empty() && !f.functions.is_empty() {
                let v = self.func_version(&project, &upstream)?;
                for h in &f.functions {
                    let p = self.new_postings.entry(*h).or_default();
                    if p.last() != Some(&v) {
                        p.push(v);
                    }
                }
            }
            if let (true, Some(_), FileKind::File) = (
                learns,
                f.elf.as_ref().and_then(|e| e.soname.as_ref()),
                f.kind,
            ) {
                let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
                if let Some((base, fv)) = crate::project::library_name(file_name) {
                    self.add_libname
                        .execute(params![project, base, fv, upstream])?;
                }
            }
            let path_id = self.path_id(&f.path)?;
            let content_id = match f.sha256 {
                Some(sha) => {
                    let (id, new) = self.content_id(&sha, f.size)?;
                    if new {
                        for st in &f.strings {
                            self.add_string.execute(params![id, st])?;
                        }
                        if let Some(elf) = &f.elf {
                            self.add_elf.execute(params![
                                id,
                                elf.machine,
                                elf.kind,
                                elf.build_id,
                                elf.soname,
                                elf.note_package,
                                elf.needed.join("\n"),
                                elf.verdefs.join("\n"),
                            ])?;
                            if !f.functions.is_empty() || elf.loaded.is_some() {
                                self.add_functions.execute(params![
                                    id,
                                    crate::funcmatch::pack(&f.functions),
                                    elf.loaded.map(|d| d.to_vec()),
                                ])?;
                            }
                        }
                    }
                    Some(id)
                }
                None => None,
            };
            self.add_file.execute(params![
                package_id,
                path_id,
                f.kind.code(),
                f.mode,
                content_id,
                f.link_target,
                f.conffile as i64,
            ])?;
        }
        Ok(true)
    }
}
