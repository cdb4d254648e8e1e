//! Findings as SARIF 2.1.0, the format code-scanning dashboards read: one
//! rule per vulnerability, one result per finding, located at the
//! package's metadata file or first evidence file.

use std::collections::BTreeMap;

use kiln_vuln::{Finding, Severity};
use serde_json::{json, Value};

use super::{message, VulnReport};
use crate::TOOL_VERSION;

const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        _ => "note",
    }
}

/// GitHub's `security-severity` property: a CVSS-like number per rule.
fn security_severity(f: &Finding) -> String {
    let n = f.cvss_score.unwrap_or(match f.severity {
        Severity::Critical => 9.5,
        Severity::High => 8.0,
        Severity::Medium => 5.5,
        Severity::Low => 2.0,
        _ => 0.0,
    });
    format!("{n:.1}")
}

/// The SARIF log of a report.
pub(super) fn document(r: &VulnReport<'_>) -> Value {
    let findings = r.findings;
    let mut rules: BTreeMap<&str, Value> = BTreeMap::new();
    for f in findings {
        rules.entry(&f.id).or_insert_with(|| {
            let text = if f.summary.is_empty() {
                format!("{} in {}", f.id, f.matched_name)
            } else {
                f.summary.clone()
            };
            json!({
                "id": f.id,
                "shortDescription": { "text": text },
                "properties": {
                    "security-severity": security_severity(f),
                    "tags": ["security", "vulnerability", f.severity.name().to_lowercase()],
                },
            })
        });
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "ruleIndex": index[f.id.as_str()],
                "level": level(f.severity),
                "message": { "text": message(f) },
                "locations": [{
                    "physicalLocation": { "artifactLocation": { "uri": location(r, f) } },
                    "logicalLocations": [{ "name": f.purl, "kind": "package" }],
                }],
                "properties": {
                    "package": f.package,
                    "installedVersion": f.installed,
                    "fixedVersion": f.fixed,
                    "foundBy": f.found_by,
                    "confidence": f.confidence,
                },
            })
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kiln",
                "version": TOOL_VERSION,
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

/// Where a finding points in the image: the package's first location
/// (its metadata file, or the first file its bytes were found in),
/// image-relative.
fn location(r: &VulnReport<'_>, f: &Finding) -> String {
    r.sbom
        .catalog
        .packages
        .iter()
        .find(|p| p.purl == f.purl)
        .and_then(|p| p.locations.first())
        .map(|l| l.path.trim_start_matches('/').to_string())
        .unwrap_or_else(|| r.sbom.source.name.clone())
}
