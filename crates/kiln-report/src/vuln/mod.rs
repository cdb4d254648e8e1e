//! Vulnerability reports: the findings of one scan, with the SBOM they
//! were matched on, in kiln's JSON, a table, SARIF 2.1.0 and CycloneDX 1.6
//! with vulnerabilities (VEX). Every format is built from the same
//! [`VulnReport`].

mod sarif;
mod vex;

use std::io::Write;

use kiln_vuln::ignore::Ignored;
use kiln_vuln::{Finding, Severity};
use serde::Serialize;

use crate::{Format, Sbom, SourceInfo};

/// What `kiln vuln` reports: the scan and what matched.
#[derive(Debug, Clone, Copy)]
pub struct VulnReport<'a> {
    /// The scan the findings were matched on.
    pub sbom: &'a Sbom,
    /// Findings that apply, most severe first.
    pub findings: &'a [Finding],
    /// Findings an ignore rule set aside, with its reason.
    pub ignored: &'a [Ignored],
}

/// kiln's JSON document for a vulnerability report.
#[derive(Serialize)]
struct Json<'a> {
    schema: &'static str,
    source: &'a SourceInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    distro: Option<&'a kiln_catalog::Distro>,
    packages: usize,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ignored: &'a [Ignored],
}

/// The formats a vulnerability report is written in.
pub const FORMATS: &[Format] = &[
    Format::Table,
    Format::Json,
    Format::Sarif,
    Format::CycloneDxJson,
];

/// Write `r` in `format` (one of [`FORMATS`]; SPDX has no place for
/// vulnerabilities and is refused).
pub fn write(r: &VulnReport<'_>, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Table => return table(r.findings, out),
        Format::Json => {
            let doc = Json {
                schema: "kiln-vuln/1",
                source: &r.sbom.source,
                distro: r.sbom.catalog.distro.as_ref(),
                packages: r.sbom.catalog.packages.len(),
                findings: r.findings,
                ignored: r.ignored,
            };
            serde_json::to_writer_pretty(&mut *out, &doc)?;
        }
        Format::Sarif => serde_json::to_writer_pretty(&mut *out, &sarif::document(r))?,
        Format::CycloneDxJson => serde_json::to_writer_pretty(&mut *out, &vex::document(r))?,
        Format::SpdxJson => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a vulnerability report cannot be written as SPDX",
            ))
        }
    }
    writeln!(out)
}

/// One line: how many findings of each severity, and how many fixable.
pub fn summary(findings: &[Finding], packages: usize) -> String {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "{} vulnerabilities in {} packages: {} critical, {} high, {} medium, {} low, {} negligible, {} unknown; {} fixable",
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

/// A finding in one sentence, as SARIF results and VEX analyses say it.
pub(crate) fn message(f: &Finding) -> String {
    let fix = match &f.fixed {
        Some(v) => format!("fixed in {v}"),
        None => "no fix available".into(),
    };
    format!(
        "{} {} is affected by {} ({}, {}); found by {} (confidence {:.2})",
        f.package,
        f.installed,
        f.id,
        f.severity.name(),
        fix,
        f.found_by,
        f.confidence
    )
}

/// The human table, as Grype prints it.
fn table(findings: &[Finding], out: &mut dyn Write) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "No vulnerabilities found");
    }
    let header = [
        "NAME",
        "INSTALLED",
        "FIXED-IN",
        "VULNERABILITY",
        "SEVERITY",
        "FOUND-BY",
    ]
    .map(String::from);
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
                f.found_by.to_string(),
            ]
        })
        .collect();
    crate::table::columns(&header, &rows, out)
}
