//! CycloneDX 1.6 with `vulnerabilities` (VEX): the SBOM document of the
//! scan, each vulnerability pointing at the components it affects by
//! their bom-refs, which come from the same document builder.

use std::collections::BTreeMap;

use kiln_vuln::Finding;
use serde_json::{json, Value};

use super::{message, VulnReport};

/// The CycloneDX document of the report's SBOM, with its findings.
pub(super) fn document(r: &VulnReport<'_>) -> Value {
    let (mut bom, refs) = crate::cyclonedx::document_with_refs(r.sbom);
    let mut by_id: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in r.findings {
        by_id.entry(&f.id).or_default().push(f);
    }
    let vulns = by_id
        .iter()
        .map(|(id, fs)| vulnerability(id, fs, &refs))
        .collect();
    bom["vulnerabilities"] = Value::Array(vulns);
    bom
}

/// One vulnerability and every component it affects.
fn vulnerability(id: &str, fs: &[&Finding], refs: &BTreeMap<String, String>) -> Value {
    let f = fs[0];
    let affects: Vec<Value> = fs
        .iter()
        .filter_map(|f| refs.get(f.purl.as_str()))
        .map(|r| json!({ "ref": r }))
        .collect();
    let mut v = json!({
        "bom-ref": format!("vuln-{id}"),
        "id": id,
        "ratings": [rating(f)],
        "affects": affects,
        "analysis": { "state": "exploitable", "detail": message(f) },
    });
    if let Some(fix) = &f.fixed {
        v["recommendation"] = json!(format!("Upgrade {} to {} or later", f.matched_name, fix));
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
}

fn rating(f: &Finding) -> Value {
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
    rating
}

/// Who publishes an advisory, from its ID's prefix.
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
