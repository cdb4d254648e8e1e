//! Matching function signatures: which projects' distinctive functions a
//! file contains (a statically linked library, a stripped or rebuilt
//! copy), and at which version.
//!
//! Each hash is stored once (`func_hash`) with its posting list: the
//! (project, upstream version)s (`func_version`) that ship it. For each
//! file, its function hashes are looked up in one batch (`rarray`), hashes
//! common to several projects are ignored, and each (project, version)
//! gets a containment score: matched / distinctive.
//! The version with the highest containment wins; equal scores give a
//! version set, never a guess.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::Mutex;

use kiln_catalog::Ecosystem;
use serde::Serialize;

use crate::db::Db;
use crate::error::Result;
use crate::identify::SignatureLookup;

/// Fewest distinctive functions that can name a project.
pub const MIN_MATCHED: usize = 10;
/// Least containment that can name a project.
pub const MIN_CONTAINMENT: f64 = 0.05;

/// A project found in one file by its functions.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionMatch {
    /// Canonical project name.
    pub project: String,
    /// Versions with the best containment (one for an exact answer).
    pub versions: Vec<String>,
    /// The file has functions of this project that the best version does
    /// not have: it is a build the DB does not know, and `versions` only
    /// names the nearest.
    pub not_in_db: bool,
    /// Distinctive functions of the best version found in the file.
    pub matched: usize,
    /// Distinctive functions that version has.
    pub distinctive: usize,
    /// matched / distinctive.
    pub containment: f64,
    /// The best other version and its containment: the margin behind the
    /// choice.
    pub runner_up: Option<(String, f64)>,
    /// The versions the evidence allows, as a `vers:` range: tied versions,
    /// or for a build the DB does not have the known versions it lies
    /// between (from where its distinctive functions appear).
    pub range: Option<String>,
}

/// Whether `db` has function signatures; loads the `rarray` module once
/// for the [`match_functions`] calls that follow.
pub fn has_signatures(db: &Db) -> Result<bool> {
    has_rows(db, "func_hash")
}

/// Whether `table` exists and has rows (a DB of an older schema, or built
/// without code, has none: then nothing is read again to be matched).
/// Loads the `rarray` module on the way.
fn has_rows(db: &Db, table: &str) -> Result<bool> {
    let e = |err| db.err(err);
    rusqlite::vtab::array::load_module(&db.conn).map_err(e)?;
    let exists = db
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map_err(e)?
        > 0;
    if !exists {
        return Ok(false);
    }
    db.conn
        .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), [], |r| {
            r.get::<_, bool>(0)
        })
        .map_err(e)
}

/// One (project, upstream version) with function signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureVersion {
    /// Canonical project name.
    pub project: String,
    /// Upstream version.
    pub version: String,
    /// How many of its function hashes no other project ships.
    pub distinctive: usize,
}

/// Projects whose distinctive functions `hashes` contains (after
/// [`has_signatures`] said yes). One index probe per hash: each hash is
/// stored once with its posting list of versions.
pub fn match_functions<L: SignatureLookup>(db: &L, hashes: &[u64]) -> Result<Vec<FunctionMatch>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let postings = db.function_postings(hashes)?;
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<u32> = postings.iter().flatten().copied().collect();
    let known = db.signature_versions(&ids)?;
    // Per version: the file's distinctive hashes it ships.
    let mut matched: HashMap<u32, usize> = HashMap::new();
    // Per project: the file's distinctive hashes any of its versions ships.
    let mut any_version: HashMap<&str, usize> = HashMap::new();
    for p in &postings {
        for id in p {
            *matched.entry(*id).or_default() += 1;
        }
        // Not common: every version in the posting is of one project.
        if let Some(v) = p.first().and_then(|id| known.get(id)) {
            *any_version.entry(v.project.as_str()).or_default() += 1;
        }
    }
    let mut by: BTreeMap<&str, Vec<(u32, usize, usize)>> = BTreeMap::new();
    for (id, m) in &matched {
        if let Some(v) = known.get(id) {
            by.entry(v.project.as_str())
                .or_default()
                .push((*id, *m, v.distinctive));
        }
    }
    let score = |m: usize, d: usize| m as f64 / d.max(1) as f64;
    let name = |id: &u32| known.get(id).map_or("", |v| v.version.as_str());
    let mut out = Vec::new();
    for (project, vs) in by {
        let best = vs.iter().map(|(_, m, d)| score(*m, *d)).fold(0.0, f64::max);
        let top: Vec<&(u32, usize, usize)> = vs
            .iter()
            .filter(|(_, m, d)| (score(*m, *d) - best).abs() < 1e-9)
            .collect();
        let Some((_, best_matched, distinctive)) = top.first() else {
            continue;
        };
        if *best_matched < MIN_MATCHED || best < MIN_CONTAINMENT {
            continue;
        }
        let mut versions: Vec<String> = top.iter().map(|t| name(&t.0).to_string()).collect();
        versions.sort();
        let runner_up = vs
            .iter()
            .filter(|(id, _, _)| !versions.iter().any(|v| v == name(id)))
            .map(|(id, m, d)| {
                (
                    name(id).to_string(),
                    (score(*m, *d) * 1000.0).round() / 1000.0,
                )
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        // A build of a known version has every one of the file's functions
        // of this project; one it lacks means a version the DB has not seen.
        let not_in_db = any_version.get(project).is_some_and(|n| n > best_matched);
        let range = if not_in_db {
            version_bounds(db, project, &postings, &known)?
        } else if versions.len() > 1 {
            Some(Ecosystem::Generic.vers_set(versions.iter().map(String::as_str)))
        } else {
            None
        };
        out.push(FunctionMatch {
            project: project.to_string(),
            versions,
            not_in_db,
            matched: *best_matched,
            distinctive: *distinctive,
            containment: (best * 1000.0).round() / 1000.0,
            runner_up,
            range,
        });
    }
    out.sort_by(|a, b| a.project.cmp(&b.project));
    Ok(out)
}

/// The known versions of `project` a build the DB does not have lies
/// between, from where its distinctive functions appear (see
/// [`crate::range`]). Nothing when the functions bound nothing or
/// contradict each other.
fn version_bounds<L: SignatureLookup>(
    db: &L,
    project: &str,
    postings: &[Vec<u32>],
    known: &HashMap<u32, SignatureVersion>,
) -> Result<Option<String>> {
    let mut all = db.project_versions(project)?;
    all.sort_by(|a, b| Ecosystem::Generic.scheme().cmp(&a.1, &b.1));
    let index: HashMap<u32, usize> = all.iter().enumerate().map(|(i, v)| (v.0, i)).collect();
    let spans = postings
        .iter()
        .filter(|p| {
            p.first()
                .and_then(|id| known.get(id))
                .is_some_and(|v| v.project == project)
        })
        .filter_map(|p| {
            let mut at = p.iter().filter_map(|id| index.get(id).copied());
            let first = at.next()?;
            Some(at.fold((first, first), |(lo, hi), j| (lo.min(j), hi.max(j))))
        });
    let (lower, upper) = crate::range::span_bounds(spans, all.len());
    if lower.zip(upper).is_some_and(|(a, b)| a >= b) {
        return Ok(None);
    }
    let v = |j: usize| all[j].1.as_str();
    Ok(Ecosystem::Generic.vers_between(lower.map(v), upper.map(v)))
}

/// Posting lists: sorted ids as LEB128 varint deltas.
pub(crate) mod postings {
    /// Encode sorted, distinct `ids`.
    pub fn encode(ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 2);
        let mut prev = 0u32;
        for id in ids {
            let mut d = id.wrapping_sub(prev);
            prev = *id;
            loop {
                let b = (d & 0x7f) as u8;
                d >>= 7;
                if d == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out
    }

    /// Decode; a truncated or overlong trailing value is dropped.
    pub fn decode(bytes: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        let (mut cur, mut shift, mut prev) = (0u32, 0u32, 0u32);
        for b in bytes {
            if shift > 28 {
                break;
            }
            cur |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                prev = prev.wrapping_add(cur);
                out.push(prev);
                cur = 0;
                shift = 0;
            } else {
                shift += 7;
            }
        }
        out
    }

    /// The sorted union of two posting lists.
    pub fn merge(a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = a.iter().chain(b).copied().collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether `db` has per-file code identities (schema 3); loads `rarray`.
pub(crate) fn has_file_functions(db: &Db) -> Result<bool> {
    has_rows(db, "elf_functions")
}

/// Function sets of the tree's files named in `wanted` (path -> caller's
/// index), read again from the layers; hashing runs on the thread pool
/// while the next member is read.
pub(crate) fn hash_tree_files(
    tree: &kiln_tree::Tree,
    wanted: &HashMap<&str, usize>,
) -> Result<HashMap<usize, Vec<u64>>> {
    let out = Mutex::new(HashMap::new());
    let mut failed = None;
    rayon::scope(|s| {
        let r = tree.stream_files(
            |p, _| wanted.contains_key(p),
            |path, e, reader| {
                let mut data = Vec::with_capacity(e.size.min(1 << 30) as usize);
                reader.take(e.size).read_to_end(&mut data).map_err(|err| {
                    kiln_tree::TreeError::Io {
                        path: path.into(),
                        err,
                    }
                })?;
                if let Some(i) = wanted.get(path).copied() {
                    let out = &out;
                    s.spawn(move |_| {
                        let h = kiln_fingerprint::functions::file_function_hashes(&data);
                        if let Ok(mut m) = out.lock() {
                            m.insert(i, h);
                        }
                    });
                }
                Ok(())
            },
        );
        if let Err(err) = r {
            failed = Some(err);
        }
    });
    if let Some(err) = failed {
        return Err(err.into());
    }
    Ok(out.into_inner().unwrap_or_default())
}

/// A content's function set as stored in `elf_functions`: sorted distinct
/// hashes as little-endian u64s.
pub(crate) fn pack(hashes: &[u64]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// The inverse of [`pack`]; a trailing partial word is ignored.
pub(crate) fn unpack(blob: &[u8]) -> Vec<u64> {
    blob.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect()
}

/// |a ∩ b| of two sorted, deduplicated hash sets.
pub(crate) fn intersection(a: &[u64], b: &[u64]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// How a file's function set compares with one packaged build of the same
/// path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FileSimilarity {
    /// The packaged build holds every one of the file's functions, and the
    /// file at least half of the build's: the same code, whatever was
    /// stripped.
    pub same_code: bool,
    /// Jaccard similarity of the two sets.
    pub jaccard: f64,
}

/// Compare a file's function set with a packaged build's.
pub(crate) fn file_similarity(file: &[u64], build: &[u64]) -> FileSimilarity {
    let common = intersection(file, build);
    let union = file.len() + build.len() - common;
    FileSimilarity {
        same_code: !file.is_empty() && common == file.len() && 2 * file.len() >= build.len(),
        jaccard: if union == 0 {
            0.0
        } else {
            common as f64 / union as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_lists_round_trip() {
        let ids = vec![1u32, 2, 130, 20_000, u32::MAX];
        assert_eq!(postings::decode(&postings::encode(&ids)), ids);
        assert_eq!(postings::encode(&[1, 2, 3]), vec![1, 1, 1]);
        assert_eq!(postings::merge(&[1, 5], &[2, 5, 9]), vec![1, 2, 5, 9]);
        // Hostile bytes: no panic, no endless value.
        assert_eq!(postings::decode(&[0xff; 12]), Vec::<u32>::new());
    }

    #[test]
    fn packs_and_unpacks() {
        let h = vec![1u64, 7, u64::MAX];
        assert_eq!(unpack(&pack(&h)), h);
        assert_eq!(unpack(&[1, 2, 3]), Vec::<u64>::new());
    }

    #[test]
    fn same_code_needs_every_file_function_in_the_build() {
        let build = [1u64, 2, 3, 4];
        assert!(file_similarity(&[1, 2, 3, 4], &build).same_code);
        // Stripping may lose symbol-only boundaries, never add code.
        assert!(file_similarity(&[1, 2, 3], &build).same_code);
        // A function no build has: patched or another version.
        let s = file_similarity(&[1, 2, 3, 9], &build);
        assert!(!s.same_code);
        assert!((s.jaccard - 0.6).abs() < 1e-9);
        assert!(!file_similarity(&[1], &build).same_code);
        assert!(!file_similarity(&[], &build).same_code);
    }
}
