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
    let header = serde_json::json!({ "schema_version": db.schema_version()? });
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
    let rows = dump::export(db.conn(), header, &tables(), &mut enc)?;
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
    let head = dump::read_header(&mut input).with_context(|| name.clone())?;
    let schema = head
        .get("schema_version")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    if schema > SCHEMA_VERSION {
        bail!("{name}: exported from schema {schema}; this kiln reads up to {SCHEMA_VERSION}: upgrade kiln");
    }
    let rows = into(&location, &mut input)
        .with_context(|| format!("cannot import {name} into {location}"))?;
    if !quiet {
        eprintln!("kiln: imported {rows} rows from {name} into {location}");
    }
    Ok(ExitCode::SUCCESS)
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
    let header = serde_json::json!({ "schema_version": db.schema_version()? });
    let mut tmp = tempfile::tempfile().context("cannot create a temporary file")?;
    {
        let mut out = std::io::BufWriter::new(&mut tmp);
        dump::export(db.conn(), header, &tables(), &mut out)?;
        out.flush()?;
    }
    drop(db);
    std::io::Seek::rewind(&mut tmp)?;
    let mut input = BufReader::new(tmp);
    dump::read_header(&mut input)?;
    into(to, &mut input)
}

/// Create the schema at `location`, check it holds nothing, and load the
/// stream in one write transaction.
fn load(location: &Location, input: &mut dyn BufRead) -> Result<u64> {
    drop(Db::open(location.clone())?);
    drop(kiln_vuln::Store::open(location.clone())?);
    let conn = Conn::open(location, kiln_store::Mode::Write)?;
    conn.write(|| -> Result<u64> {
        for t in ["package", "vuln_advisory"] {
            if conn.query_int(&format!("SELECT count(*) FROM {t}"), &[])? > 0 {
                bail!("{location} is not empty ({t} has rows); import into an empty database");
            }
        }
        Ok(dump::import(&conn, &tables(), &OWN_KEYS, input)?)
    })
}

/// SQLite: load into a new file beside `path`, then rename it into place.
fn import_sqlite(path: &Path, input: &mut dyn BufRead) -> Result<u64> {
    if path.exists() {
        let db = Db::open_readonly(path.to_path_buf());
        if db.and_then(|d| d.stats()).is_ok_and(|s| s.versions > 0) {
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
