//! Matching identified packages against stored advisories.
//!
//! Debian packages match Debian advisories only, by *source* package and
//! source version with dpkg's order — never an upstream range, so a
//! Debian backport of a fix is not flagged. Python matches PyPI, apk
//! matches Alpine.

use std::collections::BTreeMap;

use kiln_catalog::{Distro, Ecosystem, Package, Resolution};
use serde::Serialize;

use crate::cvss::{base_score, Severity};
use crate::osv::{affects, Advisory};
use crate::store::{Store, StoreError};

/// How a matched package was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Declared by package metadata only.
    Metadata,
    /// Identified from the bytes of its files.
    Bytes,
}

impl FoundBy {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            FoundBy::Metadata => "metadata",
            FoundBy::Bytes => "bytes",
        }
    }
}

impl std::fmt::Display for FoundBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One vulnerability in one package.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The vulnerability ID (a CVE when there is one).
    pub id: String,
    /// Advisory IDs that report it (`DSA-…`, `DEBIAN-CVE-…`, `GHSA-…`).
    pub advisories: Vec<String>,
    /// Other names of it.
    pub aliases: Vec<String>,
    /// Package name as installed.
    pub package: String,
    /// Its purl.
    pub purl: String,
    /// The OSV ecosystem the matching advisory was published under: an
    /// open set of names with releases (`Debian:12`, `Alpine:v3.19`,
    /// `PyPI`), not the package's [`kiln_catalog::Ecosystem`].
    #[serde(rename = "ecosystem")]
    pub advisory_ecosystem: String,
    /// The name matched (Debian: the source package).
    pub matched_name: String,
    /// Installed version (for a version set, the versions joined by ` | `).
    pub installed: String,
    /// The first version that fixes it, if one exists.
    pub fixed: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// CVSS v3 base score, when a vector was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// The CVSS vector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    /// Summary text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Where the data came from (`osv`, `debian-tracker`).
    pub sources: Vec<String>,
    /// How the package was found.
    pub found_by: FoundBy,
    /// Identification confidence carried from the scan (1.0 for metadata).
    pub confidence: f64,
}

/// The (ecosystem, name, versions) keys a package is matched under.
fn match_keys(p: &Package, distro: Option<&Distro>) -> Vec<(String, String, Vec<String>)> {
    if p.ecosystem == Ecosystem::Generic {
        // Upstream components match NVD CPE ranges, by their products.
        let Some((_, _, versions)) = match_key(p, distro) else {
            return Vec::new();
        };
        return crate::nvd::products(&p.name)
            .map(|cpe| {
                (
                    crate::nvd::ECOSYSTEM.to_string(),
                    cpe.to_string(),
                    versions.clone(),
                )
            })
            .collect();
    }
    match_key(p, distro).into_iter().collect()
}

/// The (ecosystem, name, versions) a package is matched under: the OSV
/// ecosystem and name rules of its [`kiln_catalog::Descriptor`].
/// Distribution packages match by source package and, for one version,
/// source version: advisories speak of sources, and a binNMU's binary
/// version (`+bN`) is not one.
fn match_key(p: &Package, distro: Option<&Distro>) -> Option<(String, String, Vec<String>)> {
    let versions: Vec<String> = match &p.evidence {
        Some(e) if !e.candidate_versions.is_empty() => e.candidate_versions.clone(),
        Some(e) if e.resolution == Resolution::VersionNotInDb => return None,
        _ if p.version.is_empty() => return None,
        _ => vec![p.version.clone()],
    };
    let eco = p.ecosystem.osv_name(distro)?;
    if !p.ecosystem.descriptor().distro_package {
        return Some((eco, p.ecosystem.normalize_name(&p.name), versions));
    }
    let name = p.source_name.clone().unwrap_or_else(|| p.name.clone());
    let versions = match (p.ecosystem, versions.as_slice()) {
        (Ecosystem::Deb, [one]) => vec![p.source_version.clone().unwrap_or_else(|| one.clone())],
        _ => versions,
    };
    Some((eco, name, versions))
}

fn severity_of(a: &Advisory) -> (Severity, Option<f64>, Option<String>) {
    // The newest CVSS version given wins.
    for kind in ["CVSS_V4", "CVSS_V3", "CVSS_V2"] {
        for s in a.severity.iter().filter(|s| s.kind == kind) {
            if let Some(score) = base_score(&s.score) {
                return (
                    Severity::from_score(score),
                    Some(score),
                    Some(s.score.clone()),
                );
            }
        }
    }
    let urgency = a
        .affected
        .iter()
        .filter_map(|x| x.ecosystem_specific.as_ref())
        .chain(a.database_specific.as_ref())
        .find_map(|v| {
            v.get("urgency")
                .or_else(|| v.get("severity"))
                .and_then(|u| u.as_str())
        });
    match urgency {
        Some(u) => (
            Severity::parse(u).unwrap_or_else(|| Severity::from_urgency(&u.to_ascii_lowercase())),
            None,
            None,
        ),
        None => (Severity::Unknown, None, None),
    }
}

/// The ID a vulnerability is reported under: its CVE when it has one.
fn vuln_id(a: &Advisory) -> String {
    if a.id.starts_with("CVE-") {
        return a.id.clone();
    }
    a.aliases
        .iter()
        .chain(&a.upstream)
        .find(|x| x.starts_with("CVE-"))
        .cloned()
        .unwrap_or_else(|| a.id.clone())
}

/// Match every package against the store.
pub fn find(
    store: &Store,
    packages: &[Package],
    distro: Option<&Distro>,
) -> Result<Vec<Finding>, StoreError> {
    let mut out: BTreeMap<(String, String, String), Finding> = BTreeMap::new();
    for p in packages {
        for (eco, name, versions) in match_keys(p, distro) {
            find_one(store, p, &eco, &name, &versions, &mut out)?;
        }
    }
    let mut v: Vec<Finding> = out.into_values().collect();
    v.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(v)
}

type Found = BTreeMap<(String, String, String), Finding>;

fn find_one(
    store: &Store,
    p: &Package,
    eco: &str,
    name: &str,
    versions: &[String],
    out: &mut Found,
) -> Result<(), StoreError> {
    let (eco, name) = (eco.to_string(), name.to_string());
    {
        let found_by = if p
            .evidence
            .as_ref()
            .is_some_and(|e| e.resolution != Resolution::MetadataOnly)
        {
            FoundBy::Bytes
        } else {
            FoundBy::Metadata
        };
        let confidence = p.evidence.as_ref().map_or(1.0, |e| e.confidence);
        for (source, adv) in store.candidates(&eco, &name)? {
            let family = eco.split(':').next().unwrap_or(&eco);
            let hit = adv
                .affected
                .iter()
                .filter(|x| {
                    x.package.as_ref().is_some_and(|k| {
                        k.name == name && (k.ecosystem == eco || k.ecosystem == family)
                    })
                })
                .find_map(|x| versions.iter().find_map(|v| affects(x, &eco, v)));
            let Some(fixed) = hit else { continue };
            let id = vuln_id(&adv);
            let installed = versions.join(" | ");
            let (severity, score, vector) = severity_of(&adv);
            let key = (id.clone(), p.name.clone(), installed.clone());
            let f = out.entry(key).or_insert_with(|| Finding {
                id: id.clone(),
                advisories: Vec::new(),
                aliases: Vec::new(),
                package: p.name.clone(),
                purl: p.purl.clone(),
                advisory_ecosystem: eco.clone(),
                matched_name: name.clone(),
                installed,
                fixed: fixed.clone(),
                severity,
                cvss_score: score,
                cvss_vector: vector.clone(),
                summary: adv.summary.clone(),
                sources: Vec::new(),
                found_by,
                confidence,
            });
            if adv.id != f.id && !f.advisories.contains(&adv.id) {
                f.advisories.push(adv.id.clone());
            }
            for al in adv.aliases.iter().chain(&adv.upstream) {
                if *al != f.id && !f.aliases.contains(al) {
                    f.aliases.push(al.clone());
                }
            }
            if !f.sources.contains(&source) {
                f.sources.push(source.clone());
            }
            // Prefer a scored severity over a tracker urgency; keep the
            // earliest fix any source names.
            if f.cvss_score.is_none() && score.is_some() {
                f.severity = severity;
                f.cvss_score = score;
                f.cvss_vector = vector;
            } else if f.severity == Severity::Unknown {
                f.severity = severity;
            }
            if f.fixed.is_none() {
                f.fixed = fixed;
            }
            if f.summary.is_empty() {
                f.summary = adv.summary.clone();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_catalog::Package;

    fn component(name: &str, version: &str, eco: Ecosystem) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            ecosystem: eco,
            arch: None,
            source_name: None,
            source_version: None,
            purl: format!("pkg:generic/{name}@{version}"),
            licenses: Vec::new(),
            found_by: "test",
            locations: Vec::new(),
            files: Vec::new(),
            evidence: None,
            parent: None,
        }
    }

    /// NVD ranges apply to vendored upstream components, never to a
    /// Debian package of the same project (its fixes are backported).
    #[test]
    fn nvd_matches_components_not_distro_packages() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("kiln.db")).unwrap();
        let adv = crate::nvd::parse(crate::nvd::tests::CVE_2023_0286.as_bytes()).unwrap();
        store.import("nvd", &adv, true).unwrap();
        let pkgs = vec![
            component("openssl", "1.1.1s", Ecosystem::Generic),
            component("openssl", "1.1.1w", Ecosystem::Generic),
            component("openssl", "3.0.7-1", Ecosystem::Deb),
        ];
        let f = find(&store, &pkgs, None).unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].installed, "1.1.1s");
        assert_eq!(f[0].fixed.as_deref(), Some("1.1.1t"));
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].cvss_score, Some(7.4));
    }
}
