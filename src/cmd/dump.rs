//! `kiln db export` / `kiln db import`: every table of a kiln database
//! (signatures and advisories) as one zstd-compressed JSON-lines stream,
//! between SQLite and PostgreSQL in either direction. An import fills an
//! empty database in one transaction (SQLite: a new file renamed into
//! place), so a failed or killed import leaves the target as it was.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_rainbow::{Db, SCHEMA_VERSION};
use kiln_store::{dump, Conn, Location};

use super::db::DbArg;

/// `kiln db export`
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArg,
    /// Write the export here (default: stdout).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
}

/// `kiln db import`
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// An export made by `kiln db export` (`-` for stdin).
    input: PathBuf,
    #[command(flatten)]
    db: DbArg,
}

/// Every table an export carries, signatures first.
fn tables() -> Vec<dump::Table> {
    [kiln_rainbow::TABLES, kiln_vuln::store::TABLES].concat()
}

/// `meta` keys an import leaves as the target's migrations set them.
const OWN_KEYS: [&str; 2] = ["schema_version", "vuln_schema_version"];

pub fn export(args: ExportArgs, quiet: bool) -> Result<ExitCode> {
    let location = args.db.location();
    let db = Db::open_readonly(location.clone())?;
    let out: Box<dyn Write> = match &args.file {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("the export is binary (zstd); give --file FILE or redirect stdout");
            }
            Box::new(std::io::stdout().lock())
        }
    };
    let mut enc = zstd::Encoder::new(std::io::BufWriter::new(out), 3)?;
    let rows = write_export(&db, &mut enc)?;
    enc.finish()?.flush()?;
    if !quiet {
        eprintln!("kiln: exported {rows} rows from {location}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import(args: ImportArgs, quiet: bool) -> Result<ExitCode> {
    let location = args.db.location();
    let name = args.input.display().to_string();
    let raw: Box<dyn Read> = if args.input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.input).with_context(|| format!("cannot open {name}"))?)
    };
    let mut input = BufReader::new(zstd::Decoder::new(raw).with_context(|| name.clone())?);
    read_export_header(&mut input).with_context(|| name.clone())?;
    let rows = into(&location, &mut input)
        .with_context(|| format!("cannot import {name} into {location}"))?;
    if !quiet {
        eprintln!("kiln: imported {rows} rows from {name} into {location}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every table of `db`, with a header naming its schema.
fn write_export(db: &Db, out: &mut dyn Write) -> Result<u64> {
    let header = serde_json::json!({ "schema_version": db.schema_version()? });
    Ok(dump::export(db.conn(), header, &tables(), out)?)
}

/// Read an export's header; one from a newer schema is refused, and so
/// is one from before schema 4, whose content keys are SHA-256.
fn read_export_header(input: &mut dyn BufRead) -> Result<()> {
    let head = dump::read_header(input)?;
    let schema = head
        .get("schema_version")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    if schema > SCHEMA_VERSION {
        bail!(
            "exported from schema {schema}; this kiln reads up to {SCHEMA_VERSION}: upgrade kiln"
        );
    }
    kiln_rainbow::require_blake3_keys("the export", schema)?;
    Ok(())
}

/// Whether the database already holds packages or advisories (`None`:
/// which table does).
fn holding(conn: &Conn) -> Result<Option<&'static str>> {
    for t in ["package", "vuln_advisory"] {
        if conn.has_table(t)? && conn.query_int(&format!("SELECT count(*) FROM {t}"), &[])? > 0 {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Load an export stream (after its header) into the empty database at
/// `location`.
fn into(location: &Location, input: &mut dyn BufRead) -> Result<u64> {
    match location {
        Location::Sqlite(path) => import_sqlite(path, input),
        Location::Postgres(_) => load(location, input),
    }
}

/// Copy every table from one database into another, empty one, through
/// an export in a temporary file (`db push` of a PostgreSQL DB packs a
/// SQLite copy; `db pull` into PostgreSQL loads one).
pub fn copy(from: &Location, to: &Location) -> Result<u64> {
    let db = Db::open_readonly(from.clone())?;
    let mut tmp = tempfile::tempfile().context("cannot create a temporary file")?;
    {
        let mut out = std::io::BufWriter::new(&mut tmp);
        write_export(&db, &mut out)?;
        out.flush()?;
    }
    drop(db);
    std::io::Seek::rewind(&mut tmp)?;
    let mut input = BufReader::new(tmp);
    read_export_header(&mut input)?;
    into(to, &mut input)
}

/// Create the schema at `location`, check it holds nothing, and load the
/// stream in one write transaction.
fn load(location: &Location, input: &mut dyn BufRead) -> Result<u64> {
    let db = Db::open(location.clone())?;
    drop(kiln_vuln::Store::open(location.clone())?);
    let conn = db.conn();
    conn.write(|| -> Result<u64> {
        if let Some(t) = holding(conn)? {
            bail!("{location} is not empty ({t} has rows); import into an empty database");
        }
        Ok(dump::import(conn, &tables(), &OWN_KEYS, input)?)
    })
}

/// SQLite: load into a new file beside `path`, then rename it into place.
fn import_sqlite(path: &Path, input: &mut dyn BufRead) -> Result<u64> {
    if path.exists() {
        let existing = Conn::open(
            &Location::Sqlite(path.to_path_buf()),
            kiln_store::Mode::Read,
        );
        if existing
            .map_err(anyhow::Error::from)
            .and_then(|c| holding(&c))
            .is_ok_and(|h| h.is_some())
        {
            bail!("{} is not empty; import into a new file", path.display());
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-db-import-")
        .suffix(".db")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let rows = load(&Location::Sqlite(tmp.path().to_path_buf()), input)?;
    super::transfer::replace(tmp, path)?;
    Ok(rows)
}
