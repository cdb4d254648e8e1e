//! The PostgreSQL engine: pooled connections (r2d2), prepared statements
//! cached per connection, and SQL translated from the shared dialect.

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{NoTls, Statement};
use r2d2_postgres::PostgresConnectionManager;

use crate::conn::Mode;
use crate::error::{Error, Result};
use crate::value::{from_pg, Column, Row, Value};
use crate::Location;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Pooled = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Set on every reader session. Scans look key batches up through unique
/// indexes whose pages a signature DB keeps in memory; with the default
/// `random_page_cost` of 4 (a spinning disk) the planner instead hashed
/// the whole `path` table for a batch of 4,000 paths: 67 ms against 32 ms
/// through the index (libs DB, warm; `EXPLAIN ANALYZE`). Writers keep the
/// default: their derivations scan whole tables, and were not measured
/// with it.
const READER_SETTINGS: &str = "SET random_page_cost = 1.1; \
     BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The advisory lock every kiln writer takes for its transaction.
const WRITE_LOCK: i64 = 0x6b69_6c6e; // "kiln"

/// Rows per `unnest` insert: big enough to amortise the round trip, small
/// enough to keep one statement's arrays a few MiB.
const CHUNK: usize = 5000;

pub(crate) struct Session {
    pool: Pool,
    conn: RefCell<Pooled>,
    statements: RefCell<HashMap<String, Statement>>,
    mode: Mode,
    /// The exported snapshot a reader's second connections share.
    snapshot: Option<String>,
}

/// Another session from the same pool, in the same snapshot, to open on
/// another thread.
pub(crate) struct Opener {
    pool: Pool,
    mode: Mode,
    snapshot: Option<String>,
}

impl Opener {
    pub(crate) fn open(self, location: &Location) -> Result<Session> {
        Session::from_pool(
            self.pool,
            &location.to_string(),
            self.mode,
            self.snapshot.as_deref(),
        )
    }
}

fn pg_err(db: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |err| Error::Postgres {
        db: db.to_string(),
        err,
    }
}

impl Session {
    pub(crate) fn open(url: &str, location: &Location, mode: Mode) -> Result<Session> {
        let db = location.to_string();
        let mut config = postgres::Config::from_str(url).map_err(|e| Error::BadUrl {
            db: db.clone(),
            reason: e.to_string(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("kiln");
        // One direct attempt first: a refused or failed login is reported
        // at once with the server's reason, not after a pool timeout.
        drop(config.connect(NoTls).map_err(|e| Error::Connect {
            db: db.clone(),
            reason: crate::error::pg_message(&e),
        })?);
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .build_unchecked(PostgresConnectionManager::new(config, NoTls));
        Session::from_pool(pool, &db, mode, None)
    }

    fn from_pool(pool: Pool, db: &str, mode: Mode, snapshot: Option<&str>) -> Result<Session> {
        let mut conn = pool.get().map_err(|e| Error::Connect {
            db: db.to_string(),
            reason: e.to_string(),
        })?;
        conn.batch_execute("SET client_min_messages = warning")
            .map_err(pg_err(db))?;
        let mut snap = None;
        if mode == Mode::Read {
            conn.batch_execute(READER_SETTINGS).map_err(pg_err(db))?;
            match snapshot {
                Some(id) => conn
                    .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{id}'"))
                    .map_err(pg_err(db))?,
                None => {
                    let row = conn
                        .query_one("SELECT pg_export_snapshot()", &[])
                        .map_err(pg_err(db))?;
                    snap = Some(row.try_get::<_, String>(0).map_err(pg_err(db))?);
                }
            }
        }
        Ok(Session {
            pool,
            conn: RefCell::new(conn),
            statements: RefCell::new(HashMap::new()),
            mode,
            snapshot: snap.or(snapshot.map(str::to_string)),
        })
    }

    pub(crate) fn opener(&self) -> Opener {
        Opener {
            pool: self.pool.clone(),
            mode: self.mode,
            snapshot: self.snapshot.clone(),
        }
    }

    pub(crate) fn begin_write(&self) -> std::result::Result<(), postgres::Error> {
        self.conn.borrow_mut().batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        ))
    }

    fn prepare(
        &self,
        sql: &str,
        params: &[Value],
    ) -> std::result::Result<Statement, postgres::Error> {
        self.prepared(translate(sql, params))
    }

    /// The statement for `text`, prepared once per connection.
    fn prepared(&self, text: String) -> std::result::Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.borrow().get(&text) {
            return Ok(s.clone());
        }
        let stmt = self.conn.borrow_mut().prepare(&text)?;
        self.statements.borrow_mut().insert(text, stmt.clone());
        Ok(stmt)
    }

    pub(crate) fn execute(
        &self,
        sql: &str,
        params: &[Value],
    ) -> std::result::Result<u64, postgres::Error> {
        let stmt = self.prepare(sql, params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.conn.borrow_mut().execute(&stmt, &refs)
    }

    pub(crate) fn batch(&self, sql: &str) -> std::result::Result<(), postgres::Error> {
        self.conn.borrow_mut().batch_execute(sql)
    }

    pub(crate) fn for_each<E: From<Error>>(
        &self,
        db: &str,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(Row) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        use postgres::fallible_iterator::FallibleIterator;
        let stmt = self.prepare(sql, params).map_err(pg_err(db))?;
        let mut conn = self.conn.borrow_mut();
        let mut rows = conn
            .query_raw(&stmt, params.iter().map(|p| p as &(dyn ToSql + Sync)))
            .map_err(pg_err(db))?;
        while let Some(r) = rows.next().map_err(pg_err(db))? {
            f(row_of(&r)?)?;
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
        let arrays: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, c.pg_array()))
            .collect();
        let text = format!("{head} SELECT * FROM unnest({}) {tail}", arrays.join(", "));
        let stmt = self.prepared(text).map_err(pg_err(db))?;
        let mut out = Vec::new();
        let n = cols[0].len();
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let chunk: Vec<Box<dyn ToSql + Sync + '_>> =
                cols.iter().map(|c| c.pg_param(start..end)).collect();
            let refs: Vec<&(dyn ToSql + Sync)> = chunk.iter().map(|b| &**b).collect();
            for r in self
                .conn
                .borrow_mut()
                .query(&stmt, &refs)
                .map_err(pg_err(db))?
            {
                out.push(row_of(&r)?);
            }
        }
        Ok(out)
    }
}

/// A connection goes back to the pool outside any transaction: a reader's
/// snapshot ends with it.
impl Drop for Session {
    fn drop(&mut self) {
        if self.mode == Mode::Read {
            let _ = self.conn.get_mut().batch_execute("ROLLBACK");
        }
    }
}

/// A result row as [`Value`]s.
fn row_of(r: &postgres::Row) -> Result<Row> {
    (0..r.len())
        .map(|i| from_pg(r, i))
        .collect::<Result<Vec<_>>>()
        .map(Row)
}

/// The shared dialect as PostgreSQL reads it: `?N` becomes `$N`, a key
/// batch `rarray(?N)` becomes a one-column subquery over `unnest`, cast to
/// the batch's array type, and SQLite's `CROSS JOIN … ON` (which pins
/// SQLite's join order) a plain `JOIN`, as PostgreSQL plans joins itself.
/// Text inside quotes is left alone.
pub(crate) fn translate(sql: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let joined = sql.replace("CROSS JOIN", "JOIN");
    let mut rest = joined.as_str();
    let mut quoted = false;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted && rest.starts_with("rarray(?") {
            let digits: String = rest[8..].chars().take_while(char::is_ascii_digit).collect();
            let n: usize = digits.parse().unwrap_or(0);
            let after = &rest[8 + digits.len()..];
            if let (Some(ty), Some(close)) = (
                n.checked_sub(1)
                    .and_then(|i| params.get(i))
                    .and_then(Value::pg_array),
                after.strip_prefix(')'),
            ) {
                out.push_str(&format!("(SELECT unnest(${n}::{ty}) AS value)"));
                rest = close;
                continue;
            }
        }
        if !quoted && c == '?' {
            out.push('$');
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_key_batches_translate() {
        let sql = "SELECT p.id FROM rarray(?1) AS a CROSS JOIN path p ON p.path = a.value WHERE p.id > ?2 AND p.path <> '?x'";
        let got = translate(sql, &[Value::Texts(vec![]), Value::Int(3)]);
        assert_eq!(
            got,
            "SELECT p.id FROM (SELECT unnest($1::text[]) AS value) AS a JOIN path p ON p.path = a.value WHERE p.id > $2 AND p.path <> '?x'"
        );
    }
}
