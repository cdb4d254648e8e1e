//! A streaming, engine-neutral copy of kiln's tables: `kiln db export`
//! writes one, `kiln db import` reads one into SQLite or PostgreSQL. It
//! is JSON lines: a header, then per table a line naming its columns, one
//! JSON array per row (bytes as lowercase hex), and a line with the row
//! count; a last line closes the export, so a truncated stream is refused.
//! Rows keep their ids, which posting lists and file rows refer to, and
//! come in primary-key order (text compared bytewise on both engines), so
//! the same database gives the same bytes from either engine.

use std::io::{BufRead, Write};

use serde_json::{json, Value as Json};

use crate::conn::{Conn, Engine};
use crate::error::{Error, Result};
pub use crate::value::Kind;
use crate::value::{Rows, Value};

/// The export format's name and version, in the header.
pub const FORMAT: &str = "kiln-db-export";
/// Version of the export format.
pub const FORMAT_VERSION: i64 = 1;

/// One table as an export carries it.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Its columns and their types.
    pub columns: &'static [(&'static str, Kind)],
    /// The columns of its primary key (or, without one, all of them), for
    /// a stable row order.
    pub key: &'static [&'static str],
    /// A table with an identity column whose sequence an import must move
    /// past the imported ids (PostgreSQL).
    pub identity: Option<&'static str>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Io {
        db: "export stream".into(),
        err: std::io::Error::new(std::io::ErrorKind::InvalidData, what.into()),
    }
}

fn io(err: std::io::Error) -> Error {
    Error::Io {
        db: "export stream".into(),
        err,
    }
}

/// Write `header` (merged into the format line) and every table of
/// `tables` that exists in `conn`.
pub fn export(conn: &Conn, header: Json, tables: &[Table], out: &mut dyn Write) -> Result<u64> {
    let mut head = json!({ "format": FORMAT, "version": FORMAT_VERSION });
    if let (Some(h), Json::Object(extra)) = (head.as_object_mut(), header) {
        h.extend(extra);
    }
    line(out, &head)?;
    let mut total = 0u64;
    for t in tables {
        if !conn.has_table(t.name)? {
            continue;
        }
        total += export_table(conn, t, out)?;
    }
    line(out, &json!({ "end": FORMAT, "rows": total }))?;
    out.flush().map_err(io)?;
    Ok(total)
}

fn line(out: &mut dyn Write, v: &Json) -> Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

fn export_table(conn: &Conn, t: &Table, out: &mut dyn Write) -> Result<u64> {
    let names: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    line(out, &json!({ "table": t.name, "columns": names }))?;
    let order: Vec<String> = t
        .key
        .iter()
        .map(|k| {
            let text = t.columns.iter().any(|c| c.0 == *k && c.1 == Kind::Text);
            match (conn.engine(), text) {
                (Engine::Postgres, true) => format!("{k} COLLATE \"C\""),
                _ => k.to_string(),
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        t.name,
        order.join(", ")
    );
    let mut n = 0u64;
    conn.for_each(&sql, &[], &mut |row| -> Result<()> {
        let vals: Vec<Json> = row.into_values().into_iter().map(to_json).collect();
        line(out, &Json::Array(vals))?;
        n += 1;
        Ok(())
    })?;
    line(out, &json!({ "end": t.name, "rows": n }))?;
    Ok(n)
}

fn to_json(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(n) => json!(n),
        Value::Text(s) => Json::String(s),
        Value::Blob(b) => Json::String(hex(&b)),
        Value::Ints(_) | Value::Texts(_) | Value::Blobs(_) => Json::Null,
    }
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Read an export's header line.
pub fn read_header(input: &mut dyn BufRead) -> Result<Json> {
    let head = next_line(input)?.ok_or_else(|| bad("empty input: not a kiln export"))?;
    if head.get("format").and_then(Json::as_str) != Some(FORMAT) {
        return Err(bad("not a kiln export (no kiln-db-export header)"));
    }
    let v = head.get("version").and_then(Json::as_i64).unwrap_or(0);
    if v > FORMAT_VERSION {
        return Err(bad(format!(
            "export format {v} is newer than this kiln reads ({FORMAT_VERSION}); upgrade kiln"
        )));
    }
    Ok(head)
}

fn next_line(input: &mut dyn BufRead) -> Result<Option<Json>> {
    let mut buf = String::new();
    if input.read_line(&mut buf).map_err(io)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&buf)
        .map(Some)
        .map_err(|e| bad(format!("malformed line: {e}")))
}

/// Rows per bulk insert while importing.
const IMPORT_CHUNK: usize = 20_000;

/// Load every table of the stream (after its header) into `conn`, inside
/// the caller's write transaction. `skip` names `meta` keys the target
/// keeps (its own schema versions). Returns the rows loaded.
pub fn import(
    conn: &Conn,
    tables: &[Table],
    skip: &[&str],
    input: &mut dyn BufRead,
) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let head = next_line(input)?.ok_or_else(|| bad("the export ends early (truncated?)"))?;
        if head.get("end").and_then(Json::as_str) == Some(FORMAT) {
            let said = head.get("rows").and_then(Json::as_u64);
            if said != Some(total) {
                return Err(bad(format!("the export says {said:?} rows, {total} read")));
            }
            return Ok(total);
        }
        let name = head
            .get("table")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("expected a table header"))?;
        let table = tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(format!("unknown table {name:?}")))?;
        let cols: Vec<&str> = head
            .get("columns")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let want: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
        if cols != want {
            return Err(bad(format!(
                "table {name}: columns {cols:?}, expected {want:?}"
            )));
        }
        total += import_table(conn, table, skip, input)?;
    }
}

fn import_table(conn: &Conn, t: &Table, skip: &[&str], input: &mut dyn BufRead) -> Result<u64> {
    let names: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let head = format!("INSERT INTO {} ({})", t.name, names.join(", "));
    let tail = if t.name == "meta" {
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    } else {
        ""
    };
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.1).collect();
    let mut batch = Rows::new(&kinds);
    let mut n = 0u64;
    loop {
        let line = next_line(input)?.ok_or_else(|| bad("the export ends early (truncated?)"))?;
        let Json::Array(vals) = line else {
            let said = line.get("rows").and_then(Json::as_u64);
            if line.get("end").and_then(Json::as_str) != Some(t.name) || said != Some(n) {
                return Err(bad(format!("table {}: bad end after {n} rows", t.name)));
            }
            break;
        };
        if vals.len() != t.columns.len() {
            return Err(bad(format!(
                "table {}: a row of {} values",
                t.name,
                vals.len()
            )));
        }
        if t.name == "meta" && vals[0].as_str().is_some_and(|k| skip.contains(&k)) {
            n += 1;
            continue;
        }
        let row = vals
            .into_iter()
            .zip(t.columns)
            .map(|(v, (cname, kind))| {
                from_json(v, *kind)
                    .ok_or_else(|| bad(format!("table {}: bad value for {cname}", t.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        batch.push(row)?;
        n += 1;
        if batch.len() >= IMPORT_CHUNK {
            conn.insert_rows(&head, tail, batch.take().columns())?;
        }
    }
    conn.insert_rows(&head, tail, batch.columns())?;
    if let (Engine::Postgres, Some(id)) = (conn.engine(), t.identity) {
        conn.query(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{id}'), COALESCE(max({id}), 0) + 1, false) FROM {0}",
                t.name
            ),
            &[],
        )?;
    }
    Ok(n)
}

fn from_json(v: Json, kind: Kind) -> Option<Value> {
    Some(match (v, kind) {
        (Json::Null, _) => Value::Null,
        (Json::Number(n), Kind::Int) => Value::Int(n.as_i64()?),
        (Json::String(s), Kind::Text) => Value::Text(s),
        (Json::String(s), Kind::Blob) => Value::Blob(unhex(&s)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let b = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex("0001abff"), Some(b));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
