//! The OSV schema (ossf.github.io/osv-schema), as far as matching needs
//! it, and the spec's range evaluation.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::version;

/// One OSV record.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Advisory {
    /// `DSA-5500-1`, `GHSA-…`, `CVE-…`.
    pub id: String,
    /// Other IDs of the same vulnerability.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Related but distinct vulnerabilities (Debian's `DEBIAN-CVE` records
    /// put the CVE here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<String>,
    /// One-line summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Longer text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Severity vectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    /// What is affected.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Last modification, RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modified: String,
    /// Source-specific extras (the Debian tracker's urgency lands here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity vector.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Severity {
    /// `CVSS_V3`, `CVSS_V4`, `Ubuntu`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or score.
    pub score: String,
}

/// One affected package.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Affected {
    /// Which package.
    #[serde(default)]
    pub package: Option<PackageRef>,
    /// Version ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
    /// Explicitly listed affected versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Extras; Debian puts `urgency` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem_specific: Option<serde_json::Value>,
}

/// `affected[].package`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PackageRef {
    /// `Debian:12`, `PyPI`, `Go`, …
    pub ecosystem: String,
    /// Package name in that ecosystem (Debian: the source package).
    pub name: String,
    /// Package URL, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// A version range.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT` (commit ranges are not matched).
    #[serde(rename = "type")]
    pub kind: String,
    /// Events in any order.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event; exactly one field is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Event {
    /// Vulnerable from here (`"0"`: from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// Fixed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Last vulnerable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// Upper bound of the range (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl Event {
    fn version(&self) -> &str {
        self.introduced
            .as_deref()
            .or(self.fixed.as_deref())
            .or(self.last_affected.as_deref())
            .or(self.limit.as_deref())
            .unwrap_or("0")
    }
}

/// Is `version` affected by `affected` (in `ecosystem`)? Returns the fix,
/// if the matching range has one: `Some(Some(fixed))`, `Some(None)` for
/// affected with no fix, `None` for not affected.
pub fn affects(affected: &Affected, ecosystem: &str, version: &str) -> Option<Option<String>> {
    // NVD's exclusive range starts (which OSV cannot express) are kept
    // beside the range: the start version itself is not affected.
    let start_excluding = affected
        .ecosystem_specific
        .as_ref()
        .and_then(|v| v.get("start_excluding"))
        .and_then(|v| v.as_str());
    if start_excluding
        .is_some_and(|x| version::compare(ecosystem, version, x) == Some(Ordering::Equal))
    {
        return None;
    }
    if affected.versions.iter().any(|v| v == version) {
        return Some(first_fix_after(affected, ecosystem, version));
    }
    let cmp = |a: &str, b: &str| -> Ordering {
        match (a, b) {
            ("0", "0") => Ordering::Equal,
            ("0", _) => Ordering::Less,
            (_, "0") => Ordering::Greater,
            _ => version::compare(ecosystem, a, b).unwrap_or(Ordering::Equal),
        }
    };
    for range in &affected.ranges {
        if range.kind != "ECOSYSTEM" && range.kind != "SEMVER" {
            continue;
        }
        let mut events = range.events.clone();
        // Sorting needs a total order (a partial one made `sort_by` panic
        // on a fuzzed record): "0" first, then the scheme's total order.
        let scheme = kiln_catalog::version::Scheme::from_osv(ecosystem);
        events.sort_by(|a, b| match (a.version(), b.version()) {
            ("0", "0") => Ordering::Equal,
            ("0", _) => Ordering::Less,
            (_, "0") => Ordering::Greater,
            (x, y) => scheme.cmp(x, y),
        });
        // The evaluation in the OSV schema's "Evaluation" section.
        let mut hit = false;
        let mut fix = None;
        for e in &events {
            if let Some(i) = &e.introduced {
                if i == "0" || cmp(version, i) != Ordering::Less {
                    hit = true;
                    fix = None;
                }
            } else if let Some(f) = &e.fixed {
                if cmp(version, f) != Ordering::Less {
                    hit = false;
                } else if hit && fix.is_none() {
                    fix = Some(f.clone());
                }
            } else if let Some(l) = &e.last_affected {
                if cmp(version, l) == Ordering::Greater {
                    hit = false;
                }
            } else if let Some(l) = &e.limit {
                if cmp(version, l) != Ordering::Less {
                    hit = false;
                }
            }
        }
        if hit {
            return Some(fix);
        }
    }
    None
}

fn first_fix_after(affected: &Affected, ecosystem: &str, version: &str) -> Option<String> {
    affected
        .ranges
        .iter()
        .flat_map(|r| r.events.iter())
        .filter_map(|e| e.fixed.clone())
        .filter(|f| version::compare(ecosystem, version, f) == Some(Ordering::Less))
        .min_by(|a, b| version::compare(ecosystem, a, b).unwrap_or(Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affected(eco: &str, events: serde_json::Value) -> Affected {
        serde_json::from_value(serde_json::json!({
            "package": {"ecosystem": eco, "name": "x"},
            "ranges": [{"type": "ECOSYSTEM", "events": events}],
        }))
        .unwrap()
    }

    /// curl's CVE-2023-38545 (SOCKS5 heap overflow) was fixed in bookworm
    /// by 7.88.1-10+deb12u4, per curl's changelog.Debian.
    #[test]
    fn debian_fixed_range() {
        let a = affected(
            "Debian:12",
            serde_json::json!([{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u4"}]),
        );
        assert_eq!(
            affects(&a, "Debian:12", "7.88.1-10+deb12u1"),
            Some(Some("7.88.1-10+deb12u4".into()))
        );
        assert_eq!(affects(&a, "Debian:12", "7.88.1-10+deb12u4"), None);
        assert_eq!(affects(&a, "Debian:12", "7.88.1-10+deb12u15"), None);
    }

    #[test]
    fn introduced_fixed_pairs_and_last_affected() {
        let a = affected(
            "PyPI",
            serde_json::json!([{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"last_affected": "2.3"}]),
        );
        assert_eq!(affects(&a, "PyPI", "0.9"), None);
        assert_eq!(affects(&a, "PyPI", "1.1"), Some(Some("1.2".into())));
        assert_eq!(affects(&a, "PyPI", "1.5"), None);
        assert_eq!(affects(&a, "PyPI", "2.3"), Some(None));
        assert_eq!(affects(&a, "PyPI", "2.4"), None);
    }

    #[test]
    fn explicit_versions_and_semver() {
        let mut a = affected(
            "Go",
            serde_json::json!([{"introduced": "0"}, {"fixed": "v0.17.0"}]),
        );
        a.ranges[0].kind = "SEMVER".into();
        assert_eq!(affects(&a, "Go", "v0.9.1"), Some(Some("v0.17.0".into())));
        a.versions = vec!["9.9.9".into()];
        assert!(affects(&a, "Go", "9.9.9").is_some());
    }
}
