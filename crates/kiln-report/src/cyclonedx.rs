//! CycloneDX 1.6 JSON.

use std::collections::{BTreeMap, HashSet};

use kiln_catalog::Package;
use serde_json::{json, Value};

use crate::{timestamp, Sbom, TOOL_NAME, TOOL_VERSION};

pub(crate) fn document(sbom: &Sbom) -> Value {
    document_with_refs(sbom).0
}

/// The document, and the bom-ref of each purl's component (a top-level
/// one where the purl has several), for documents that point at them.
pub(crate) fn document_with_refs(sbom: &Sbom) -> (Value, BTreeMap<String, String>) {
    let src = &sbom.source;
    let mut root = json!({
        "bom-ref": "kiln-source",
        "type": if src.transport == "dir" { "file" } else { "container" },
        "name": src.name,
    });
    if let Some(id) = &src.image_id {
        root["version"] = json!(id);
    }
    let packages = &sbom.catalog.packages;
    let refs = bom_refs(packages);
    let mut built: Vec<Option<Value>> = packages
        .iter()
        .zip(&refs)
        .map(|(p, r)| Some(component(sbom, p, r)))
        .collect();
    let mut nested = vec![false; packages.len()];
    // Vendored components nest inside the component of the package whose
    // file holds them (CycloneDX `components` of a component).
    for (i, p) in packages.iter().enumerate() {
        let Some(parent) = &p.parent else { continue };
        let Some(j) = packages
            .iter()
            .position(|q| q.parent.is_none() && &q.purl == parent)
        else {
            continue;
        };
        if let Some(child) = built[i].take() {
            nested[i] = true;
            if let Some(Value::Object(host)) = built[j].as_mut() {
                if let Some(a) = host
                    .entry("components")
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                {
                    a.push(child);
                }
            }
        }
    }
    let mut components: Vec<Value> = built.into_iter().flatten().collect();
    if let Some(d) = &sbom.catalog.distro {
        let mut os = json!({
            "bom-ref": "kiln-os",
            "type": "operating-system",
            "name": d.id,
        });
        if let Some(v) = &d.version_id {
            os["version"] = json!(v);
        }
        if let Some(p) = &d.pretty_name {
            os["description"] = json!(p);
        }
        components.push(os);
    }
    // Top-level components win, the last of a purl's last.
    let mut by_purl = BTreeMap::new();
    for pass in [true, false] {
        for (i, p) in packages
            .iter()
            .enumerate()
            .filter(|(i, _)| nested[*i] == pass)
        {
            by_purl.insert(p.purl.clone(), refs[i].clone());
        }
    }
    let doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(),
            "tools": { "components": [{
                "type": "application",
                "author": TOOL_NAME,
                "name": TOOL_NAME,
                "version": TOOL_VERSION,
            }]},
            "component": root,
        },
        "components": components,
    });
    (doc, by_purl)
}

/// Unique bom-refs: the purl, with `#N` for its N-th repeat (one Python
/// distribution installed in two environments has one purl).
fn bom_refs(packages: &[Package]) -> Vec<String> {
    let mut seen = HashSet::new();
    packages
        .iter()
        .map(|p| {
            let mut bom_ref = p.purl.clone();
            let mut n = 1;
            while !seen.insert(bom_ref.clone()) {
                n += 1;
                bom_ref = format!("{}#{}", p.purl, n);
            }
            bom_ref
        })
        .collect()
}

fn component(sbom: &Sbom, p: &Package, bom_ref: &str) -> Value {
    let mut props = vec![prop("kiln:package:type", p.ecosystem.label())];
    props.push(prop("kiln:package:foundBy", p.found_by));
    if let Some(s) = &p.source_name {
        props.push(prop("kiln:package:sourceName", s));
    }
    if let Some(v) = &p.source_version {
        props.push(prop("kiln:package:sourceVersion", v));
    }
    for (i, l) in p.locations.iter().enumerate() {
        props.push(prop(&format!("kiln:location:{i}:path"), &l.path));
        if let Some(d) = sbom.source.layer_digest(l.layer) {
            props.push(prop(&format!("kiln:location:{i}:layerDigest"), d));
        }
    }
    let exact_version = !p.version.is_empty()
        && p.evidence
            .as_ref()
            .is_none_or(|e| e.candidate_versions.len() <= 1);
    if let Some(ev) = &p.evidence {
        props.push(prop("kiln:evidence:resolution", ev.resolution.name()));
        props.push(prop("kiln:evidence:filesSeen", &ev.files_seen.to_string()));
        props.push(prop(
            "kiln:evidence:filesTotal",
            &ev.files_total.to_string(),
        ));
        for v in &ev.candidate_versions {
            props.push(prop("kiln:evidence:candidateVersion", v));
        }
        if let Some(n) = &ev.nearest_version {
            props.push(prop("kiln:evidence:nearestVersion", n));
        }
        if let Some(r) = &ev.version_range {
            props.push(prop("kiln:evidence:versionRange", r));
        }
        // Which techniques stand behind the reported answer.
        if !ev.techniques.is_empty() {
            let mut agreed: Vec<&str> = ev.techniques.iter().map(|t| t.technique.name()).collect();
            agreed.dedup();
            props.push(prop("kiln:evidence:techniquesAgreeing", &agreed.join(",")));
        }
        for n in &ev.notes {
            props.push(prop("kiln:evidence:note", n));
        }
    }
    let mut c = json!({
        "bom-ref": bom_ref,
        "type": "library",
        "name": p.name,
        "purl": p.purl,
        "properties": props,
    });
    if exact_version {
        c["version"] = json!(p.version);
    }
    if let Some(ev) = &p.evidence {
        c["evidence"] = evidence(sbom, ev);
    }
    if !p.licenses.is_empty() {
        c["licenses"] = Value::Array(
            p.licenses
                .iter()
                .map(|l| json!({ "license": { "name": l } }))
                .collect(),
        );
    }
    c
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

fn evidence(sbom: &Sbom, ev: &kiln_catalog::Evidence) -> Value {
    let methods: Vec<Value> = ev
        .techniques
        .iter()
        .map(|t| {
            json!({
                "technique": t.technique.cyclonedx_method(),
                "confidence": t.confidence,
                "value": format!("{} ({} files)", t.technique, t.files),
            })
        })
        .collect();
    let occurrences: Vec<Value> = ev
        .occurrences
        .iter()
        .map(|o| {
            let mut v = json!({ "location": o.path });
            let ctx = match sbom.source.layer_digest(o.layer) {
                Some(d) => format!("{} in layer {}", o.technique, d),
                None => o.technique.to_string(),
            };
            v["additionalContext"] = json!(ctx);
            v
        })
        .collect();
    let mut out = json!({
        "identity": [{
            "field": "purl",
            "confidence": ev.confidence,
            "methods": methods,
        }],
    });
    if !occurrences.is_empty() {
        out["occurrences"] = Value::Array(occurrences);
    }
    out
}
