//! Matching ELF files by code when their bytes and build-ids match no
//! build: the digest of their loaded sections and their function sets,
//! compared with the builds that ship the same path; and for a package no
//! known version explains, the version range that code allows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kiln_catalog::version::dpkg_cmp;
use kiln_tree::Tree;

use super::{Lookups, Match, Obs, Pkg};
use crate::db::Db;
use crate::error::Result;

/// ELF files larger than this are not read again for their code: each is
/// held in memory while hashed (the same cap as `kiln db build`'s).
const MAX_CODE_FILE: u64 = 512 << 20;

/// One ELF file compared by code with the packaged builds of its path.
pub(super) struct FileFunctions {
    /// The file's distinct function hashes, sorted.
    pub(super) hashes: Vec<u64>,
    /// (package, Jaccard similarity, the build's function set).
    pub(super) builds: Vec<(i64, f64, Arc<Vec<u64>>)>,
}

/// ELF files that match no build by bytes or build-id: compare their code
/// with the builds that ship their path. The same loaded sections support
/// those builds ([`Match::ElfLoadedBytes`]); failing that, a function set
/// a build contains supports it ([`Match::ElfFunctions`]). Stripping
/// symbols, removing notes or appending data changes the bytes but neither
/// of these. The files are read again from the layers, only when there are
/// such files; their function sets are kept for the search for statically
/// linked projects.
pub(super) fn lookup_functions(db: &Db, tree: &Tree, obs: &[Obs], l: &mut Lookups) -> Result<()> {
    let matched: HashSet<usize> = l
        .by_content
        .iter()
        .map(|r| r.0)
        .chain(l.by_build_id.iter().map(|r| r.0))
        .collect();
    let wanted: HashMap<&str, usize> = obs
        .iter()
        .enumerate()
        .filter(|(i, o)| o.elf && o.size <= MAX_CODE_FILE && !matched.contains(i))
        .map(|(i, o)| (o.path.as_str(), i))
        .collect();
    // Function sets serve two matches: by code with the builds of the same
    // path, and (for files nothing explains) by project signatures.
    let per_file = !wanted.is_empty() && crate::funcmatch::has_file_functions(db)?;
    if wanted.is_empty() || !(per_file || crate::funcmatch::has_signatures(db)?) {
        return Ok(());
    }
    let hashes = crate::funcmatch::hash_tree_files(tree, &wanted)?;
    // The packaged builds of those paths, by content.
    let mut at: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    for (i, pid, _, content) in &l.by_path {
        if let (Some(c), true) = (content, hashes.contains_key(i)) {
            at.entry(*i).or_default().push((*pid, *c));
        }
    }
    let contents: BTreeSet<i64> = at.values().flatten().map(|(_, c)| *c).collect();
    let sets = if per_file {
        crate::funcmatch::load_file_functions(db, &contents)?
    } else {
        HashMap::new()
    };
    for (i, own) in hashes {
        let mut builds = Vec::new();
        let mut same_loaded = Vec::new();
        let mut same_code = Vec::new();
        for (pid, c) in at.get(&i).into_iter().flatten() {
            let Some(stored) = sets.get(c) else { continue };
            let sim = crate::funcmatch::file_similarity(&own.functions, &stored.functions);
            builds.push((*pid, sim.jaccard, Arc::clone(&stored.functions)));
            // Both carry a build-id and they differ: another build of this
            // code (a rebuild for a new revision), not this one.
            if let (Some(a), Some(b)) = (&obs[i].build_id, &stored.build_id) {
                if a != b {
                    continue;
                }
            }
            if own.loaded.is_some()
                && stored.loaded.as_deref() == own.loaded.as_ref().map(|d| &d[..])
            {
                same_loaded.push(*pid);
            }
            if sim.same_code {
                same_code.push(*pid);
            }
        }
        // The same loaded bytes single out their builds; only without such
        // a build does the same code (a near-identical build) count.
        if same_loaded.is_empty() {
            l.by_code
                .extend(same_code.into_iter().map(|p| (i, p, Match::ElfFunctions)));
        } else {
            l.by_code.extend(
                same_loaded
                    .into_iter()
                    .map(|p| (i, p, Match::ElfLoadedBytes)),
            );
        }
        l.functions.insert(
            i,
            FileFunctions {
                hashes: own.functions,
                builds,
            },
        );
    }
    Ok(())
}

/// For a package no known version explains: the bounds the code of its
/// differing `files` puts on the installed version. A function of the file
/// that only known versions `lo..=hi` have means the file is newer than
/// the known version before `lo` and older than the one after `hi`
/// (functions come and go with versions, they do not return). A `vers:`
/// range, or nothing when the code bounds nothing or contradicts itself.
pub(super) fn code_range(
    ids: &BTreeSet<i64>,
    files: &BTreeSet<usize>,
    l: &Lookups,
    pkgs: &HashMap<i64, Pkg>,
) -> Option<String> {
    let cmp = |a: &i64, b: &i64| dpkg_cmp(&pkgs[a].version, &pkgs[b].version);
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
        for h in &f.hashes {
            let mut present = builds
                .iter()
                .enumerate()
                .filter(|(_, b)| b.2.binary_search(h).is_ok())
                .map(|(j, _)| j);
            let Some(lo) = present.next() else {
                continue;
            };
            let hi = present.next_back().unwrap_or(lo);
            if lo > 0 {
                let c = builds[lo - 1].0;
                if lower.is_none_or(|x| cmp(&c, &x).is_gt()) {
                    lower = Some(c);
                }
            }
            if let Some(b) = builds.get(hi + 1) {
                if upper.is_none_or(|x| cmp(&b.0, &x).is_lt()) {
                    upper = Some(b.0);
                }
            }
        }
    }
    let v = |id: i64| pkgs[&id].version.as_str();
    match (lower, upper) {
        (Some(a), Some(b)) if cmp(&a, &b).is_lt() => Some(format!("vers:deb/>{}|<{}", v(a), v(b))),
        (Some(a), None) => Some(format!("vers:deb/>{}", v(a))),
        (None, Some(b)) => Some(format!("vers:deb/<{}", v(b))),
        _ => None,
    }
}
