//! Phases 6 and 7 of resolution: each drafted name becomes an
//! [`Identified`] package with its evidence files, contradictions,
//! confidence, notes and `vers:` range; then binaries of sources whose
//! siblings match no known version are taken back from "exact".

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kiln_catalog::Resolution;

use super::code::code_range;
use super::lookup::BuildId;
use super::resolve::{Draft, Key, Resolver, Support, Tally};
use super::{Identified, Match};

/// The files behind one package's answer.
#[derive(Debug, Default)]
struct Files {
    occurrences: Vec<(String, Option<usize>, Match)>,
    contradictions: Vec<(String, Option<usize>)>,
    /// Indexes of the contradicting files.
    contradicting: BTreeSet<usize>,
    /// ELF files matched by code only, and by bytes or build-id.
    elf_by_code: usize,
    elf_by_identity: usize,
}

impl Resolver<'_> {
    /// Phase 6: one package per draft; which files each explains.
    pub(super) fn report(
        &self,
        s: &Support,
        t: &Tally,
        drafts: &BTreeMap<Key, Draft>,
        coherent: &HashMap<Key, String>,
    ) -> (Vec<Identified>, Vec<bool>) {
        let mut explained = vec![false; self.obs.len()];
        let mut packages = Vec::new();
        for (k, d) in drafts {
            let chosen: Vec<BuildId> = if d.not_in_db {
                d.nearest.into_iter().collect()
            } else {
                d.fit.clone()
            };
            if chosen.is_empty() {
                continue;
            }
            let files = self.files(s, t, &t.versions[k], d, &chosen, &mut explained);
            packages.push(self.package(k, d, &chosen, t, files, coherent.get(k)));
        }
        (packages, explained)
    }

    /// Evidence files for the name (any of its builds), and for a version
    /// the DB lacks, the files no build of it explains.
    fn files(
        &self,
        s: &Support,
        t: &Tally,
        all_ids: &BTreeSet<BuildId>,
        d: &Draft,
        chosen: &[BuildId],
        explained: &mut [bool],
    ) -> Files {
        let mut f = Files::default();
        for (i, m) in s.matches.iter().enumerate() {
            let Some(best) = all_ids.iter().filter_map(|id| m.get(id)).min() else {
                continue;
            };
            if !(d.not_in_db || chosen.iter().any(|id| m.contains_key(id))) {
                continue;
            }
            let o = &self.obs[i];
            f.occurrences.push((format!("/{}", o.path), o.layer, *best));
            explained[i] = true;
            if o.elf && best.by_code() {
                f.elf_by_code += 1;
            } else if o.elf {
                f.elf_by_identity += 1;
            }
        }
        if !d.not_in_db {
            return f;
        }
        for id in all_ids {
            for i in t.contra.get(id).into_iter().flatten() {
                if s.matches[*i].keys().all(|p| !all_ids.contains(p)) && f.contradicting.insert(*i)
                {
                    let o = &self.obs[*i];
                    f.contradictions.push((format!("/{}", o.path), o.layer));
                    explained[*i] = true;
                }
            }
        }
        f
    }

    /// The identified package for one name.
    fn package(
        &self,
        k: &Key,
        d: &Draft,
        chosen: &[BuildId],
        t: &Tally,
        files: Files,
        coherent: Option<&String>,
    ) -> Identified {
        let first = &self.builds[&chosen[0]];
        let all_ids = &t.versions[k];
        let resolution = if d.not_in_db {
            Resolution::VersionNotInDb
        } else if chosen.len() > 1 {
            Resolution::VersionSet
        } else if coherent.is_some() {
            Resolution::ExactBySourceCoherence
        } else {
            Resolution::Exact
        };
        let mut notes = Vec::new();
        if let Some(c) = coherent {
            notes.push(format!(
                "bytes fit several versions; source coherence ({c}, shared by its other binary packages) chose this one"
            ));
        }
        let singled_out = all_ids.len() == 1 || discriminating(t, all_ids, d, chosen);
        let mut confidence = confidence(resolution, singled_out);
        // Code proves the code, not the build: a later revision rebuilt
        // from unchanged code (and stripped of its build-id) looks the same.
        if files.elf_by_code > 0 && files.elf_by_identity == 0 && !d.not_in_db {
            notes.push(
                "its ELF files match by code only (no file hash or build-id): a rebuild of the same code at a revision the DB lacks would look the same"
                    .into(),
            );
            confidence = f64::min(confidence, 0.7);
        }
        if d.not_in_db {
            notes.push(format!(
                "{} file(s) match no known version; nearest known version {}",
                files.contradictions.len(),
                first.version
            ));
        }
        let one = chosen.len() == 1 && !d.not_in_db;
        let version_range = if d.not_in_db {
            code_range(all_ids, &files.contradicting, self.l, self.builds)
        } else if chosen.len() > 1 {
            Some(
                first
                    .ecosystem
                    .vers_set(chosen.iter().map(|id| self.builds[id].version.as_str())),
            )
        } else {
            None
        };
        Identified {
            ecosystem: first.ecosystem,
            name: k.0.clone(),
            arch: k.1.clone(),
            source: first.source.clone(),
            version: one.then(|| first.version.clone()),
            source_version: one.then(|| first.source_version.clone()),
            resolution,
            candidate_versions: if d.not_in_db {
                Vec::new()
            } else {
                chosen
                    .iter()
                    .map(|id| self.builds[id].version.clone())
                    .collect()
            },
            nearest_version: d.not_in_db.then(|| first.version.clone()),
            version_range,
            occurrences: files.occurrences,
            contradictions: files.contradictions,
            files_total: first.regular_files,
            confidence,
            notes,
        }
    }
}

/// Did the bytes single out the chosen build among several: every other
/// build has less support or a contradiction?
fn discriminating(t: &Tally, all_ids: &BTreeSet<BuildId>, d: &Draft, chosen: &[BuildId]) -> bool {
    let [one] = chosen else {
        return false;
    };
    !d.not_in_db
        && all_ids.len() > 1
        && all_ids
            .iter()
            .filter(|id| *id != one)
            .all(|id| t.support(*id) < t.support(*one) || t.contradicted(*id))
}

/// How sure an answer of this kind is; an exact one most when the DB has
/// one build of the name or the bytes singled it out among several.
fn confidence(resolution: Resolution, singled_out: bool) -> f64 {
    match resolution {
        Resolution::Exact if singled_out => 0.95,
        Resolution::Exact => 0.9,
        Resolution::ExactBySourceCoherence => 0.8,
        Resolution::VersionSet => 0.6,
        _ => 0.5,
    }
}

/// Phase 7. Debian builds are reproducible: a binary whose bytes did not
/// change between two revisions fits both. Binary packages of one source
/// share its version, so when siblings match no known version this one is
/// most likely at that unknown version too, with bytes identical to an
/// older build: report that build as the nearest, never as exact.
pub(super) fn unknown_sources(packages: &mut [Identified]) {
    let unknown: HashSet<String> = packages
        .iter()
        .filter(|p| p.resolution == Resolution::VersionNotInDb)
        .map(|p| p.source.clone())
        .collect();
    for p in packages.iter_mut() {
        let exact = matches!(
            p.resolution,
            Resolution::Exact | Resolution::ExactBySourceCoherence
        );
        if !exact || !unknown.contains(&p.source) {
            continue;
        }
        let Some(v) = p.version.take() else {
            continue;
        };
        p.notes.push(format!(
            "bytes identical to the {v} build, but other binary packages of source {} match no known version: most likely the same unknown source version",
            p.source
        ));
        p.resolution = Resolution::VersionNotInDb;
        p.nearest_version = Some(v);
        p.candidate_versions.clear();
        p.source_version = None;
        p.confidence = p.confidence.min(0.5);
    }
}
