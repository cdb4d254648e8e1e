//! `exec-alert`: an alert when a process enters a container from outside
//! its process tree (`runc exec`, `docker exec`, `kubectl exec`), and when
//! an exec breaks a rule of a YAML rule file:
//!
//! ```yaml
//! rules:
//!   - name: no-shells            # alerts on these binaries
//!     containers: ["web*"]       # container id globs (default: all)
//!     deny: ["/bin/*sh", "/usr/bin/*sh"]
//!   - name: nginx-only           # alerts on anything else
//!     containers: ["web"]
//!     allow: ["/usr/sbin/nginx"]
//! ```

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TraceError};
use crate::event::{Detail, Event};

/// Why an alert was raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Alert {
    /// A process entered the container from outside its process tree.
    Entered,
    /// A binary a rule denies was run.
    Denied {
        /// The rule.
        rule: String,
    },
    /// A binary outside a rule's allowed list was run.
    NotAllowed {
        /// The rule.
        rule: String,
    },
}

impl Alert {
    /// The rule's name, or `entered`.
    pub fn rule(&self) -> &str {
        match self {
            Alert::Entered => "entered",
            Alert::Denied { rule } | Alert::NotAllowed { rule } => rule,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    #[serde(default)]
    containers: Vec<String>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Option<Vec<String>>,
}

#[derive(Debug)]
struct Rule {
    name: String,
    containers: Option<GlobSet>,
    allow: Option<GlobSet>,
    deny: Option<GlobSet>,
}

/// The rules of a rule file (none: only `entered` alerts).
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>);

fn globs(path: &Path, rule: &str, pats: &[String]) -> Result<GlobSet> {
    let bad = |why: String| TraceError::Rules {
        path: path.display().to_string(),
        why: format!("rule '{rule}': {why}"),
    };
    let mut b = GlobSetBuilder::new();
    for p in pats {
        b.add(Glob::new(p).map_err(|e| bad(format!("{p}: {e}")))?);
    }
    b.build().map_err(|e| bad(e.to_string()))
}

impl Rules {
    /// Read a rule file.
    pub fn load(path: &Path) -> Result<Rules> {
        let bad = |why: String| TraceError::Rules {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let file: File = serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut rules = Vec::new();
        for r in file.rules {
            if r.allow.is_none() && r.deny.is_none() {
                return Err(bad(format!("rule '{}' has neither allow nor deny", r.name)));
            }
            let set =
                |v: &Option<Vec<String>>| v.as_ref().map(|p| globs(path, &r.name, p)).transpose();
            rules.push(Rule {
                containers: (!r.containers.is_empty())
                    .then(|| globs(path, &r.name, &r.containers))
                    .transpose()?,
                allow: set(&r.allow)?,
                deny: set(&r.deny)?,
                name: r.name,
            });
        }
        Ok(Rules(rules))
    }

    /// The alerts a successful exec raises.
    pub fn check(&self, e: &Event) -> Vec<Alert> {
        let Detail::Exec {
            args,
            ret: 0,
            entered,
            ..
        } = &e.detail
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if *entered {
            out.push(Alert::Entered);
        }
        let Some(bin) = args.first() else { return out };
        for r in &self.0 {
            if r.containers
                .as_ref()
                .is_some_and(|c| !c.is_match(&e.container))
            {
                continue;
            }
            if r.deny.as_ref().is_some_and(|d| d.is_match(bin)) {
                out.push(Alert::Denied {
                    rule: r.name.clone(),
                });
            } else if r.allow.as_ref().is_some_and(|a| !a.is_match(bin)) {
                out.push(Alert::NotAllowed {
                    rule: r.name.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gadget::Gadget;

    fn exec(container: &str, bin: &str, entered: bool) -> Event {
        Event {
            gadget: Gadget::Exec,
            container: container.into(),
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            comm: "x".into(),
            cgroup: 0,
            time_ns: 0,
            detail: Detail::Exec {
                args: vec![bin.into()],
                ret: 0,
                error: None,
                entered,
            },
            alert: None,
        }
    }

    #[test]
    fn rules_deny_and_allow() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rules.yaml");
        std::fs::write(
            &p,
            "rules:\n  - name: no-shells\n    deny: [\"/bin/*sh\"]\n  - name: nginx-only\n    containers: [\"web*\"]\n    allow: [\"/usr/sbin/nginx\"]\n",
        )
        .unwrap();
        let r = Rules::load(&p).unwrap();
        assert_eq!(r.check(&exec("web1", "/usr/sbin/nginx", false)), vec![]);
        assert_eq!(
            r.check(&exec("web1", "/bin/sh", true)),
            vec![
                Alert::Entered,
                Alert::Denied {
                    rule: "no-shells".into()
                },
                Alert::NotAllowed {
                    rule: "nginx-only".into()
                }
            ]
        );
        assert_eq!(r.check(&exec("db", "/usr/bin/psql", false)), vec![]);
        std::fs::write(&p, "rules:\n  - name: empty\n").unwrap();
        assert!(Rules::load(&p)
            .unwrap_err()
            .to_string()
            .contains("neither allow nor deny"));
        std::fs::write(&p, "rules: [1").unwrap();
        assert!(Rules::load(&p)
            .unwrap_err()
            .to_string()
            .contains("rules.yaml"));
    }
}
