//! The SQLite engine: a file in WAL mode, so readers carry on while one
//! writer commits, and a killed write leaves the last commit intact.

use std::path::{Path, PathBuf};

use rusqlite::{params_from_iter, Connection, OpenFlags};

use crate::conn::Mode;
use crate::error::{Error, Result};
use crate::value::{from_sqlite, Column, Row, Value};

pub(crate) struct Session {
    conn: Connection,
    path: PathBuf,
    mode: Mode,
}

fn io(path: &Path, err: std::io::Error) -> Error {
    Error::Io {
        db: path.display().to_string(),
        err,
    }
}

fn sql(path: &Path, err: rusqlite::Error) -> Error {
    Error::Sqlite {
        db: path.display().to_string(),
        err,
    }
}

/// The directory a database file lives in.
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Another session of the same file, to open on another thread.
pub(crate) struct Opener {
    path: PathBuf,
    mode: Mode,
}

impl Opener {
    pub(crate) fn open(self) -> Result<Session> {
        Session::open(&self.path, self.mode)
    }
}

impl Session {
    pub(crate) fn open(path: &Path, mode: Mode) -> Result<Session> {
        let conn = match mode {
            Mode::Write => open_for_writing(path)?,
            Mode::Read => open_for_reading(path)?,
        };
        rusqlite::vtab::array::load_module(&conn).map_err(|e| sql(path, e))?;
        Ok(Session {
            conn,
            path: path.into(),
            mode,
        })
    }

    pub(crate) fn opener(&self) -> Opener {
        Opener {
            path: self.path.clone(),
            mode: self.mode,
        }
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> rusqlite::Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(params_from_iter(params))? as u64)
    }

    pub(crate) fn batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.execute_batch(sql)
    }

    pub(crate) fn for_each<E: From<Error>>(
        &self,
        db: &str,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(Row) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let e = |err| Error::Sqlite {
            db: db.to_string(),
            err,
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(e)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(params)).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            f(row_of(r, n, db)?)?;
        }
        Ok(())
    }

    pub(crate) fn insert_rows(
        &self,
        db: &str,
        head: &str,
        tail: &str,
        cols: &[Column],
    ) -> Result<Vec<Row>> {
        let e = |err| Error::Sqlite {
            db: db.to_string(),
            err,
        };
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("{head} VALUES ({}) {tail}", marks.join(", "));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(e)?;
        let returns = stmt.column_count();
        let mut out = Vec::new();
        for i in 0..cols[0].len() {
            let vals: Vec<Value> = cols.iter().map(|c| c.value(i)).collect();
            let mut rows = stmt.query(params_from_iter(&vals)).map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                out.push(row_of(r, returns, db)?);
            }
        }
        Ok(out)
    }
}

/// The first `n` values of a result row.
fn row_of(r: &rusqlite::Row<'_>, n: usize, db: &str) -> Result<Row> {
    (0..n)
        .map(|i| {
            let v = r.get_ref(i).map_err(|err| Error::Sqlite {
                db: db.to_string(),
                err,
            })?;
            from_sqlite(v)
        })
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// Open (creating if needed) for writing. A directory kiln cannot write
/// in (a read-only file system) is said to be one, rather than SQLite's
/// "unable to open database file".
fn open_for_writing(path: &Path) -> Result<Connection> {
    let dir = dir_of(path);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    tempfile::tempfile_in(dir).map_err(|e| io(dir, e))?;
    let conn = Connection::open(path).map_err(|e| sql(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -65536;",
    )
    .map_err(|e| sql(path, e))?;
    Ok(conn)
}

/// Bytes of a DB a reader maps (SQLite caps it at its compile-time maximum).
const READ_MMAP: u64 = 4 << 30;

/// A connection that can read `path`. A database in WAL mode needs its
/// shared-memory file even to be read; on a read-only file system (a DB
/// shipped in an image or a read-only volume) that cannot be made, so the
/// file is opened as immutable, which it is there.
fn open_for_reading(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no database here; build one with `kiln db build`",
            ),
        ));
    }
    let usable = |c: Connection| -> rusqlite::Result<Connection> {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        // A scan's lookups walk the indexes of a DB that may be gigabytes:
        // reading pages through a mapping instead of `pread` into a 2 MiB
        // cache took a tenth off scans with a whole-`libs` DB. kiln never
        // truncates a DB in place (imports rename a new file over it), so
        // the mapping cannot lose its pages under a reader.
        c.execute_batch(&format!(
            "PRAGMA mmap_size = {READ_MMAP}; PRAGMA cache_size = -65536;"
        ))?;
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
    if tempfile::tempfile_in(dir_of(path)).is_ok() {
        return Err(sql(path, err));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| io(path, e))?;
    let uri = format!("file:{}?immutable=1", uri_escape(&abs.to_string_lossy()));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(usable)
    .map_err(|e| sql(path, e))
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
