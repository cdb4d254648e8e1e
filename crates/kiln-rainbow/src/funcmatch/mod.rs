//! Matching function signatures: which projects' distinctive functions a
//! file contains (a statically linked library, a stripped or rebuilt
//! copy), and whether the code pins a version.
//!
//! Each hash is stored once (`func_hash`) with its posting list: the
//! (project, upstream version)s (`func_version`) that ship it. For each
//! file, its function hashes are looked up in one batch; hashes common to
//! several projects name no project, and each (project, version) gets a
//! containment score: matched / distinctive. [`verdict`] then decides what
//! the code proves: an exact version only when it pins one (the functions
//! that tell the DB's versions apart point to it, or the file is that
//! build's code), a version set when several known versions fit equally,
//! and otherwise "version not in DB" with the nearest version — never a
//! guessed exact version.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::Mutex;

use kiln_catalog::Ecosystem;
use serde::Serialize;

use crate::db::Db;
use crate::error::Result;
use crate::identify::SignatureLookup;

mod verdict;

pub use verdict::{Pin, Posting};

/// Fewest distinctive functions that can name a project.
pub const MIN_MATCHED: usize = 10;
/// Least containment that can name a project.
pub const MIN_CONTAINMENT: f64 = 0.05;

/// A project found in one file by its functions.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionMatch {
    /// Canonical project name.
    pub project: String,
    /// The exact version, the tied versions, or the nearest version (see
    /// `pin`).
    pub versions: Vec<String>,
    /// What the code proves about the version.
    pub pin: Pin,
    /// Why, in words, for the evidence notes.
    pub reason: String,
    /// Distinctive functions of the best version found in the file.
    pub matched: usize,
    /// Distinctive functions that version has.
    pub distinctive: usize,
    /// matched / distinctive.
    pub containment: f64,
    /// Share of the file's functions that are the best version's (its
    /// distinctive and shared ones): near 1 when the file is that build.
    pub explained: f64,
    /// The best other version and its containment: the margin behind the
    /// choice.
    pub runner_up: Option<(String, f64)>,
    /// The versions the evidence allows, as a `vers:` range: tied versions,
    /// or for a build the DB does not have the known versions it lies
    /// between (from where its distinctive functions appear).
    pub range: Option<String>,
}

/// Whether `db` has function signatures.
pub fn has_signatures(db: &Db) -> Result<bool> {
    has_rows(db, "func_hash")
}

/// Whether `table` exists and has rows (a DB of an older schema, or built
/// without code, has none: then nothing is read again to be matched).
fn has_rows(db: &Db, table: &str) -> Result<bool> {
    if !db.conn.has_table(table)? {
        return Ok(false);
    }
    Ok(db
        .conn
        .query_row(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
        .is_some())
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

/// Projects whose distinctive functions `hashes` (the file's distinct
/// function hashes) contains, each with what the code proves about its
/// version. One index probe per hash: each hash is stored once with its
/// posting list of versions.
pub fn match_functions<L: SignatureLookup>(db: &L, hashes: &[u64]) -> Result<Vec<FunctionMatch>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let postings = db.function_postings(hashes)?;
    if !postings.iter().any(|p| !p.common) {
        return Ok(Vec::new());
    }
    // Versions named by distinctive hashes: the candidates.
    let ids: BTreeSet<u32> = postings
        .iter()
        .filter(|p| !p.common)
        .flat_map(|p| p.versions.iter())
        .copied()
        .collect();
    let known = db.signature_versions(&ids)?;
    let file = verdict::FileTally::new(&postings, &known, hashes.len());
    let mut out = Vec::new();
    for (project, tally) in file.projects() {
        let all_versions = db.project_versions(project)?;
        let Some(v) = verdict::decide(&tally, &all_versions) else {
            continue;
        };
        let range = match v.pin {
            Pin::NotInDb => {
                let distinctive: Vec<Vec<u32>> = postings
                    .iter()
                    .filter(|p| !p.common)
                    .map(|p| p.versions.clone())
                    .collect();
                version_bounds(project, &all_versions, &distinctive, &known)
            }
            Pin::Set => Some(Ecosystem::Generic.vers_set(v.versions.iter().map(String::as_str))),
            Pin::Exact => None,
        };
        out.push(FunctionMatch {
            project: project.to_string(),
            range,
            ..v
        });
    }
    out.sort_by(|a, b| a.project.cmp(&b.project));
    Ok(out)
}

/// The known versions of `project` a build the DB does not have lies
/// between, from where its distinctive functions appear (see
/// [`crate::range`]). Nothing when the functions bound nothing or
/// contradict each other.
fn version_bounds(
    project: &str,
    all: &[(u32, String)],
    postings: &[Vec<u32>],
    known: &HashMap<u32, SignatureVersion>,
) -> Option<String> {
    let mut all = all.to_vec();
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
        return None;
    }
    let v = |j: usize| all[j].1.as_str();
    Ecosystem::Generic.vers_between(lower.map(v), upper.map(v))
}

/// Posting lists: sorted ids as LEB128 varint deltas.
pub mod postings {
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
/// while the next member is read. Each distinct content is read and
/// hashed once, however many paths (hard links, copies) carry it.
pub(crate) fn hash_tree_files(
    tree: &kiln_tree::Tree,
    wanted: &HashMap<&str, usize>,
) -> Result<HashMap<usize, Vec<u64>>> {
    let mut first: HashMap<[u8; 32], &str> = HashMap::new();
    let mut reps: HashMap<&str, Vec<usize>> = HashMap::new();
    for (&path, &i) in wanted {
        let rep = match tree.get(path).and_then(|e| e.digest) {
            Some(h) => *first.entry(h).or_insert(path),
            None => path,
        };
        reps.entry(rep).or_default().push(i);
    }
    let hashed = hash_distinct(tree, &reps)?;
    let mut out = HashMap::new();
    for (rep, indices) in &reps {
        if let Some(h) = hashed.get(rep) {
            for i in indices {
                out.insert(*i, h.clone());
            }
        }
    }
    Ok(out)
}

/// Function sets of the paths in `reps`, by path.
fn hash_distinct<'a>(
    tree: &kiln_tree::Tree,
    reps: &HashMap<&'a str, Vec<usize>>,
) -> Result<HashMap<&'a str, Vec<u64>>> {
    let wanted: HashMap<&str, &'a str> = reps.keys().map(|k| (*k, *k)).collect();
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
                if let Some(key) = wanted.get(path).copied() {
                    let out = &out;
                    s.spawn(move |_| {
                        let h = kiln_fingerprint::functions::file_function_hashes(&data);
                        if let Ok(mut m) = out.lock() {
                            m.insert(key, h);
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
