//! `kiln vuln` (and `kiln scan --vuln`): identify what is in the image,
//! then match it against the advisories in the database.

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
    /// Output format: table, json, sarif, cyclonedx-json
    /// [default: table on a terminal, else json].
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    #[command(flatten)]
    policy: Policy,
}

/// What to report and when to fail; shared with `kiln scan --vuln`.
#[derive(clap::Args, Debug, Clone)]
pub struct Policy {
    /// Exit with status 1 when a finding is at least this severe
    /// (negligible, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
    /// Report only vulnerabilities that have a fix.
    #[arg(long)]
    pub only_fixed: bool,
    /// Ignore rules (YAML, with reasons and expiry dates)
    /// [default: .kilnignore in the current directory, if present].
    #[arg(long, value_name = "PATH")]
    pub ignore_file: Option<std::path::PathBuf>,
}

impl Args {
    /// The same run, reached as `kiln scan --vuln`.
    pub fn from_scan(
        source: SourceArgs,
        db: DbArg,
        output: Option<String>,
        file: Option<std::path::PathBuf>,
        policy: Policy,
    ) -> Self {
        Args {
            source,
            db,
            output,
            file,
            policy,
        }
    }
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ignored: &'a [kiln_vuln::ignore::Ignored],
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
    if args.policy.only_fixed {
        findings.retain(|f| f.fixed.is_some());
    }
    let ignore_file = args.policy.ignore_file.clone().or_else(|| {
        let default = std::path::PathBuf::from(".kilnignore");
        default.exists().then_some(default)
    });
    let mut ignored = Vec::new();
    if let Some(path) = &ignore_file {
        let rules = kiln_vuln::ignore::Ignores::load(path)?;
        let today = kiln_vuln::ignore::today();
        for r in rules.expired(&today) {
            eprintln!(
                "kiln: warning: {}: rule for {} expired on {}; it no longer applies",
                path.display(),
                r.id,
                r.expires.as_deref().unwrap_or("?")
            );
        }
        (findings, ignored) = rules.apply(findings, &today);
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
                ignored: &ignored,
            };
            serde_json::to_writer_pretty(&mut text, &report)?;
            writeln!(text)?;
        }
        "sarif" => {
            let locate = |f: &Finding| location(&sbom, f);
            let log = kiln_vuln::report::sarif(&findings, kiln_report::TOOL_VERSION, &locate);
            serde_json::to_writer_pretty(&mut text, &log)?;
            writeln!(text)?;
        }
        "cyclonedx-json" | "cyclonedx" => {
            let mut bom = Vec::new();
            kiln_report::write(&sbom, kiln_report::Format::CycloneDxJson, &mut bom)?;
            let bom: serde_json::Value = serde_json::from_slice(&bom)?;
            serde_json::to_writer_pretty(
                &mut text,
                &kiln_vuln::report::cyclonedx_vex(bom, &findings),
            )?;
            writeln!(text)?;
        }
        "table" => table(&findings, &mut text)?,
        other => bail!(
            "unknown output format {other:?} for vuln: use table, json, sarif or cyclonedx-json"
        ),
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
        if !ignored.is_empty() {
            eprintln!("kiln: {} finding(s) ignored by rules", ignored.len());
        }
    }
    if let Some(threshold) = args.policy.fail_on {
        if findings.iter().any(|f| f.severity >= threshold) {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a finding points in the image: the package's first location
/// (its metadata file, or the first file its bytes were found in),
/// image-relative.
fn location(sbom: &kiln_report::Sbom, f: &Finding) -> String {
    sbom.catalog
        .packages
        .iter()
        .find(|p| p.purl == f.purl)
        .and_then(|p| p.locations.first())
        .map(|l| l.path.trim_start_matches('/').to_string())
        .unwrap_or_else(|| sbom.source.name.clone())
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
