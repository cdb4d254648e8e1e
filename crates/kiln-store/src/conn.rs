//! [`Conn`]: one connection to either engine, and the operations kiln's
//! logic is written against.

use crate::error::{Error, Result};
use crate::value::{Column, Row, Value};
use crate::{pg, sqlite, Location};

/// Which engine a [`Conn`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Building or importing: create the database if needed, write in
    /// exclusive transactions ([`Conn::write`]).
    Write,
    /// Scanning: read one consistent state. On PostgreSQL every query of
    /// the connection, and of its [`Conn::second`] connections, sees the
    /// snapshot taken when it opened, whatever builds commit meanwhile.
    Read,
}

pub(crate) enum Inner {
    Sqlite(sqlite::Session),
    Postgres(Box<pg::Session>),
}

/// A [`Conn::second`] connection not yet opened; it can cross threads.
pub struct Opener {
    location: Location,
    how: How,
}

enum How {
    Sqlite(sqlite::Opener),
    Postgres(pg::Opener),
}

impl Opener {
    /// Open the connection.
    pub fn open(self) -> Result<Conn> {
        let inner = match self.how {
            How::Sqlite(o) => Inner::Sqlite(o.open()?),
            How::Postgres(o) => Inner::Postgres(Box::new(o.open(&self.location)?)),
        };
        Ok(Conn {
            location: self.location,
            inner,
        })
    }
}

/// A connection to a kiln database.
pub struct Conn {
    pub(crate) location: Location,
    pub(crate) inner: Inner,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("location", &self.location)
            .finish()
    }
}

impl Conn {
    /// Connect. A SQLite file is created for [`Mode::Write`] (and must
    /// exist for [`Mode::Read`]); a PostgreSQL database must exist, as the
    /// server's administrator made it.
    pub fn open(location: &Location, mode: Mode) -> Result<Conn> {
        let inner = match location {
            Location::Sqlite(path) => Inner::Sqlite(sqlite::Session::open(path, mode)?),
            Location::Postgres(url) => {
                Inner::Postgres(Box::new(pg::Session::open(url, location, mode)?))
            }
        };
        Ok(Conn {
            location: location.clone(),
            inner,
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    pub(crate) fn db(&self) -> String {
        self.location.to_string()
    }

    /// Run one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        match &self.inner {
            Inner::Sqlite(s) => s.execute(sql, params).map_err(|e| self.sqlite(e)),
            Inner::Postgres(s) => s.execute(sql, params).map_err(|e| self.pg(e)),
        }
    }

    /// Run a query and collect its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        self.for_each(sql, params, &mut |r| {
            rows.push(r);
            Ok::<_, Error>(())
        })?;
        Ok(rows)
    }

    /// The first row of a query, if any.
    pub fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// One integer: `SELECT count(*) …` and the like.
    pub fn query_int(&self, sql: &str, params: &[Value]) -> Result<i64> {
        match self.query_row(sql, params)? {
            Some(r) => r.int(0),
            None => Ok(0),
        }
    }

    /// Stream a query's rows through `f`, without holding them all.
    pub fn for_each<E: From<Error>>(
        &self,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(Row) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match &self.inner {
            Inner::Sqlite(s) => s.for_each(&self.db(), sql, params, f),
            Inner::Postgres(s) => s.for_each(&self.db(), sql, params, f),
        }
    }

    /// Run several statements without parameters (DDL).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(s) => s.batch(sql).map_err(|e| self.sqlite(e)),
            Inner::Postgres(s) => s.batch(sql).map_err(|e| self.pg(e)),
        }
    }

    /// Whether `table` exists.
    pub fn has_table(&self, table: &str) -> Result<bool> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1"
            }
            Engine::Postgres => {
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = ?1"
            }
        };
        Ok(self.query_int(sql, &[table.into()])? > 0)
    }

    /// How many tables the database holds.
    pub fn table_count(&self) -> Result<i64> {
        let sql = match self.engine() {
            Engine::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            Engine::Postgres => {
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema()"
            }
        };
        self.query_int(sql, &[])
    }

    /// Run `f` in a write transaction, committed if it returns `Ok` and
    /// rolled back otherwise (also when the process dies midway). Writers
    /// are exclusive: SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a
    /// transaction-scoped advisory lock, so concurrent builders from many
    /// processes and machines take turns per transaction while their
    /// archive reading runs in parallel, and no derived table is ever
    /// computed from another writer's half-written rows.
    pub fn write<T, E: From<Error>>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.begin_write()?;
        let out = f();
        let ended = self.end_write(out.is_ok());
        let out = out?;
        ended?;
        Ok(out)
    }

    /// Begin a write transaction by hand, for a writer that commits in
    /// turns ([`Conn::write`] says how writers exclude each other); end it
    /// with [`Conn::end_write`].
    pub fn begin_write(&self) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(s) => s.batch("BEGIN IMMEDIATE").map_err(|e| self.sqlite(e)),
            Inner::Postgres(s) => s.begin_write().map_err(|e| self.pg(e)),
        }
    }

    /// Commit (or roll back) the transaction [`Conn::begin_write`] began.
    pub fn end_write(&self, commit: bool) -> Result<()> {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        self.batch(end)
    }

    /// Insert many rows at once: `head` is `INSERT INTO t (a, b, c)`,
    /// `tail` what follows the values (`ON CONFLICT … DO NOTHING`, perhaps
    /// with `RETURNING …`, whose rows are returned). SQLite runs one
    /// prepared insert per row; PostgreSQL one `unnest` of arrays per
    /// chunk, a round trip per thousands of rows.
    pub fn insert_rows(&self, head: &str, tail: &str, cols: &[Column]) -> Result<Vec<Row>> {
        if cols.first().is_none_or(Column::is_empty) {
            return Ok(Vec::new());
        }
        match &self.inner {
            Inner::Sqlite(s) => s.insert_rows(&self.db(), head, tail, cols),
            Inner::Postgres(s) => s.insert_rows(&self.db(), head, tail, cols),
        }
    }

    /// Another connection to the same database. For a [`Mode::Read`]
    /// PostgreSQL connection it reads the same snapshot; it comes from the
    /// same pool.
    pub fn second(&self) -> Result<Conn> {
        self.opener().open()
    }

    /// What [`Conn::second`] needs, to open that connection later on
    /// another thread: a PostgreSQL connection takes milliseconds to set
    /// up, which a scan's helper threads can spend while layers stream.
    pub fn opener(&self) -> Opener {
        let how = match &self.inner {
            Inner::Sqlite(s) => How::Sqlite(s.opener()),
            Inner::Postgres(s) => How::Postgres(s.opener()),
        };
        Opener {
            location: self.location.clone(),
            how,
        }
    }

    /// The database's size on disk: the file, or the PostgreSQL database.
    pub fn size_bytes(&self) -> u64 {
        match &self.inner {
            Inner::Sqlite(s) => s.size_bytes(),
            Inner::Postgres(_) => self
                .query_int("SELECT pg_database_size(current_database())", &[])
                .map_or(0, |n| n.max(0) as u64),
        }
    }

    fn sqlite(&self, e: rusqlite::Error) -> Error {
        Error::Sqlite {
            db: self.db(),
            err: e,
        }
    }

    fn pg(&self, e: postgres::Error) -> Error {
        Error::Postgres {
            db: self.db(),
            err: e,
        }
    }
}
