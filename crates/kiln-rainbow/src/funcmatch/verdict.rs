//! What a file's functions prove about a project's version. Pure: the
//! look-ups are done; this decides.
//!
//! A build the DB lacks shares most functions with the builds it has, so a
//! minority of matching functions says little about the version. The
//! version is exact only when the code pins it:
//!
//! - *discrimination*: the DB knows several versions of the project, and
//!   exactly one of them has every one of the file's functions of the
//!   project — the functions that tell the versions apart point to it;
//! - *identity*: the DB knows one version, and the file is that build's
//!   code (nearly all its distinctive functions are in the file, and nearly
//!   all the file's functions are that version's).
//!
//! Several versions with every function: a version set. No version with
//! every function, or one version the code does not pin: "version not in
//! DB" with the nearest version.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{FunctionMatch, SignatureVersion, MIN_CONTAINMENT, MIN_MATCHED};

/// Containment and share of the file that make a file a known build's
/// code when nothing else can tell versions apart.
const IDENTITY: f64 = 0.95;

/// What the code proves about the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// One known version, pinned by the code.
    Exact,
    /// Several known versions fit equally.
    Set,
    /// No known version is pinned: a build the DB lacks, or code that
    /// cannot tell. `versions` holds the nearest.
    NotInDb,
}

/// One looked-up hash of the file: the signature versions that ship it,
/// and whether several projects do (then it names no project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Signature version ids, sorted.
    pub versions: Vec<u32>,
    /// Shipped by more than one project.
    pub common: bool,
}

/// The file's functions counted per version.
pub(super) struct FileTally<'a> {
    known: &'a HashMap<u32, SignatureVersion>,
    /// Distinctive hashes of the file each version ships.
    matched: HashMap<u32, usize>,
    /// Any hash of the file (distinctive or shared) each version ships.
    explained: HashMap<u32, usize>,
    /// Distinctive hashes of the file per project (any version).
    of_project: HashMap<&'a str, usize>,
    /// The file's distinct function hashes.
    functions: usize,
}

/// One project's numbers for the file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ProjectTally<'a> {
    /// The file's distinctive hashes of the project.
    pub(super) of_project: usize,
    /// The file's distinct function hashes.
    pub(super) functions: usize,
    /// Per version with any match: (id, version, matched, distinctive,
    /// explained).
    pub(super) versions: Vec<(u32, &'a str, usize, usize, usize)>,
}

impl<'a> FileTally<'a> {
    pub(super) fn new(
        postings: &[Posting],
        known: &'a HashMap<u32, SignatureVersion>,
        functions: usize,
    ) -> Self {
        let mut t = FileTally {
            known,
            matched: HashMap::new(),
            explained: HashMap::new(),
            of_project: HashMap::new(),
            functions,
        };
        for p in postings {
            for id in &p.versions {
                *t.explained.entry(*id).or_default() += 1;
                if !p.common {
                    *t.matched.entry(*id).or_default() += 1;
                }
            }
            // A distinctive hash: every version in it is of one project.
            if let (false, Some(v)) = (p.common, p.versions.first().and_then(|id| known.get(id))) {
                *t.of_project.entry(v.project.as_str()).or_default() += 1;
            }
        }
        t
    }

    /// Each project with distinctive functions in the file.
    pub(super) fn projects(&self) -> BTreeMap<&'a str, ProjectTally<'a>> {
        let mut out: BTreeMap<&str, ProjectTally> = BTreeMap::new();
        for (id, m) in &self.matched {
            let Some(v) = self.known.get(id) else {
                continue;
            };
            let p = v.project.as_str();
            let entry = out.entry(p).or_insert_with(|| ProjectTally {
                of_project: self.of_project.get(p).copied().unwrap_or(0),
                functions: self.functions,
                versions: Vec::new(),
            });
            let explained = self.explained.get(id).copied().unwrap_or(0);
            entry
                .versions
                .push((*id, v.version.as_str(), *m, v.distinctive, explained));
        }
        for t in out.values_mut() {
            t.versions.sort_by_key(|v| v.0);
        }
        out
    }
}

fn containment(matched: usize, distinctive: usize) -> f64 {
    matched as f64 / distinctive.max(1) as f64
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the file's functions prove about one project (`known` lists every
/// version of it the DB has); `None` when they are too few to name it.
/// The returned match has no range yet.
pub(super) fn decide(t: &ProjectTally<'_>, known: &[(u32, String)]) -> Option<FunctionMatch> {
    let score = |v: &(u32, &str, usize, usize, usize)| containment(v.2, v.3);
    let best = t.versions.iter().map(score).fold(0.0, f64::max);
    let mut top: Vec<&(u32, &str, usize, usize, usize)> = t
        .versions
        .iter()
        .filter(|v| (score(v) - best).abs() < 1e-9)
        .collect();
    top.sort_by(|a, b| a.1.cmp(b.1));
    let lead = *top.first()?;
    if lead.2 < MIN_MATCHED || best < MIN_CONTAINMENT {
        return None;
    }
    // Versions with every one of the file's functions of the project.
    let mut whole: Vec<&(u32, &str, usize, usize, usize)> =
        t.versions.iter().filter(|v| v.2 == t.of_project).collect();
    whole.sort_by(|a, b| a.1.cmp(b.1));
    let explained = |v: &(u32, &str, usize, usize, usize)| v.4 as f64 / t.functions.max(1) as f64;
    let (pin, chosen, reason) = match whole.as_slice() {
        [] => (
            Pin::NotInDb,
            top.clone(),
            "the file has functions of the project that no known version has: a build the DB does not have".to_string(),
        ),
        [one] if known.len() > 1 => (
            Pin::Exact,
            vec![*one],
            format!(
                "of {} known versions only {} has every one of them",
                known.len(),
                one.1
            ),
        ),
        [one] if score(one) >= IDENTITY && explained(one) >= IDENTITY => (
            Pin::Exact,
            vec![*one],
            format!("the file is that build's code ({:.3} of the file's functions)", explained(one)),
        ),
        [one] => (
            Pin::NotInDb,
            vec![*one],
            format!(
                "one known version; {:.3} of its distinctive functions and {:.3} of the file's functions: the code does not pin a version",
                score(one),
                explained(one)
            ),
        ),
        many => (
            Pin::Set,
            many.to_vec(),
            format!("{} known versions have every one of them", many.len()),
        ),
    };
    let lead = chosen[0];
    let versions: Vec<String> = chosen.iter().map(|v| v.1.to_string()).collect();
    let runner_up = t
        .versions
        .iter()
        .filter(|v| !versions.iter().any(|c| c == v.1))
        .map(|v| (v.1.to_string(), round3(score(v))))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    Some(FunctionMatch {
        project: String::new(),
        versions,
        pin,
        reason,
        matched: lead.2,
        distinctive: lead.3,
        containment: round3(score(lead)),
        explained: round3(explained(lead)),
        runner_up,
        range: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project tally: `of_project` of the file's distinctive functions
    /// are the project's; versions as (id, version, matched, distinctive,
    /// explained); the file has 100 functions.
    fn tally<'a>(
        of_project: usize,
        versions: &[(u32, &'a str, usize, usize, usize)],
    ) -> ProjectTally<'a> {
        ProjectTally {
            of_project,
            functions: 100,
            versions: versions.to_vec(),
        }
    }

    fn known(n: u32) -> Vec<(u32, String)> {
        (1..=n).map(|i| (i, format!("1.{i}"))).collect()
    }

    #[test]
    fn too_few_functions_name_nothing() {
        assert!(decide(&tally(9, &[(1, "1.1", 9, 50, 9)]), &known(1)).is_none());
        assert!(decide(&tally(12, &[(1, "1.1", 12, 1000, 12)]), &known(1)).is_none());
    }

    #[test]
    fn one_known_version_and_a_minority_of_its_functions_is_not_exact() {
        // A vendored copy of another release: 30 of 80 functions unchanged.
        let m = decide(&tally(30, &[(1, "1.1", 30, 80, 35)]), &known(1)).unwrap();
        assert_eq!(m.pin, Pin::NotInDb);
        assert_eq!(m.versions, vec!["1.1"], "the nearest");
        assert!(m.reason.contains("does not pin"), "{}", m.reason);
    }

    #[test]
    fn one_known_version_pins_only_the_same_build() {
        let m = decide(&tally(78, &[(1, "1.1", 78, 80, 97)]), &known(1)).unwrap();
        assert_eq!(m.pin, Pin::Exact);
        assert_eq!(m.explained, 0.97);
        // Nearly all its functions, but most of the file is other code (a
        // static link into a program): not pinned.
        let m = decide(&tally(78, &[(1, "1.1", 78, 80, 40)]), &known(1)).unwrap();
        assert_eq!(m.pin, Pin::NotInDb);
    }

    #[test]
    fn discriminating_functions_pin_one_of_several_versions() {
        // Version 2 has all 40 of the file's functions; 1 and 3 lack some.
        let m = decide(
            &tally(
                40,
                &[
                    (1, "1.1", 25, 100, 30),
                    (2, "1.2", 40, 100, 45),
                    (3, "1.3", 33, 100, 38),
                ],
            ),
            &known(3),
        )
        .unwrap();
        assert_eq!(m.pin, Pin::Exact);
        assert_eq!(m.versions, vec!["1.2"]);
        assert_eq!(m.runner_up, Some(("1.3".into(), 0.33)));
    }

    #[test]
    fn several_versions_with_every_function_are_a_set() {
        let m = decide(
            &tally(
                20,
                &[
                    (1, "1.1", 20, 100, 30),
                    (2, "1.2", 20, 80, 30),
                    (3, "1.3", 12, 90, 20),
                ],
            ),
            &known(3),
        )
        .unwrap();
        assert_eq!(m.pin, Pin::Set);
        assert_eq!(m.versions, vec!["1.1", "1.2"]);
    }

    #[test]
    fn functions_no_version_has_mean_a_build_the_db_lacks() {
        let m = decide(
            &tally(50, &[(1, "1.1", 30, 100, 35), (2, "1.2", 40, 100, 45)]),
            &known(2),
        )
        .unwrap();
        assert_eq!(m.pin, Pin::NotInDb);
        assert_eq!(m.versions, vec!["1.2"], "nearest by containment");
    }

    #[test]
    fn the_file_tally_counts_distinctive_and_shared_hashes() {
        let known: HashMap<u32, SignatureVersion> =
            [(1, "zlib", "1.2"), (2, "zlib", "1.3"), (3, "png", "1.6")]
                .into_iter()
                .map(|(id, p, v)| {
                    (
                        id,
                        SignatureVersion {
                            project: p.into(),
                            version: v.into(),
                            distinctive: 10,
                        },
                    )
                })
                .collect();
        let posting = |versions: &[u32], common| Posting {
            versions: versions.to_vec(),
            common,
        };
        let postings = [
            posting(&[1, 2], false),
            posting(&[2], false),
            posting(&[1, 3], true),
            posting(&[3], false),
        ];
        let t = FileTally::new(&postings, &known, 7);
        let projects = t.projects();
        let zlib = &projects["zlib"];
        assert_eq!(zlib.of_project, 2);
        assert_eq!(zlib.functions, 7);
        assert_eq!(
            zlib.versions,
            vec![(1, "1.2", 1, 10, 2), (2, "1.3", 2, 10, 2)]
        );
        assert_eq!(projects["png"].versions, vec![(3, "1.6", 1, 10, 2)]);
    }
}
