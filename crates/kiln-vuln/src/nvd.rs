//! NVD CVE JSON 2.0 feeds, for vendored upstream components: CPE match
//! criteria with version ranges become OSV-shaped advisories in the
//! `NVD-CPE` ecosystem, keyed `vendor:product`. Only components kiln found
//! as upstream projects match them — never a distro package, whose
//! backported fixes an upstream range cannot see.

use serde::Deserialize;

use crate::osv::{Advisory, Affected, Event, PackageRef, Range, Severity};

/// The advisory ecosystem NVD records are stored under.
pub const ECOSYSTEM: &str = "NVD-CPE";

/// The CPE products of a canonical project name (from
/// [`kiln_catalog::projects`], where the signature DB's names come from).
pub fn products(project: &str) -> impl Iterator<Item = &'static str> + '_ {
    kiln_catalog::projects::cpes(project).iter().copied()
}

#[derive(Deserialize)]
struct Feed {
    #[serde(default)]
    vulnerabilities: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    cve: Cve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cve {
    id: String,
    #[serde(default)]
    last_modified: String,
    #[serde(default)]
    descriptions: Vec<Text>,
    #[serde(default)]
    metrics: Metrics,
    #[serde(default)]
    configurations: Vec<Config>,
}

#[derive(Deserialize)]
struct Text {
    lang: String,
    value: String,
}

#[derive(Deserialize, Default)]
struct Metrics {
    #[serde(default, rename = "cvssMetricV31")]
    v31: Vec<Metric>,
    #[serde(default, rename = "cvssMetricV30")]
    v30: Vec<Metric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    cvss_data: CvssData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CvssData {
    vector_string: String,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    #[serde(default)]
    negate: bool,
    #[serde(default)]
    cpe_match: Vec<CpeMatch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CpeMatch {
    vulnerable: bool,
    criteria: String,
    version_start_including: Option<String>,
    version_start_excluding: Option<String>,
    version_end_including: Option<String>,
    version_end_excluding: Option<String>,
}

/// Convert an NVD CVE API 2.0 / feed document to advisories. Application
/// CPEs (`cpe:2.3:a:…`) only; negated nodes are skipped.
pub fn parse(json: &[u8]) -> Result<Vec<Advisory>, serde_json::Error> {
    let feed: Feed = serde_json::from_slice(json)?;
    let mut out = Vec::new();
    for item in feed.vulnerabilities {
        let cve = item.cve;
        let mut affected: Vec<Affected> = Vec::new();
        for node in cve.configurations.iter().flat_map(|c| &c.nodes) {
            if node.negate {
                continue;
            }
            for m in node.cpe_match.iter().filter(|m| m.vulnerable) {
                let parts: Vec<&str> = m.criteria.split(':').collect();
                if parts.len() < 6 || parts[2] != "a" {
                    continue;
                }
                let product = format!("{}:{}", parts[3], parts[4]);
                let version = parts[5];
                let mut a = Affected {
                    package: Some(PackageRef {
                        ecosystem: ECOSYSTEM.into(),
                        name: product,
                        purl: None,
                    }),
                    ..Default::default()
                };
                if version != "*" && version != "-" {
                    a.versions.push(version.to_string());
                } else {
                    let start = m
                        .version_start_including
                        .clone()
                        .or_else(|| m.version_start_excluding.clone());
                    let mut events = vec![Event {
                        introduced: Some(start.unwrap_or_else(|| "0".into())),
                        ..Default::default()
                    }];
                    match (&m.version_end_excluding, &m.version_end_including) {
                        (Some(f), _) => events.push(Event {
                            fixed: Some(f.clone()),
                            ..Default::default()
                        }),
                        (None, Some(l)) => events.push(Event {
                            last_affected: Some(l.clone()),
                            ..Default::default()
                        }),
                        (None, None) => {}
                    }
                    a.ranges.push(Range {
                        kind: "ECOSYSTEM".into(),
                        events,
                    });
                    if let Some(x) = &m.version_start_excluding {
                        // Exclusive start: the start version itself is not affected.
                        a.ecosystem_specific = Some(serde_json::json!({ "start_excluding": x }));
                    }
                }
                affected.push(a);
            }
        }
        if affected.is_empty() {
            continue;
        }
        let severity = cve
            .metrics
            .v31
            .iter()
            .chain(&cve.metrics.v30)
            .map(|m| Severity {
                kind: "CVSS_V3".into(),
                score: m.cvss_data.vector_string.clone(),
            })
            .take(1)
            .collect();
        out.push(Advisory {
            id: cve.id,
            summary: cve
                .descriptions
                .iter()
                .find(|d| d.lang == "en")
                .map(|d| d.value.clone())
                .unwrap_or_default(),
            severity,
            affected,
            modified: cve.last_modified,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// CVE-2023-0286 (X.400 address type confusion in OpenSSL), in the NVD
    /// 2.0 shape: fixed in 3.0.8, 1.1.1t and 1.0.2zg.
    pub(crate) const CVE_2023_0286: &str = r#"{
      "resultsPerPage": 1, "startIndex": 0, "totalResults": 1,
      "format": "NVD_CVE", "version": "2.0", "timestamp": "2026-11-26T00:00:00.000",
      "vulnerabilities": [{"cve": {
        "id": "CVE-2023-0286", "sourceIdentifier": "openssl-security@openssl.org",
        "published": "2023-02-08T20:15:23.973", "lastModified": "2024-02-04T09:15:09.113",
        "vulnStatus": "Modified",
        "descriptions": [{"lang": "en", "value": "There is a type confusion vulnerability relating to X.400 address processing inside an X.509 GeneralName."}],
        "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
          "cvssData": {"version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H", "baseScore": 7.4, "baseSeverity": "HIGH"}}]},
        "configurations": [{"nodes": [{"operator": "OR", "negate": false, "cpeMatch": [
          {"vulnerable": true, "criteria": "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", "versionStartIncluding": "1.0.2", "versionEndExcluding": "1.0.2zg"},
          {"vulnerable": true, "criteria": "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", "versionStartIncluding": "1.1.1", "versionEndExcluding": "1.1.1t"},
          {"vulnerable": true, "criteria": "cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", "versionStartIncluding": "3.0.0", "versionEndExcluding": "3.0.8"}
        ]}]}]
      }}]
    }"#;

    #[test]
    fn cpe_ranges_with_generic_versions() {
        let a = parse(CVE_2023_0286.as_bytes()).unwrap();
        assert_eq!(a.len(), 1);
        let adv = &a[0];
        assert_eq!(adv.affected.len(), 3);
        let hit = |v: &str| {
            adv.affected
                .iter()
                .find_map(|x| crate::osv::affects(x, "generic", v))
        };
        assert_eq!(hit("1.1.1s"), Some(Some("1.1.1t".into())));
        assert_eq!(hit("1.1.1w"), None);
        assert_eq!(hit("3.0.7"), Some(Some("3.0.8".into())));
        assert_eq!(hit("3.0.8"), None);
        assert_eq!(hit("1.0.2zf"), Some(Some("1.0.2zg".into())));
        assert_eq!(
            products("openssl").collect::<Vec<_>>(),
            vec!["openssl:openssl"]
        );
    }
}
