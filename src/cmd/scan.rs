//! `kiln scan`: identify packages and exact versions from the bytes of the
//! files, cross-checked against whatever metadata the image still has.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use kiln_rainbow::Db;
use kiln_report::{Format, Sbom};

use super::db::DbArg;
use super::source::SourceArgs;
use crate::progress;

/// `kiln scan SOURCE [--db FILE] [-o FORMAT]`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub db: DbArg,
    /// Output format: table, json, cyclonedx-json, spdx-json; with --vuln
    /// table, json, sarif, cyclonedx-json [default: table on a terminal,
    /// else json].
    #[arg(short, long, value_name = "FORMAT", value_parser = super::any_format)]
    pub output: Option<Format>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Also match the packages against advisories (as `kiln vuln`).
    #[arg(long)]
    pub vuln: bool,
    #[command(flatten)]
    pub policy: super::vuln::Policy,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    if args.vuln {
        return super::vuln::run(super::vuln::Args::from(args), quiet);
    }
    if let Some(f) = args.output {
        super::sbom_format(f.name()).map_err(anyhow::Error::msg)?;
    }
    let db = Db::open_readonly(args.db.location())?;
    let sbom = collect(&args.source, Some(&db), quiet)?;
    super::emit_sbom(&sbom, args.output, args.file.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Scan the source, with progress on stderr; warns when the DB's schema
/// is older than what this kiln builds.
pub fn collect(source: &SourceArgs, db: Option<&Db>, quiet: bool) -> Result<Sbom> {
    if let Some(db) = db.filter(|_| !quiet) {
        let v = db.schema_version()?;
        if v < kiln_rainbow::SCHEMA_VERSION {
            eprintln!(
                "kiln: warning: {} has schema {v}; build a new DB with `kiln db build` for what schema {} adds (stripped files matched by code, compact function signatures)",
                db.location(),
                kiln_rainbow::SCHEMA_VERSION
            );
        }
    }
    let bar = progress::bytes("reading and hashing layers", quiet);
    let ticker = bar.clone();
    let progress = Some(Box::new(move |n| ticker.inc(n)) as Box<kiln_tree::ProgressFn>);
    let sbom = kiln_scan::scan(&source.source, &source.open_options()?, db, progress)?;
    bar.finish_and_clear();
    Ok(sbom)
}
