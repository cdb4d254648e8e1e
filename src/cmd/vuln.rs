//! `kiln vuln` (and `kiln scan --vuln`): identify what is in the image,
//! then match it against the advisories in the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kiln_rainbow::Db;
use kiln_report::vuln::VulnReport;
use kiln_report::Format;
use kiln_vuln::ignore::{Ignored, Ignores};
use kiln_vuln::{Finding, Severity, Store};

use super::db::DbArg;
use super::source::SourceArgs;

/// `kiln vuln SOURCE`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    db: DbArg,
    /// Output format: table, json, sarif, cyclonedx-json [default: table
    /// on a terminal, else json].
    #[arg(short, long, value_name = "FORMAT", value_parser = super::vuln_format)]
    output: Option<Format>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
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
    pub ignore_file: Option<PathBuf>,
}

impl TryFrom<super::scan::Args> for Args {
    type Error = anyhow::Error;

    /// The same run, reached as `kiln scan --vuln` (one source).
    fn try_from(a: super::scan::Args) -> anyhow::Result<Self> {
        let [source] = &a.all_sources()?[..] else {
            anyhow::bail!("--vuln scans one source at a time");
        };
        Ok(Args {
            source: SourceArgs {
                source: source.clone(),
                options: a.options,
            },
            db: a.db,
            output: a.output,
            file: a.file,
            policy: a.policy,
        })
    }
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| {
        format!("unknown severity {s:?}: use negligible, low, medium, high or critical")
    })
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    if let Some(f) = args.output {
        super::vuln_format(f.name()).map_err(anyhow::Error::msg)?;
    }
    let path = args.db.location();
    let signatures = Db::open_readonly(path.clone())
        .ok()
        .filter(|db| db.stats().map(|s| s.versions > 0).unwrap_or(false));
    if signatures.is_none() && !quiet {
        eprintln!(
            "kiln: no package signatures in {}; matching what the image's metadata declares only (build them with `kiln db build`)",
            path
        );
    }
    let sbom = super::scan::collect(&args.source, signatures.as_ref(), quiet)?;
    let store =
        Store::open(path.clone()).with_context(|| format!("cannot open advisories in {path}"))?;
    let mut findings =
        kiln_vuln::find(&store, &sbom.catalog.packages, sbom.catalog.distro.as_ref())?;
    if args.policy.only_fixed {
        findings.retain(|f| f.fixed.is_some());
    }
    let (findings, ignored) = apply_ignores(&args.policy, findings)?;
    let report = VulnReport {
        sbom: &sbom,
        findings: &findings,
        ignored: &ignored,
    };
    let format = super::format_or_default(args.output);
    super::write_to(args.file.as_deref(), |out| {
        kiln_report::vuln::write(&report, format, out)
    })?;
    if !quiet {
        let packages = sbom.catalog.packages.len();
        eprintln!("kiln: {}", kiln_report::vuln::summary(&findings, packages));
        if !ignored.is_empty() {
            eprintln!("kiln: {} finding(s) ignored by rules", ignored.len());
        }
    }
    Ok(policy_exit(&args.policy, &findings))
}

/// Set aside the findings the ignore rules cover (the `--ignore-file`, or
/// `.kilnignore` here when present); expired rules warn and stop applying.
fn apply_ignores(policy: &Policy, findings: Vec<Finding>) -> Result<(Vec<Finding>, Vec<Ignored>)> {
    let default = PathBuf::from(".kilnignore");
    let file = policy
        .ignore_file
        .clone()
        .or_else(|| default.exists().then_some(default));
    let Some(path) = file else {
        return Ok((findings, Vec::new()));
    };
    let rules = Ignores::load(&path)?;
    let today = kiln_vuln::ignore::today();
    for r in rules.expired(&today) {
        eprintln!(
            "kiln: warning: {}: rule for {} expired on {}; it no longer applies",
            path.display(),
            r.id,
            r.expires.as_deref().unwrap_or("?")
        );
    }
    Ok(rules.apply(findings, &today))
}

/// Exit status 1 when `--fail-on` is given and a finding reaches it.
fn policy_exit(policy: &Policy, findings: &[Finding]) -> ExitCode {
    match policy.fail_on {
        Some(t) if findings.iter().any(|f| f.severity >= t) => crate::EXIT_POLICY.into(),
        _ => ExitCode::SUCCESS,
    }
}
