//! `kiln vuln`: identify what is in the image, then match it against the
//! advisories in the database.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_rainbow::Db;
use kiln_vuln::{Finding, Severity, Store};
use serde::Serialize;

use super::db::DbArg;
use super::source::SourceArgs;

/// `kiln vuln SOURCE`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    db: DbArg,
    /// Output format: table or json [default: table on a terminal, else json].
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Exit with status 1 when a finding is at least this severe
    /// (negligible, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,
    /// Report only vulnerabilities that have a fix.
    #[arg(long)]
    only_fixed: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| {
        format!("unknown severity {s:?}: use negligible, low, medium, high or critical")
    })
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    source: &'a kiln_report::SourceInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    distro: Option<&'a kiln_catalog::Distro>,
    packages: usize,
    findings: &'a [Finding],
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let path = args.db.path();
    let signatures = Db::open_readonly(&path)
        .ok()
        .filter(|db| db.stats().map(|s| s.versions > 0).unwrap_or(false));
    if signatures.is_none() && !quiet {
        eprintln!(
            "kiln: no package signatures in {}; matching what the image's metadata declares only (build them with `kiln db build`)",
            path.display()
        );
    }
    let sbom = super::scan::collect(&args.source, signatures.as_ref(), quiet)?;
    let store = Store::open(&path)
        .with_context(|| format!("cannot open advisories in {}", path.display()))?;
    let mut findings =
        kiln_vuln::find(&store, &sbom.catalog.packages, sbom.catalog.distro.as_ref())?;
    if args.only_fixed {
        findings.retain(|f| f.fixed.is_some());
    }
    let format = match args.output.as_deref() {
        Some(f) => f.to_string(),
        None if std::io::stdout().is_terminal() => "table".into(),
        None => "json".into(),
    };
    let mut text = Vec::new();
    match format.as_str() {
        "json" => {
            let report = Report {
                schema: "kiln-vuln/1",
                source: &sbom.source,
                distro: sbom.catalog.distro.as_ref(),
                packages: sbom.catalog.packages.len(),
                findings: &findings,
            };
            serde_json::to_writer_pretty(&mut text, &report)?;
            writeln!(text)?;
        }
        "table" => table(&findings, &mut text)?,
        other => bail!("unknown output format {other:?} for vuln: use table or json"),
    }
    match &args.file {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&text) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    if !quiet {
        eprintln!("{}", summary(&findings, sbom.catalog.packages.len()));
    }
    if let Some(threshold) = args.fail_on {
        if findings.iter().any(|f| f.severity >= threshold) {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(findings: &[Finding], packages: usize) -> String {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "kiln: {} vulnerabilities in {} packages: {} critical, {} high, {} medium, {} low, {} negligible, {} unknown; {} fixable",
        findings.len(),
        packages,
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        count(Severity::Negligible),
        count(Severity::Unknown),
        findings.iter().filter(|f| f.fixed.is_some()).count()
    )
}

fn table(findings: &[Finding], out: &mut Vec<u8>) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "No vulnerabilities found");
    }
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|f| {
            [
                f.package.clone(),
                f.installed.clone(),
                f.fixed
                    .clone()
                    .unwrap_or_else(|| "(won't fix / none yet)".into()),
                f.id.clone(),
                f.severity.name().to_string(),
                f.found_by.clone(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "INSTALLED",
        "FIXED-IN",
        "VULNERABILITY",
        "SEVERITY",
        "FOUND-BY",
    ]
    .map(String::from);
    let mut w = [0usize; 6];
    for r in std::iter::once(&header).chain(&rows) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
