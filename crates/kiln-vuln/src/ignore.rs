//! Ignore rules (`.kilnignore`, YAML), with reasons and expiry dates, as
//! Trivy's `.trivyignore.yaml` and Grype's ignore rules work:
//!
//! ```yaml
//! vulnerabilities:
//!   - id: CVE-2023-38545
//!     package: curl            # optional: only this package
//!     reason: SOCKS5 proxies are not used here
//!     expires: 2027-01-31      # optional: the rule stops applying after this day
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::matcher::Finding;

/// One rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Rule {
    /// Vulnerability ID or alias (CVE, DSA, GHSA, …).
    pub id: String,
    /// Only findings in this package (name or purl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Why it is ignored; shown in reports.
    #[serde(default)]
    pub reason: String,
    /// Last day (YYYY-MM-DD) the rule applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    vulnerabilities: Vec<Rule>,
}

/// A file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct IgnoreError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// Rules loaded from a file.
#[derive(Debug, Clone, Default)]
pub struct Ignores {
    rules: Vec<Rule>,
}

/// A finding that a rule suppressed.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// The rule's reason.
    pub reason: String,
}

impl Ignores {
    /// Load and validate a `.kilnignore` file.
    pub fn load(path: &Path) -> Result<Ignores, IgnoreError> {
        let fail = |reason: String| IgnoreError {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file: File = serde_yaml_ng::from_str(&text)
            .map_err(|e| fail(format!("invalid ignore file: {e}")))?;
        for r in &file.vulnerabilities {
            if let Some(d) = &r.expires {
                if !is_date(d) {
                    return Err(fail(format!(
                        "rule {}: expires {d:?} is not a YYYY-MM-DD date",
                        r.id
                    )));
                }
            }
        }
        Ok(Ignores {
            rules: file.vulnerabilities,
        })
    }

    /// Rules that have expired by `today` (YYYY-MM-DD), to warn about.
    pub fn expired(&self, today: &str) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.expires.as_deref().is_some_and(|d| d < today))
            .collect()
    }

    /// Split `findings` into kept and ignored by the rules in force `today`.
    pub fn apply(&self, findings: Vec<Finding>, today: &str) -> (Vec<Finding>, Vec<Ignored>) {
        let mut kept = Vec::new();
        let mut ignored = Vec::new();
        for f in findings {
            let rule = self.rules.iter().find(|r| {
                r.expires.as_deref().is_none_or(|d| d >= today)
                    && (r.id == f.id || f.aliases.contains(&r.id) || f.advisories.contains(&r.id))
                    && r.package
                        .as_ref()
                        .is_none_or(|p| *p == f.package || *p == f.purl)
            });
            match rule {
                Some(r) => ignored.push(Ignored {
                    finding: f,
                    reason: r.reason.clone(),
                }),
                None => kept.push(f),
            }
        }
        (kept, ignored)
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Today's date, UTC, as YYYY-MM-DD.
pub fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
