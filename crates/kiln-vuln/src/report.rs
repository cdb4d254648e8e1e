//! Findings in the formats CI pipelines consume: SARIF 2.1.0 and CycloneDX
//! vulnerabilities (VEX) added to an SBOM document.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::cvss::Severity;
use crate::matcher::Finding;

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

fn message(f: &Finding) -> String {
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

/// A SARIF 2.1.0 log: one rule per vulnerability, one result per finding,
/// located at `location` (the metadata file or first evidence file).
pub fn sarif(
    findings: &[Finding],
    tool_version: &str,
    locate: &dyn Fn(&Finding) -> String,
) -> Value {
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
                    "physicalLocation": { "artifactLocation": { "uri": locate(f) } },
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
                "version": tool_version,
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

/// Add CycloneDX 1.6 `vulnerabilities` to an SBOM document whose
/// components carry purls; each finding points at its component.
pub fn cyclonedx_vex(mut bom: Value, findings: &[Finding]) -> Value {
    let refs: BTreeMap<String, String> = bom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["purl"].as_str()?.to_string(),
                c["bom-ref"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut by_id: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_id.entry(&f.id).or_default().push(f);
    }
    let vulns: Vec<Value> = by_id
        .iter()
        .map(|(id, fs)| {
            let f = fs[0];
            let mut rating = json!({ "severity": f.severity.name().to_lowercase() });
            if let (Some(score), Some(vector)) = (f.cvss_score, &f.cvss_vector) {
                rating["score"] = json!(score);
                rating["vector"] = json!(vector);
                rating["method"] = json!(match vector.get(..8) {
                    Some("CVSS:4.0") => "CVSSv4",
                    Some("CVSS:3.1") => "CVSSv31",
                    Some("CVSS:3.0") => "CVSSv3",
                    _ => "CVSSv2",
                });
            }
            let affects: Vec<Value> = fs
                .iter()
                .filter_map(|f| refs.get(&f.purl))
                .map(|r| json!({ "ref": r }))
                .collect();
            let mut v = json!({
                "bom-ref": format!("vuln-{id}"),
                "id": id,
                "ratings": [rating],
                "affects": affects,
                "analysis": { "state": "exploitable", "detail": message(f) },
            });
            if let Some(fix) = &f.fixed {
                v["recommendation"] =
                    json!(format!("Upgrade {} to {} or later", f.matched_name, fix));
            }
            if !f.summary.is_empty() {
                v["description"] = json!(f.summary);
            }
            let refs: Vec<Value> = f
                .aliases
                .iter()
                .chain(&f.advisories)
                .map(|a| json!({ "id": a, "source": { "name": source_name(a) } }))
                .collect();
            if !refs.is_empty() {
                v["references"] = Value::Array(refs);
            }
            v["source"] = json!({ "name": source_name(id) });
            v
        })
        .collect();
    bom["vulnerabilities"] = Value::Array(vulns);
    bom
}

fn source_name(id: &str) -> &'static str {
    match id.split('-').next().unwrap_or("") {
        "CVE" => "NVD",
        "DSA" | "DLA" | "DEBIAN" | "TEMP" => "Debian",
        "GHSA" => "GitHub",
        "PYSEC" => "PyPA",
        "GO" => "Go",
        "RUSTSEC" => "RustSec",
        _ => "OSV",
    }
}
