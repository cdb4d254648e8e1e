//! `kiln scan`: identify packages and exact versions from the bytes of the
//! files, cross-checked against whatever metadata the image still has.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_rainbow::Db;
use kiln_report::{Format, Sbom};

use super::db::DbArg;
use super::source::{SourceArgs, SourceOptions};
use crate::progress;

/// `kiln scan SOURCE… [--sources-from FILE] [--db FILE|URL] [-o FORMAT]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: registry:HOST[:PORT]/REPO[:TAG|@DIGEST] (or
    /// docker://…), oci-archive:FILE[:REF], oci-dir:DIR[:REF],
    /// docker-archive:FILE[:TAG], dir:PATH, or a bare path (detected).
    /// Several images are scanned in parallel against one DB connection
    /// pool and one set of templates, printing one JSON document per line.
    #[arg(value_name = "SOURCE", required_unless_present = "sources_from")]
    pub sources: Vec<String>,
    /// Also scan the images this file lists, one per line (`-` for stdin;
    /// blank lines and `#` comments are skipped).
    #[arg(long, value_name = "FILE")]
    pub sources_from: Option<PathBuf>,
    /// Images scanned at a time with several sources [default: the CPUs].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub options: SourceOptions,
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
        return super::vuln::run(super::vuln::Args::try_from(args)?, quiet);
    }
    if let Some(f) = args.output {
        super::sbom_format(f.name()).map_err(anyhow::Error::msg)?;
    }
    let sources = args.all_sources()?;
    let db = Db::open_readonly(args.db.location())?;
    if let [one] = &sources[..] {
        let source = SourceArgs {
            source: one.clone(),
            options: args.options.clone(),
        };
        let sbom = collect(&source, Some(&db), quiet)?;
        super::emit_sbom(&sbom, args.output, args.file.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.output.is_some_and(|f| f.name() != "json") {
        bail!("several sources are written as JSON lines; -o json or no -o");
    }
    super::many::scan(
        &sources,
        &args.options,
        &db,
        args.jobs,
        args.file.as_deref(),
        quiet,
    )
}

impl Args {
    /// The positional sources, then those of `--sources-from`.
    pub fn all_sources(&self) -> Result<Vec<String>> {
        let mut all = self.sources.clone();
        if let Some(p) = &self.sources_from {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?
            };
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        if all.is_empty() {
            bail!("no sources to scan");
        }
        Ok(all)
    }
}

/// Scan the source, with progress on stderr.
pub fn collect(source: &SourceArgs, db: Option<&Db>, quiet: bool) -> Result<Sbom> {
    let bar = progress::bytes("reading and hashing layers", quiet);
    let ticker = bar.clone();
    let progress = Some(Box::new(move |n| ticker.inc(n)) as Box<kiln_tree::ProgressFn>);
    let sbom = kiln_scan::scan(&source.source, &source.open_options()?, db, progress)?;
    bar.finish_and_clear();
    Ok(sbom)
}
