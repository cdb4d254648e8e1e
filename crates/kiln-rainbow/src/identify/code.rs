//! Matching ELF files by code when their bytes and build-ids match no
//! build: the digest of their loaded sections and their function sets,
//! compared with the builds that ship the same path; and for a package no
//! known version explains, the version range that code allows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kiln_tree::Tree;

use super::lookup::{Build, BuildId, Lookups, SignatureLookup, StoredCode};
use super::{Match, Obs};
use crate::error::Result;

/// ELF files larger than this are not read again for their code: each is
/// held in memory while hashed (the same cap as `kiln db build`'s).
const MAX_CODE_FILE: u64 = 512 << 20;

/// One ELF file compared by code with the packaged builds of its path.
pub(super) struct FileFunctions {
    /// The file's distinct function hashes, sorted.
    pub(super) hashes: Vec<u64>,
    /// (package, Jaccard similarity, the build's function set).
    pub(super) builds: Vec<(BuildId, f64, Arc<Vec<u64>>)>,
}

/// ELF files that match no build by bytes or build-id: compare their code
/// with the builds that ship their path. The same loaded sections support
/// those builds ([`Match::ElfLoadedBytes`]); failing that, a function set
/// a build contains supports it ([`Match::ElfFunctions`]). Stripping
/// symbols, removing notes or appending data changes the bytes but neither
/// of these. The loaded digest was taken on the first read; only files it
/// does not settle are read again from the layers for their functions,
/// which are kept for the search for statically linked projects.
pub(super) fn lookup_functions<L: SignatureLookup>(
    db: &L,
    tree: &Tree,
    obs: &[Obs],
    l: &mut Lookups,
) -> Result<()> {
    let matched: HashSet<usize> = l
        .by_content
        .iter()
        .map(|r| r.0)
        .chain(l.by_build_id.iter().map(|r| r.0))
        .collect();
    let candidates: HashSet<usize> = obs
        .iter()
        .enumerate()
        .filter(|(i, o)| o.elf && !matched.contains(i))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let per_file = db.has_code_identities()?;
    // The packaged builds of the candidates' paths, by content.
    let mut at: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    for (i, pid, _, content) in &l.by_path {
        if let (Some(c), true) = (content, candidates.contains(i)) {
            at.entry(*i).or_default().push((*pid, *c));
        }
    }
    let stored = if per_file {
        let contents: BTreeSet<i64> = at.values().flatten().map(|(_, c)| *c).collect();
        db.code_identities(&contents)?
    } else {
        HashMap::new()
    };
    // The packaged builds of file `i`'s path, with their stored code.
    let builds_of = |i: usize| {
        at.get(&i)
            .into_iter()
            .flatten()
            .filter_map(|(pid, c)| Some((*pid, stored.get(c)?)))
    };
    // Whether file `i` may be that build: a build-id that differs from the
    // build's marks another build of the same code (a rebuild for a new
    // revision).
    let may_be = |i: usize, s: &StoredCode| match (&obs[i].build_id, &s.build_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    // First: the same loaded sections, from the digest already taken.
    let mut settled = HashSet::new();
    for &i in &candidates {
        let Some(own) = obs[i].loaded else {
            continue;
        };
        for (pid, s) in builds_of(i).filter(|(_, s)| may_be(i, s)) {
            if s.loaded.as_deref() == Some(&own[..]) {
                l.by_code.push((i, pid, Match::ElfLoadedBytes));
                settled.insert(i);
            }
        }
    }
    // Then the functions of the rest, read again.
    let wanted: HashMap<&str, usize> = candidates
        .iter()
        .filter(|i| !settled.contains(i) && obs[**i].size <= MAX_CODE_FILE)
        .map(|i| (obs[*i].path.as_str(), *i))
        .collect();
    if wanted.is_empty() || !(per_file || db.has_function_signatures()?) {
        return Ok(());
    }
    for (i, own) in crate::funcmatch::hash_tree_files(tree, &wanted)? {
        // Nearness to every build of the path, also those another build-id
        // rules out: the nearest version of a build the DB lacks.
        let mut builds = Vec::new();
        for (pid, s) in builds_of(i) {
            let sim = crate::funcmatch::file_similarity(&own, &s.functions);
            if sim.same_code && may_be(i, s) {
                l.by_code.push((i, pid, Match::ElfFunctions));
            }
            builds.push((pid, sim.jaccard, Arc::clone(&s.functions)));
        }
        l.functions.insert(
            i,
            FileFunctions {
                hashes: own,
                builds,
            },
        );
    }
    Ok(())
}

/// For a package no known version explains: the bounds the code of its
/// differing `files` puts on the installed version (see [`crate::range`];
/// each file is placed among the builds that ship its path). A `vers:`
/// range, or nothing when the code bounds nothing or contradicts itself.
pub(super) fn code_range(
    ids: &BTreeSet<BuildId>,
    files: &BTreeSet<usize>,
    l: &Lookups,
    pkgs: &HashMap<BuildId, Build>,
) -> Option<String> {
    let ecosystem = pkgs[ids.iter().next()?].ecosystem;
    let cmp = |a: &i64, b: &i64| ecosystem.scheme().cmp(&pkgs[a].version, &pkgs[b].version);
    let mut lower: Option<i64> = None;
    let mut upper: Option<i64> = None;
    for i in files {
        let Some(f) = l.functions.get(i) else {
            continue;
        };
        let mut builds: Vec<&(i64, f64, Arc<Vec<u64>>)> =
            f.builds.iter().filter(|b| ids.contains(&b.0)).collect();
        builds.sort_by(|a, b| cmp(&a.0, &b.0));
        builds.dedup_by(|a, b| a.0 == b.0);
        if builds.len() < 2 {
            continue;
        }
        let spans = f.hashes.iter().filter_map(|h| {
            let mut present = builds
                .iter()
                .enumerate()
                .filter(|(_, b)| b.2.binary_search(h).is_ok())
                .map(|(j, _)| j);
            let lo = present.next()?;
            Some((lo, present.next_back().unwrap_or(lo)))
        });
        // This file's bounds, as builds; the tightest over all files.
        let (lo, hi) = crate::range::span_bounds(spans, builds.len());
        if let Some(c) = lo.map(|j| builds[j].0) {
            if lower.is_none_or(|x| cmp(&c, &x).is_gt()) {
                lower = Some(c);
            }
        }
        if let Some(c) = hi.map(|j| builds[j].0) {
            if upper.is_none_or(|x| cmp(&c, &x).is_lt()) {
                upper = Some(c);
            }
        }
    }
    if let (Some(a), Some(b)) = (lower, upper) {
        if cmp(&a, &b).is_ge() {
            return None;
        }
    }
    let v = |id: i64| pkgs[&id].version.as_str();
    ecosystem.vers_between(lower.map(v), upper.map(v))
}
