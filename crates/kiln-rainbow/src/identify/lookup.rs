//! What identification asks of a signature store, as a trait, and the
//! batch look-ups that turn a tree's observed files into [`Lookups`]:
//! which builds ship the same bytes, the same build-id, or the same path.
//! The SQL lives behind [`SignatureLookup`] (see [`super::store`]), so a
//! second storage backend answers the same questions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kiln_catalog::Ecosystem;

use super::ahead::Answers;
use super::code::FileFunctions;
use super::{Match, Obs};
use crate::error::{RainbowError, Result};
use crate::funcmatch::{Posting, SignatureVersion};

/// A package build the store knows, by its id.
pub type BuildId = i64;
/// A stored file content, by its id.
pub type ContentId = i64;

/// One package build known to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// Its ecosystem (Debian package or Python wheel).
    pub ecosystem: Ecosystem,
    /// Package name.
    pub name: String,
    /// Version, verbatim.
    pub version: String,
    /// Architecture (`all`, `amd64`; wheels: their platform tag's).
    pub arch: String,
    /// Source package.
    pub source: String,
    /// Source version.
    pub source_version: String,
    /// Regular files it ships.
    pub regular_files: usize,
}

/// A packaged ELF content's stored code identity.
#[derive(Debug, Clone)]
pub struct StoredCode {
    /// Distinct function hashes, sorted.
    pub functions: Arc<Vec<u64>>,
    /// Digest (BLAKE3) of the loaded sections other than notes.
    pub loaded: Option<Vec<u8>>,
    /// Its GNU build-id, when it has one.
    pub build_id: Option<Vec<u8>>,
}

/// A build that ships a looked-up key: (key, build, the path it ships it at).
pub type KeyHit = (Vec<u8>, BuildId, String);

/// A build that ships a looked-up path: (path, build, conffile, content;
/// no content for what is not a regular file with known bytes).
pub type PathHit = (String, BuildId, bool, Option<ContentId>);

/// The questions identification asks a signature store, each for a whole
/// batch of keys at once.
pub trait SignatureLookup {
    /// Builds that ship a file whose content digest is one of `digests`.
    fn by_content(&self, digests: &[&[u8]]) -> Result<Vec<KeyHit>>;
    /// Builds that ship an ELF file whose GNU build-id is one of `ids`.
    fn by_build_id(&self, ids: &[&[u8]]) -> Result<Vec<KeyHit>>;
    /// Builds that ship a regular file (or hard link) at one of `paths`.
    fn by_path(&self, paths: &[&str]) -> Result<Vec<PathHit>>;
    /// The builds with these ids.
    fn builds(&self, ids: &BTreeSet<BuildId>) -> Result<HashMap<BuildId, Build>>;
    /// Whether per-file code identities are stored (schema 3 and later).
    fn has_code_identities(&self) -> Result<bool>;
    /// Whether project function signatures are stored.
    fn has_function_signatures(&self) -> Result<bool>;
    /// The stored code identities of these contents.
    fn code_identities(
        &self,
        contents: &BTreeSet<ContentId>,
    ) -> Result<HashMap<ContentId, StoredCode>>;
    /// The posting list (signature version ids) of each of `hashes` the
    /// store has, and whether several projects ship it.
    fn function_postings(&self, hashes: &[u64]) -> Result<Vec<Posting>>;
    /// The signature versions with these ids.
    fn signature_versions(&self, ids: &BTreeSet<u32>) -> Result<HashMap<u32, SignatureVersion>>;
    /// Every signature version of `project`: (id, upstream version).
    fn project_versions(&self, project: &str) -> Result<Vec<(u32, String)>>;
    /// A second, independent reader of the same store, so look-ups can
    /// run in parallel.
    fn second_reader(&self) -> Result<Self>
    where
        Self: Sized;
}

/// What the store says about each observed file, by index into the
/// observations.
#[derive(Default)]
pub(super) struct Lookups {
    /// (obs, build, store path) with the same bytes.
    pub(super) by_content: Vec<(usize, BuildId, String)>,
    /// (obs, build, store path) with the same build-id.
    pub(super) by_build_id: Vec<(usize, BuildId, String)>,
    /// Builds that ship one of the file's paths.
    pub(super) by_path: Vec<AtPath>,
    /// (obs, build, how) whose build at the file's path has the same
    /// loaded sections or the same code (function set) though other bytes:
    /// symbols or notes stripped.
    pub(super) by_code: Vec<(usize, BuildId, Match)>,
    /// ELF files without a byte or build-id match, by obs: their function
    /// sets and how they compare with each build shipping their path.
    pub(super) functions: HashMap<usize, FileFunctions>,
}

/// (obs, build, conffile, content): a build that ships an observed file's
/// path, and what it ships there.
pub(super) type AtPath = (usize, BuildId, bool, Option<ContentId>);

impl Lookups {
    /// Every build any look-up named.
    pub(super) fn build_ids(&self) -> BTreeSet<BuildId> {
        self.by_content
            .iter()
            .map(|r| r.1)
            .chain(self.by_build_id.iter().map(|r| r.1))
            .chain(self.by_path.iter().map(|r| r.1))
            .collect()
    }
}

/// Look every observed file up by content, build-id and path (with its
/// usrmerge aliases). Paths go to a second reader in parallel: by now the
/// layers are read and both cores are free.
pub(super) fn gather<L: SignatureLookup + Send>(
    db: &L,
    obs: &[Obs],
    links: &[(String, String)],
    known: Option<&Answers>,
) -> Result<Lookups> {
    if let Some(known) = known {
        // Most keys were asked while the layers streamed: one reader does.
        let mut out = by_content(db, obs, Some(known))?;
        out.by_path = by_path(db, obs, links, Some(known))?;
        return Ok(out);
    }
    let second = db.second_reader()?;
    let (paths, out) = std::thread::scope(|s| {
        let paths = s.spawn(move || by_path(&second, obs, links, None));
        let out = by_content(db, obs, None);
        (paths.join(), out)
    });
    let paths = paths.map_err(|panic| RainbowError::panicked("path look-up", &*panic))??;
    let mut out = out?;
    out.by_path = paths;
    Ok(out)
}

/// Same bytes and same build-ids; answers map back to files by value.
/// Keys go out in order (`BTreeMap`), so the store probes its B-tree
/// pages in order rather than at random (on PostgreSQL with the libs DB,
/// path look-ups took 62 ms sorted against 77 ms in hash order).
fn by_content<L: SignatureLookup>(db: &L, obs: &[Obs], known: Option<&Answers>) -> Result<Lookups> {
    let mut by_sha: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    let mut by_bid: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, o) in obs.iter().enumerate() {
        by_sha.entry(&o.sha[..]).or_default().push(i);
        if let Some(b) = &o.build_id {
            by_bid.entry(&b[..]).or_default().push(i);
        }
    }
    let mut out = Lookups::default();
    let keys: Vec<&[u8]> = by_sha.keys().copied().collect();
    let hits = answered(
        &keys,
        known.map(|k| &k.content),
        |h| &h.0[..],
        |k| db.by_content(k),
    )?;
    spread(hits, &by_sha, &mut out.by_content);
    let keys: Vec<&[u8]> = by_bid.keys().copied().collect();
    let hits = answered(
        &keys,
        known.map(|k| &k.build_id),
        |h| &h.0[..],
        |k| db.by_build_id(k),
    )?;
    spread(hits, &by_bid, &mut out.by_build_id);
    Ok(out)
}

/// The hits of `keys`: from `known` where the look-ahead asked them, from
/// `query` for the rest, key by key in the order of `keys`.
fn answered<Q, K, H>(
    keys: &[&Q],
    known: Option<&HashMap<K, Vec<H>>>,
    key_of: impl Fn(&H) -> &Q,
    query: impl FnOnce(&[&Q]) -> Result<Vec<H>>,
) -> Result<Vec<H>>
where
    Q: ?Sized + std::hash::Hash + Eq,
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    H: Clone,
{
    let Some(known) = known else {
        return query(keys);
    };
    let missing: Vec<&Q> = keys
        .iter()
        .copied()
        .filter(|k| !known.contains_key(*k))
        .collect();
    let fetched = if missing.is_empty() {
        Vec::new()
    } else {
        query(&missing)?
    };
    let mut by_key: HashMap<&Q, Vec<&H>> = HashMap::new();
    for h in &fetched {
        by_key.entry(key_of(h)).or_default().push(h);
    }
    let mut out = Vec::new();
    for k in keys {
        match known.get(*k) {
            Some(hits) => out.extend(hits.iter().cloned()),
            None => out.extend(by_key.get(*k).into_iter().flatten().map(|h| (*h).clone())),
        }
    }
    Ok(out)
}

/// Each hit, once per observed file that has its key.
fn spread(
    hits: Vec<KeyHit>,
    files: &BTreeMap<&[u8], Vec<usize>>,
    dest: &mut Vec<(usize, i64, String)>,
) {
    for (key, build, path) in hits {
        for i in files.get(&key[..]).into_iter().flatten() {
            dest.push((*i, build, path.clone()));
        }
    }
}

/// Builds that ship each observed path (or its usrmerge alias).
fn by_path<L: SignatureLookup>(
    db: &L,
    obs: &[Obs],
    links: &[(String, String)],
    known: Option<&Answers>,
) -> Result<Vec<AtPath>> {
    let mut files: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, o) in obs.iter().enumerate() {
        for a in super::aliases(&o.path, links) {
            files.entry(a).or_default().push(i);
        }
    }
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    let hits = answered(
        &paths,
        known.map(|k| &k.path),
        |h| h.0.as_str(),
        |k| db.by_path(k),
    )?;
    let mut out = Vec::new();
    for (path, build, conffile, content) in hits {
        for i in files.get(&path).into_iter().flatten() {
            out.push((*i, build, conffile, content));
        }
    }
    Ok(out)
}

/// The builds with these ids, from the look-ahead's where it has them.
pub(super) fn builds<L: SignatureLookup>(
    db: &L,
    ids: &BTreeSet<BuildId>,
    known: Option<&Answers>,
) -> Result<HashMap<BuildId, Build>> {
    let Some(known) = known else {
        return db.builds(ids);
    };
    let missing: BTreeSet<BuildId> = ids
        .iter()
        .copied()
        .filter(|i| !known.builds.contains_key(i))
        .collect();
    let mut out = if missing.is_empty() {
        HashMap::new()
    } else {
        db.builds(&missing)?
    };
    for i in ids {
        if let Some(b) = known.builds.get(i) {
            out.insert(*i, b.clone());
        }
    }
    Ok(out)
}
