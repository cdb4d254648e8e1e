//! The Debian security tracker's JSON export: per source package, per CVE,
//! per release: status, fixed version, urgency. It becomes OSV-shaped
//! advisories so one matcher serves both.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::osv::{Advisory, Affected, Event, PackageRef, Range};

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    releases: BTreeMap<String, Release>,
}

#[derive(Deserialize)]
struct Release {
    #[serde(default)]
    status: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
}

/// Debian release code names and the `VERSION_ID` os-release gives them.
pub const RELEASES: &[(&str, &str)] = &[
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
];

/// Convert the tracker JSON (`{"src": {"CVE-…": {…}}}`) to advisories, one
/// per CVE with one affected entry per (source package, release).
pub fn parse(json: &[u8]) -> Result<Vec<Advisory>, serde_json::Error> {
    let data: BTreeMap<String, BTreeMap<String, Entry>> = serde_json::from_slice(json)?;
    let mut by_id: BTreeMap<String, Advisory> = BTreeMap::new();
    for (src, cves) in data {
        for (id, entry) in cves {
            if !id.starts_with("CVE-") && !id.starts_with("TEMP-") {
                continue;
            }
            for (release, r) in &entry.releases {
                let Some((_, version_id)) = RELEASES.iter().find(|(n, _)| n == release) else {
                    continue;
                };
                let mut events = vec![Event {
                    introduced: Some("0".into()),
                    ..Default::default()
                }];
                match (r.status.as_str(), r.fixed_version.as_deref()) {
                    // "0" means the release never had the vulnerable code.
                    (_, Some("0")) | ("not-affected", _) => continue,
                    ("resolved", Some(fixed)) => events.push(Event {
                        fixed: Some(fixed.to_string()),
                        ..Default::default()
                    }),
                    ("open" | "undetermined", _) => {}
                    _ => continue,
                }
                let adv = by_id.entry(id.clone()).or_insert_with(|| Advisory {
                    id: id.clone(),
                    details: entry.description.clone().unwrap_or_default(),
                    ..Default::default()
                });
                adv.affected.push(Affected {
                    package: Some(PackageRef {
                        ecosystem: format!("Debian:{version_id}"),
                        name: src.clone(),
                        purl: None,
                    }),
                    ranges: vec![Range {
                        kind: "ECOSYSTEM".into(),
                        events,
                    }],
                    versions: Vec::new(),
                    ecosystem_specific: r
                        .urgency
                        .as_ref()
                        .map(|u| serde_json::json!({ "urgency": u })),
                });
            }
        }
    }
    Ok(by_id.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tracker's shape, for curl's CVE-2023-38545 (fixed in bookworm by
    /// 7.88.1-10+deb12u4, per curl's changelog.Debian) and, for the "open"
    /// status, a TEMP- entry (the tracker's form for issues without a CVE).
    #[test]
    fn tracker_to_advisories() {
        let json = br#"{
          "curl": {
            "CVE-2023-38545": {
              "description": "SOCKS5 heap buffer overflow",
              "scope": "remote",
              "releases": {
                "bookworm": {"status": "resolved", "repositories": {"bookworm": "7.88.1-10+deb12u5"},
                             "fixed_version": "7.88.1-10+deb12u4", "urgency": "not yet assigned"},
                "bullseye": {"status": "resolved", "repositories": {"bullseye": "7.74.0-1.3+deb11u7"},
                             "fixed_version": "0", "urgency": "not yet assigned"}
              }
            },
            "TEMP-0000000-2B4F1A": {
              "releases": {"bookworm": {"status": "open", "repositories": {}, "urgency": "unimportant"}}
            }
          }
        }"#;
        let a = parse(json).unwrap();
        assert_eq!(a.len(), 2);
        let fixed = a.iter().find(|x| x.id == "CVE-2023-38545").unwrap();
        assert_eq!(fixed.affected.len(), 1, "bullseye was never affected");
        let aff = &fixed.affected[0];
        assert_eq!(aff.package.as_ref().unwrap().ecosystem, "Debian:12");
        assert_eq!(
            crate::osv::affects(aff, "Debian:12", "7.88.1-10+deb12u3"),
            Some(Some("7.88.1-10+deb12u4".into()))
        );
        let open = a.iter().find(|x| x.id.starts_with("TEMP-")).unwrap();
        assert_eq!(
            crate::osv::affects(&open.affected[0], "Debian:12", "7.88.1-10+deb12u15"),
            Some(None)
        );
    }
}
