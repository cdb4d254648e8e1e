//! SPDX 2.3 JSON.

use kiln_catalog::Package;
use serde_json::{json, Value};

use crate::{timestamp, Sbom, TOOL_NAME, TOOL_VERSION};

const ROOT_ID: &str = "SPDXRef-DocumentRoot";

pub(crate) fn document(sbom: &Sbom) -> Value {
    let src = &sbom.source;
    let mut root = json!({
        "name": src.name,
        "SPDXID": ROOT_ID,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": if src.transport == "dir" { "FILE" } else { "CONTAINER" },
    });
    if let Some(id) = &src.image_id {
        root["versionInfo"] = json!(id);
    }
    let mut packages = vec![root];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relatedSpdxElement": ROOT_ID,
        "relationshipType": "DESCRIBES",
    })];
    for (i, p) in sbom.catalog.packages.iter().enumerate() {
        let id = format!(
            "SPDXRef-Package-{}-{}-{}",
            p.ecosystem.label(),
            sanitize(&p.name),
            i
        );
        packages.push(package(p, &id));
        relationships.push(json!({
            "spdxElementId": ROOT_ID,
            "relatedSpdxElement": id,
            "relationshipType": "CONTAINS",
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": src.name,
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/{}-{}-{}",
            TOOL_NAME,
            sanitize(&src.name),
            uuid::Uuid::new_v4()
        ),
        "creationInfo": {
            "created": timestamp(),
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

fn package(p: &Package, id: &str) -> Value {
    let origin = p.ecosystem.descriptor().spdx_origin;
    let source_info = match p.locations.first() {
        Some(l) => format!("acquired package info from {origin}: {}", l.path),
        None => format!("acquired package info from {origin}"),
    };
    let mut v = json!({
        "name": p.name,
        "SPDXID": id,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "sourceInfo": source_info,
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl,
        }],
    });
    let exact = p
        .evidence
        .as_ref()
        .is_none_or(|e| e.candidate_versions.len() <= 1);
    if !p.version.is_empty() && exact {
        v["versionInfo"] = json!(p.version);
    }
    if let Some(ev) = &p.evidence {
        let mut comment = format!(
            "kiln: {} (confidence {:.2}); {} of {} files seen",
            ev.resolution, ev.confidence, ev.files_seen, ev.files_total
        );
        if !ev.candidate_versions.is_empty() {
            comment.push_str(&format!("; bytes fit {}", ev.candidate_versions.join(", ")));
        }
        if let Some(n) = &ev.nearest_version {
            comment.push_str(&format!("; nearest known version {n}"));
        }
        if let Some(r) = &ev.version_range {
            comment.push_str(&format!("; evidence allows {r}"));
        }
        v["comment"] = json!(comment);
    }
    v
}

/// SPDX IDs allow only letters, digits, `.` and `-`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
