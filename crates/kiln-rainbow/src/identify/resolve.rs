//! From look-up answers to identified packages: one pure function per
//! phase, each over the [`Resolver`] (the observed files, what the store
//! said of them, and the builds it named) and the previous phase's result.
//!
//! 1. [`Resolver::support`]: per file, the best match for each build, and
//!    the builds that ship its path;
//! 2. [`Resolver::anchors`]: package names some file pins down;
//! 3. [`Resolver::tally`]: support and contradictions per build of each
//!    anchored name;
//! 4. [`Resolver::drafts`]: the consistent builds with the most support, or
//!    "not in DB" with the nearest build;
//! 5. [`Resolver::cohere`]: source coherence breaks ties, until stable;
//! 6. `Resolver::report` ([`super::report`]): packages with evidence, confidence and ranges;
//! 7. [`unknown_sources`](super::report::unknown_sources): binaries of a source whose siblings match no
//!    known version are not reported exact.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::lookup::{Build, BuildId, Lookups};
use super::report::unknown_sources;
use super::{Identification, Match, Obs};

/// Files smaller than this prove nothing when found at another path: empty
/// marker files (`py.typed`, `zip-safe`) are shipped by many packages.
const MIN_RENAMED_SIZE: u64 = 64;

/// A package name: (name, arch).
pub(super) type Key = (String, String);

/// The inputs every phase reads.
pub(super) struct Resolver<'a> {
    pub(super) obs: &'a [Obs],
    pub(super) l: &'a Lookups,
    pub(super) builds: &'a HashMap<BuildId, Build>,
}

/// Phase 1: what each observed file says, by index into the observations.
#[derive(Debug, Default)]
pub(super) struct Support {
    /// The best match of the file for each build it supports.
    pub(super) matches: Vec<BTreeMap<BuildId, Match>>,
    /// Builds that ship the file's path.
    pub(super) at_path: Vec<HashSet<BuildId>>,
    /// Builds that ship the file's path as a conffile (edited by
    /// administrators: never a contradiction).
    pub(super) conffile: Vec<HashSet<BuildId>>,
}

/// Phase 3: the builds of each anchored name, with their tallies.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) versions: BTreeMap<Key, BTreeSet<BuildId>>,
    /// Files supporting each build.
    pub(super) support: HashMap<BuildId, usize>,
    /// Files contradicting each build: it ships their path with other bytes.
    pub(super) contra: HashMap<BuildId, Vec<usize>>,
}

impl Tally {
    pub(super) fn support(&self, id: BuildId) -> usize {
        self.support.get(&id).copied().unwrap_or(0)
    }

    pub(super) fn contradicted(&self, id: BuildId) -> bool {
        self.contra.get(&id).is_some_and(|c| !c.is_empty())
    }
}

/// Phase 4: a name's answer before source coherence.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Draft {
    /// Consistent builds with the most support, newest first.
    pub(super) fit: Vec<BuildId>,
    /// Every build is contradicted: a version the DB does not have.
    pub(super) not_in_db: bool,
    /// For `not_in_db`: the build explaining the most files.
    pub(super) nearest: Option<BuildId>,
}

/// Resolve observations and look-ups into identified packages.
pub(super) fn resolve(
    obs: &[Obs],
    l: &Lookups,
    builds: &HashMap<BuildId, Build>,
) -> Identification {
    let r = Resolver { obs, l, builds };
    let support = r.support();
    let anchored = r.anchors(&support);
    let tally = r.tally(&support, &anchored);
    let mut drafts = r.drafts(&tally);
    let coherent = r.cohere(&mut drafts);
    let (mut packages, explained) = r.report(&support, &tally, &drafts, &coherent);
    unknown_sources(&mut packages);
    packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    let unexplained = obs
        .iter()
        .zip(&explained)
        .filter(|(_, e)| !**e)
        .map(|(o, _)| format!("/{}", o.path))
        .collect();
    Identification {
        packages,
        unexplained,
        files_seen: obs.len(),
        function_hashes: HashMap::new(),
    }
}

impl Resolver<'_> {
    fn key(&self, id: &BuildId) -> Key {
        let b = &self.builds[id];
        (b.name.clone(), b.arch.clone())
    }

    /// Newest first, in the build's ecosystem's version order.
    fn newest_first(&self, a: &BuildId, b: &BuildId) -> Ordering {
        let (a, b) = (&self.builds[a], &self.builds[b]);
        a.ecosystem.scheme().cmp(&b.version, &a.version)
    }

    /// Phase 1. A file found in place for some build is not also evidence
    /// of a renamed copy in another.
    pub(super) fn support(&self) -> Support {
        let n = self.obs.len();
        let mut s = Support {
            matches: vec![BTreeMap::new(); n],
            at_path: vec![HashSet::new(); n],
            conffile: vec![HashSet::new(); n],
        };
        for (i, pid, conf, _) in &self.l.by_path {
            s.at_path[*i].insert(*pid);
            if *conf {
                s.conffile[*i].insert(*pid);
            }
        }
        let upgrade = |m: &mut BTreeMap<BuildId, Match>, pid: BuildId, how: Match| {
            let slot = m.entry(pid).or_insert(how);
            *slot = (*slot).min(how);
        };
        for (i, pid, _) in &self.l.by_content {
            let how = if s.at_path[*i].contains(pid) {
                Match::FileDigest
            } else if self.obs[*i].size >= MIN_RENAMED_SIZE {
                Match::FileDigestRenamed
            } else {
                continue;
            };
            upgrade(&mut s.matches[*i], *pid, how);
        }
        for (i, pid, _) in &self.l.by_build_id {
            let how = if s.at_path[*i].contains(pid) {
                Match::ElfBuildId
            } else {
                Match::FileDigestRenamed
            };
            upgrade(&mut s.matches[*i], *pid, how);
        }
        for (i, pid, how) in &self.l.by_code {
            upgrade(&mut s.matches[*i], *pid, *how);
        }
        for m in s.matches.iter_mut() {
            if m.values().any(|m| *m != Match::FileDigestRenamed) {
                m.retain(|_, m| *m != Match::FileDigestRenamed);
            }
        }
        s
    }

    /// Phase 2. A name is anchored by a file whose supporting builds all
    /// have that name, or by a file no build's bytes explain at a path only
    /// that name ships (conffiles aside): the package is here, at a
    /// version the DB may not have.
    pub(super) fn anchors(&self, s: &Support) -> HashSet<Key> {
        let mut anchored = HashSet::new();
        for (i, m) in s.matches.iter().enumerate() {
            let keys: HashSet<Key> = if m.is_empty() {
                s.at_path[i]
                    .iter()
                    .filter(|pid| !s.conffile[i].contains(pid))
                    .map(|id| self.key(id))
                    .collect()
            } else {
                m.keys().map(|id| self.key(id)).collect()
            };
            if keys.len() == 1 {
                anchored.extend(keys);
            }
        }
        anchored
    }

    /// Phase 3.
    pub(super) fn tally(&self, s: &Support, anchored: &HashSet<Key>) -> Tally {
        let mut t = Tally::default();
        for id in self.builds.keys() {
            let k = self.key(id);
            if anchored.contains(&k) {
                t.versions.entry(k).or_default().insert(*id);
            }
        }
        for (i, m) in s.matches.iter().enumerate() {
            for pid in m.keys() {
                *t.support.entry(*pid).or_default() += 1;
            }
            for pid in &s.at_path[i] {
                if !m.contains_key(pid) && !s.conffile[i].contains(pid) {
                    t.contra.entry(*pid).or_default().push(i);
                }
            }
        }
        t
    }

    /// Per build, how close the code of the files that differ is (summed
    /// Jaccard similarity of their function sets).
    fn closeness(&self) -> HashMap<BuildId, f64> {
        let mut out: HashMap<BuildId, f64> = HashMap::new();
        for (pid, jaccard, _) in self.l.functions.values().flat_map(|f| f.builds.iter()) {
            *out.entry(*pid).or_default() += jaccard;
        }
        out
    }

    /// Phase 4: settle what the bytes settle alone.
    pub(super) fn drafts(&self, t: &Tally) -> BTreeMap<Key, Draft> {
        let closeness = self.closeness();
        let mut drafts = BTreeMap::new();
        for (k, ids) in &t.versions {
            let consistent: Vec<BuildId> = ids
                .iter()
                .copied()
                .filter(|id| !t.contradicted(*id) && t.support(*id) > 0)
                .collect();
            let draft = if consistent.is_empty() {
                Draft {
                    fit: Vec::new(),
                    not_in_db: true,
                    nearest: self.nearest(ids, t, &closeness),
                }
            } else {
                let best = consistent
                    .iter()
                    .map(|id| t.support(*id))
                    .max()
                    .unwrap_or(0);
                let mut fit: Vec<BuildId> = consistent
                    .into_iter()
                    .filter(|id| t.support(*id) == best)
                    .collect();
                fit.sort_by(|a, b| self.newest_first(a, b));
                Draft {
                    fit,
                    not_in_db: false,
                    nearest: None,
                }
            };
            drafts.insert(k.clone(), draft);
        }
        drafts
    }

    /// The build nearest a version the DB lacks: most support net of
    /// contradictions, then the closest code, then the newest.
    fn nearest(
        &self,
        ids: &BTreeSet<BuildId>,
        t: &Tally,
        closeness: &HashMap<BuildId, f64>,
    ) -> Option<BuildId> {
        let score =
            |id: &BuildId| t.support(*id) as i64 - t.contra.get(id).map_or(0, |c| c.len() as i64);
        let close = |id: &BuildId| closeness.get(id).copied().unwrap_or(0.0);
        ids.iter().copied().min_by(|a, b| {
            score(b)
                .cmp(&score(a))
                .then_with(|| close(b).total_cmp(&close(a)))
                .then_with(|| self.newest_first(a, b))
        })
    }

    /// Phase 5: a tie among builds is broken by the source version the
    /// source's other, settled binaries share; repeated until stable.
    /// Returns, per name it decided, the `source version` it used.
    pub(super) fn cohere(&self, drafts: &mut BTreeMap<Key, Draft>) -> HashMap<Key, String> {
        let mut coherent = HashMap::new();
        loop {
            let mut settled: HashMap<&str, BTreeSet<&str>> = HashMap::new();
            for d in drafts.values().filter(|d| d.fit.len() == 1) {
                let b = &self.builds[&d.fit[0]];
                settled
                    .entry(b.source.as_str())
                    .or_default()
                    .insert(b.source_version.as_str());
            }
            let mut changed = Vec::new();
            for (k, d) in drafts.iter() {
                if d.fit.len() < 2 {
                    continue;
                }
                let src = &self.builds[&d.fit[0]].source;
                let Some(sv) = settled.get(src.as_str()).filter(|s| s.len() == 1) else {
                    continue;
                };
                let sv = sv.iter().next().copied().unwrap_or_default();
                let narrowed: Vec<BuildId> = d
                    .fit
                    .iter()
                    .copied()
                    .filter(|id| self.builds[id].source_version == sv)
                    .collect();
                if narrowed.len() == 1 {
                    changed.push((k.clone(), narrowed, format!("source {src} {sv}")));
                }
            }
            if changed.is_empty() {
                return coherent;
            }
            for (k, fit, why) in changed {
                if let Some(d) = drafts.get_mut(&k) {
                    d.fit = fit;
                }
                coherent.insert(k, why);
            }
        }
    }
}
