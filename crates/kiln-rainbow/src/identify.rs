//! Identification: which packages, at which exact versions, explain the
//! files of a squashed tree — from the bytes alone.
//!
//! For every regular file the tree's SHA-256 (and ELF build-id) is looked
//! up in batches through temporary tables. Each observed file then gives:
//!
//! - *support* to each package version that ships the same bytes at the
//!   same path (or, for renamed files, anywhere), or an ELF file with the
//!   same build-id (bytes appended after the ELF image leave it intact);
//! - a *contradiction* to each package version that ships that path with
//!   other bytes (conffiles excepted: administrators edit them).
//!
//! A package name is reported only when at least one file is *anchored* to
//! it: its bytes belong to no other package name, or no known bytes match
//! and its path is shipped by no other package name. Its version is the
//! consistent version with the most support; ties are broken by source
//! coherence (binary packages of one source share its version); a tie that
//! survives is reported as a version set; and when every known version is
//! contradicted the package is "version not in DB" with the nearest
//! version, never a guessed one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kiln_catalog::version::dpkg_cmp;
use kiln_fingerprint::ElfInfo;
use kiln_tree::{Kind, Tree};
use serde::Serialize;

use crate::db::{rarray, Db};
use crate::error::Result;

mod code;
use code::{code_range, lookup_functions, FileFunctions};

/// One observed regular file.
#[derive(Debug, Clone)]
struct Obs {
    path: String,
    sha: [u8; 32],
    build_id: Option<Vec<u8>>,
    layer: Option<usize>,
    size: u64,
    elf: bool,
    /// Digest of the loaded sections, for ELF files.
    loaded: Option<[u8; 32]>,
}

/// Files smaller than this prove nothing when found at another path: empty
/// marker files (`py.typed`, `zip-safe`) are shipped by many packages.
const MIN_RENAMED_SIZE: u64 = 64;

/// A package build known to the DB.
#[derive(Debug, Clone)]
struct Pkg {
    ecosystem: String,
    name: String,
    version: String,
    arch: String,
    source: String,
    source_version: String,
    regular_files: usize,
}

/// How one file supports a package build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Match {
    /// Same bytes at the same path.
    FileSha256,
    /// Same ELF build-id at the same path; the bytes differ (appended data).
    ElfBuildId,
    /// Same loaded sections (code and data) at the same path: only
    /// non-loaded parts (symbols, notes, the build-id) were stripped.
    ElfLoadedBytes,
    /// Same code at the same path: every function of the file is one of
    /// the build's (normalised machine-code hashes); symbols, notes or
    /// build-id were stripped.
    ElfFunctions,
    /// Same bytes (or build-id) at another path: a renamed or moved file.
    FileSha256Renamed,
}

impl Match {
    /// The name used in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Match::FileSha256 => "file-sha256",
            Match::ElfBuildId => "elf-build-id",
            Match::ElfLoadedBytes => "elf-loaded-bytes",
            Match::ElfFunctions => "elf-functions",
            Match::FileSha256Renamed => "file-sha256-renamed",
        }
    }

    /// How much one such match is worth on its own.
    pub fn confidence(self) -> f64 {
        match self {
            Match::FileSha256 => 0.99,
            Match::ElfBuildId => 0.97,
            Match::ElfLoadedBytes => 0.95,
            Match::ElfFunctions => 0.85,
            Match::FileSha256Renamed => 0.9,
        }
    }
}

/// How a package's version was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// One version explains the bytes best.
    Exact,
    /// Several fit; the version shared by its source's other binaries won.
    ExactBySourceCoherence,
    /// Several versions fit equally; all are listed.
    VersionSet,
    /// Every known version is contradicted by some file.
    VersionNotInDb,
}

impl Resolution {
    /// The name used in evidence.
    pub fn name(&self) -> &'static str {
        match self {
            Resolution::Exact => "exact",
            Resolution::ExactBySourceCoherence => "exact-by-source-coherence",
            Resolution::VersionSet => "version-set",
            Resolution::VersionNotInDb => "version-not-in-db",
        }
    }
}

/// One package identified from bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Identified {
    /// `deb`, or `python` for wheels.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Source package.
    pub source: String,
    /// The version, when resolved to one.
    pub version: Option<String>,
    /// Source version of the resolved version.
    pub source_version: Option<String>,
    /// How the version was settled.
    pub resolution: Resolution,
    /// Versions the bytes fit (one for exact resolutions).
    pub candidate_versions: Vec<String>,
    /// For `VersionNotInDb`, the known version explaining the most files.
    pub nearest_version: Option<String>,
    /// The versions the evidence allows, as a `vers:` range: the tied
    /// versions of a version set, or for `VersionNotInDb` the known
    /// versions the installed one must lie between, from which functions
    /// of the files first and last appear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_range: Option<String>,
    /// Files supporting the chosen version(s): (path, layer, match).
    pub occurrences: Vec<(String, Option<usize>, Match)>,
    /// Files that contradict every known version: (path, layer).
    pub contradictions: Vec<(String, Option<usize>)>,
    /// Regular files the resolved version ships.
    pub files_total: usize,
    /// 0..1.
    pub confidence: f64,
    /// Notes, e.g. what coherence decided.
    pub notes: Vec<String>,
}

/// The result of identifying a tree.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Identification {
    /// Packages, sorted by name.
    pub packages: Vec<Identified>,
    /// Regular files no reported package explains.
    pub unexplained: Vec<String>,
    /// Regular files looked at.
    pub files_seen: usize,
    /// Function sets of unexplained ELF files, when they were computed (to
    /// look for statically linked projects without reading them again).
    #[serde(skip)]
    pub function_hashes: HashMap<String, Vec<u64>>,
}

/// Directory symlinks of the tree as (link, target) pairs, so a file at
/// `usr/bin/x` also answers to `bin/x` when `bin -> usr/bin` (usrmerge):
/// packages record the path they ship, images show the merged one.
fn dir_links(tree: &Tree) -> Vec<(String, String)> {
    tree.iter()
        .filter(|(_, e)| e.kind == Kind::Symlink)
        .filter_map(|(p, _)| {
            let target = tree.resolve(p).ok()?;
            tree.get(&target)
                .filter(|t| t.is_dir())
                .map(|_| (p.to_string(), target))
        })
        .filter(|(l, t)| l != t && !t.is_empty())
        .collect()
}

fn aliases(path: &str, links: &[(String, String)]) -> Vec<String> {
    let mut out = vec![format!("/{path}")];
    for (link, target) in links {
        if let Some(rest) = path
            .strip_prefix(target.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            out.push(format!("/{link}/{rest}"));
        }
    }
    out
}

/// Identify the packages in `tree`. The tree must have been built with
/// hashing on and, for build-id matching, an inspector that stores
/// [`ElfInfo`] facts.
pub fn identify(db: &Db, tree: &Tree) -> Result<Identification> {
    let links = dir_links(tree);
    let obs: Vec<Obs> = tree
        .iter()
        .filter(|(_, e)| e.is_file())
        .filter_map(|(p, e)| {
            Some(Obs {
                path: p.to_string(),
                sha: e.sha256?,
                build_id: e.facts::<ElfInfo>().and_then(|i| i.build_id.clone()),
                layer: e.layer,
                size: e.size,
                elf: e.facts::<ElfInfo>().is_some(),
                loaded: e.facts::<ElfInfo>().and_then(|i| i.loaded),
            })
        })
        .collect();
    let mut lookups = lookup(db, &obs, &links)?;
    lookup_functions(db, tree, &obs, &mut lookups)?;
    let pkgs = load_packages(db, &lookups.package_ids())?;
    let mut found = resolve(&obs, &lookups, &pkgs);
    // Function sets already computed for files nothing explains: the
    // caller's search for statically linked projects need not re-read them.
    let unexplained: HashSet<&str> = found
        .unexplained
        .iter()
        .map(|p| p.trim_start_matches('/'))
        .collect();
    for (i, f) in lookups.functions {
        if unexplained.contains(obs[i].path.as_str()) {
            found
                .function_hashes
                .insert(format!("/{}", obs[i].path), f.hashes);
        }
    }
    Ok(found)
}

/// What the DB says about each observed file, by index into `obs`.
#[derive(Default)]
struct Lookups {
    /// (obs, package, DB path) with the same bytes.
    by_content: Vec<(usize, i64, String)>,
    /// (obs, package, DB path) with the same build-id.
    by_build_id: Vec<(usize, i64, String)>,
    /// Builds that ship one of the file's paths.
    by_path: Vec<AtPath>,
    /// (obs, package, how) whose build at the file's path has the same
    /// loaded sections or the same code (function set) though other bytes:
    /// symbols or notes stripped.
    by_code: Vec<(usize, i64, Match)>,
    /// ELF files without a byte or build-id match, by obs: their function
    /// sets and how they compare with each build shipping their path.
    functions: HashMap<usize, FileFunctions>,
}

/// (obs, package, conffile, content): a build that ships an observed
/// file's path, and what it ships there.
type AtPath = (usize, i64, bool, Option<i64>);

impl Lookups {
    fn package_ids(&self) -> BTreeSet<i64> {
        self.by_content
            .iter()
            .map(|r| r.1)
            .chain(self.by_build_id.iter().map(|r| r.1))
            .chain(self.by_path.iter().map(|r| r.1))
            .collect()
    }
}

fn lookup(db: &Db, obs: &[Obs], links: &[(String, String)]) -> Result<Lookups> {
    // Content and build-id look-ups on this connection, path look-ups on a
    // second one in parallel: by now the layers are read and both cores
    // are free.
    let second = db.reopen()?;
    let (paths, mut out) = std::thread::scope(|s| {
        let paths = s.spawn(move || lookup_paths(&second, obs, links));
        let out = lookup_content(db, obs);
        (paths.join(), out)
    });
    let paths = paths.unwrap_or_else(|_| Ok(Vec::new()))?;
    if let Ok(o) = out.as_mut() {
        o.by_path = paths;
    }
    out
}

/// Same bytes and same build-ids. Observed values go to SQLite as arrays
/// (carray), so one query per kind looks them all up through the indexes,
/// and answers map back by value. CROSS JOIN pins the array as the outer
/// loop: each value is one index probe, whatever the size of the DB.
fn lookup_content(db: &Db, obs: &[Obs]) -> Result<Lookups> {
    let c = &db.conn;
    let e = |err| db.err(err);
    rusqlite::vtab::array::load_module(c).map_err(e)?;
    let mut by_sha: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut by_bid: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, o) in obs.iter().enumerate() {
        by_sha.entry(&o.sha[..]).or_default().push(i);
        if let Some(b) = &o.build_id {
            by_bid.entry(&b[..]).or_default().push(i);
        }
    }
    let mut out = Lookups::default();
    for (sql, keys, dest) in [
        (
            "SELECT c.sha256, f.package_id, p.path FROM rarray(?1) AS a
             CROSS JOIN content c ON c.sha256 = a.value
             JOIN file f ON f.content_id = c.id
             JOIN path p ON p.id = f.path_id",
            &by_sha,
            &mut out.by_content,
        ),
        (
            "SELECT x.build_id, f.package_id, p.path FROM rarray(?1) AS a
             CROSS JOIN elf x ON x.build_id = a.value
             JOIN file f ON f.content_id = x.content_id
             JOIN path p ON p.id = f.path_id",
            &by_bid,
            &mut out.by_build_id,
        ),
    ] {
        let mut q = c.prepare(sql).map_err(e)?;
        let rows = q
            .query_map([rarray(keys.keys().map(|k| k.to_vec()))], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(e)?;
        for row in rows {
            let (key, pid, path) = row.map_err(e)?;
            for i in keys.get(&key[..]).into_iter().flatten() {
                dest.push((*i, pid, path.clone()));
            }
        }
    }
    Ok(out)
}

/// Package builds that ship each observed path (or its usrmerge alias).
fn lookup_paths(db: &Db, obs: &[Obs], links: &[(String, String)]) -> Result<Vec<AtPath>> {
    let c = &db.conn;
    let e = |err| db.err(err);
    rusqlite::vtab::array::load_module(c).map_err(e)?;
    let mut by_path: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, o) in obs.iter().enumerate() {
        for a in aliases(&o.path, links) {
            by_path.entry(a).or_default().push(i);
        }
    }
    let paths = rarray(by_path.keys().cloned());
    let mut q = c
        .prepare(
            "SELECT p.path, f.package_id, f.conffile, f.content_id FROM rarray(?1) AS a
             CROSS JOIN path p ON p.path = a.value
             JOIN file f ON f.path_id = p.id
             WHERE f.kind IN ('f', 'h')",
        )
        .map_err(e)?;
    let rows = q
        .query_map([paths], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)? != 0,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .map_err(e)?;
    let mut out = Vec::new();
    for row in rows {
        let (path, pid, conf, content) = row.map_err(e)?;
        for i in by_path.get(&path).into_iter().flatten() {
            out.push((*i, pid, conf, content));
        }
    }
    Ok(out)
}

fn load_packages(db: &Db, ids: &BTreeSet<i64>) -> Result<HashMap<i64, Pkg>> {
    let e = |err| db.err(err);
    let mut stmt = db
        .conn
        .prepare(
            "SELECT name, version, arch, source, source_version,
                    (SELECT count(*) FROM file f WHERE f.package_id = package.id AND f.kind IN ('f', 'h')),
                    ecosystem
             FROM package WHERE id = ?1",
        )
        .map_err(e)?;
    let mut out = HashMap::new();
    for id in ids {
        let p = stmt
            .query_row([id], |r| {
                Ok(Pkg {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    arch: r.get(2)?,
                    source: r.get(3)?,
                    source_version: r.get(4)?,
                    regular_files: r.get::<_, i64>(5)? as usize,
                    ecosystem: r.get(6)?,
                })
            })
            .map_err(e)?;
        out.insert(*id, p);
    }
    Ok(out)
}

type Key = (String, String); // (name, arch)

fn resolve(obs: &[Obs], l: &Lookups, pkgs: &HashMap<i64, Pkg>) -> Identification {
    let key = |id: &i64| -> Key { (pkgs[id].name.clone(), pkgs[id].arch.clone()) };
    // Per observed file: the best match for each package build.
    let mut support: Vec<BTreeMap<i64, Match>> = vec![BTreeMap::new(); obs.len()];
    let mut at_path: Vec<HashSet<i64>> = vec![HashSet::new(); obs.len()];
    let mut conffile: Vec<HashSet<i64>> = vec![HashSet::new(); obs.len()];
    for (i, pid, conf, _) in &l.by_path {
        at_path[*i].insert(*pid);
        if *conf {
            conffile[*i].insert(*pid);
        }
    }
    let upgrade = |m: &mut BTreeMap<i64, Match>, pid: i64, how: Match| {
        let slot = m.entry(pid).or_insert(how);
        if how < *slot {
            *slot = how;
        }
    };
    for (i, pid, _db_path) in &l.by_content {
        let same_place = at_path[*i].contains(pid);
        let how = if same_place {
            Match::FileSha256
        } else if obs[*i].size >= MIN_RENAMED_SIZE {
            Match::FileSha256Renamed
        } else {
            continue;
        };
        upgrade(&mut support[*i], *pid, how);
    }
    for (i, pid, _db_path) in &l.by_build_id {
        let how = if at_path[*i].contains(pid) {
            Match::ElfBuildId
        } else {
            Match::FileSha256Renamed
        };
        upgrade(&mut support[*i], *pid, how);
    }
    for (i, pid, how) in &l.by_code {
        upgrade(&mut support[*i], *pid, *how);
    }
    // A file found in place for some package is not also evidence of a
    // renamed copy in another package.
    for s in support.iter_mut() {
        if s.values().any(|m| *m != Match::FileSha256Renamed) {
            s.retain(|_, m| *m != Match::FileSha256Renamed);
        }
    }
    // Anchors: files whose supporting builds all share one (name, arch).
    let mut anchored: HashSet<Key> = HashSet::new();
    for s in &support {
        let keys: HashSet<Key> = s.keys().map(key).collect();
        if keys.len() == 1 {
            anchored.extend(keys);
        }
    }
    // A file no build's bytes explain, at a path that only one package
    // name ships (conffiles aside), still says that package is here — at a
    // version the DB does not have.
    for (i, s) in support.iter().enumerate() {
        if !s.is_empty() {
            continue;
        }
        let keys: HashSet<Key> = at_path[i]
            .iter()
            .filter(|pid| !conffile[i].contains(pid))
            .map(key)
            .collect();
        if keys.len() == 1 {
            anchored.extend(keys);
        }
    }
    // Tally support and contradictions per build of each anchored key.
    let mut versions: BTreeMap<Key, BTreeSet<i64>> = BTreeMap::new();
    for id in pkgs.keys() {
        let k = key(id);
        if anchored.contains(&k) {
            versions.entry(k).or_default().insert(*id);
        }
    }
    let mut sup_count: HashMap<i64, usize> = HashMap::new();
    let mut contra: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, s) in support.iter().enumerate() {
        for pid in s.keys() {
            *sup_count.entry(*pid).or_default() += 1;
        }
        for pid in &at_path[i] {
            if !s.contains_key(pid) && !conffile[i].contains(pid) {
                contra.entry(*pid).or_default().push(i);
            }
        }
    }
    // First pass: settle what the bytes settle alone.
    struct Draft {
        fit: Vec<i64>,
        not_in_db: bool,
        nearest: Option<i64>,
    }
    let by_version_desc = |a: &i64, b: &i64| dpkg_cmp(&pkgs[b].version, &pkgs[a].version);
    // Per build, how close the code of the files that differ is (summed
    // Jaccard similarity of their function sets): among equally explained
    // builds, the nearest to a version the DB lacks.
    let mut closeness: HashMap<i64, f64> = HashMap::new();
    for (pid, jaccard, _) in l.functions.values().flat_map(|f| f.builds.iter()) {
        *closeness.entry(*pid).or_default() += jaccard;
    }
    let mut drafts: BTreeMap<Key, Draft> = BTreeMap::new();
    for (k, ids) in &versions {
        let consistent: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| {
                contra.get(id).is_none_or(Vec::is_empty)
                    && sup_count.get(id).copied().unwrap_or(0) > 0
            })
            .collect();
        if consistent.is_empty() {
            let score = |id: &i64| {
                sup_count.get(id).copied().unwrap_or(0) as i64
                    - contra.get(id).map_or(0, |c| c.len() as i64)
            };
            let closeness = |id: &i64| closeness.get(id).copied().unwrap_or(0.0);
            let mut all: Vec<i64> = ids.iter().copied().collect();
            all.sort_by(|a, b| {
                score(b)
                    .cmp(&score(a))
                    .then_with(|| closeness(b).total_cmp(&closeness(a)))
                    .then_with(|| by_version_desc(a, b))
            });
            drafts.insert(
                k.clone(),
                Draft {
                    fit: Vec::new(),
                    not_in_db: true,
                    nearest: all.first().copied(),
                },
            );
            continue;
        }
        let best = consistent.iter().map(|id| sup_count[id]).max().unwrap_or(0);
        let mut fit: Vec<i64> = consistent
            .into_iter()
            .filter(|id| sup_count[id] == best)
            .collect();
        fit.sort_by(by_version_desc);
        drafts.insert(
            k.clone(),
            Draft {
                fit,
                not_in_db: false,
                nearest: None,
            },
        );
    }
    // Second pass: source coherence breaks ties, repeated until stable.
    let mut coherent: HashMap<Key, String> = HashMap::new();
    loop {
        let settled: HashMap<String, BTreeSet<String>> = drafts
            .values()
            .filter(|d| d.fit.len() == 1)
            .map(|d| &pkgs[&d.fit[0]])
            .fold(HashMap::new(), |mut m, p| {
                m.entry(p.source.clone())
                    .or_default()
                    .insert(p.source_version.clone());
                m
            });
        let mut changed = false;
        for (k, d) in drafts.iter_mut() {
            if d.fit.len() < 2 {
                continue;
            }
            let src = &pkgs[&d.fit[0]].source;
            let Some(svs) = settled.get(src).filter(|s| s.len() == 1) else {
                continue;
            };
            let sv = svs.iter().next().cloned().unwrap_or_default();
            let narrowed: Vec<i64> = d
                .fit
                .iter()
                .copied()
                .filter(|id| pkgs[id].source_version == sv)
                .collect();
            if narrowed.len() == 1 {
                d.fit = narrowed;
                coherent.insert(k.clone(), format!("source {src} {sv}"));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Report.
    let mut explained = vec![false; obs.len()];
    let mut packages = Vec::new();
    for (k, d) in &drafts {
        let chosen: Vec<i64> = if d.not_in_db {
            d.nearest.into_iter().collect()
        } else {
            d.fit.clone()
        };
        let Some(first) = chosen.first().map(|id| &pkgs[id]) else {
            continue;
        };
        let mut occurrences = Vec::new();
        let mut contradictions = Vec::new();
        let all_ids = &versions[k];
        // ELF files matched by code only, and by bytes or build-id.
        let (mut elf_by_code, mut elf_by_identity) = (0usize, 0usize);
        for (i, s) in support.iter().enumerate() {
            // Evidence for the name: any build of it.
            let best = all_ids.iter().filter_map(|id| s.get(id)).min();
            if let Some(m) = best {
                if chosen.iter().any(|id| s.contains_key(id)) || d.not_in_db {
                    occurrences.push((format!("/{}", obs[i].path), obs[i].layer, *m));
                    explained[i] = true;
                    if obs[i].elf {
                        match m {
                            Match::ElfLoadedBytes | Match::ElfFunctions => elf_by_code += 1,
                            _ => elf_by_identity += 1,
                        }
                    }
                }
            }
        }
        let mut contradictions_idx = BTreeSet::new();
        if d.not_in_db {
            for id in all_ids {
                for i in contra.get(id).into_iter().flatten() {
                    if support[*i].keys().all(|p| !all_ids.contains(p))
                        && contradictions_idx.insert(*i)
                    {
                        contradictions.push((format!("/{}", obs[*i].path), obs[*i].layer));
                        explained[*i] = true;
                    }
                }
            }
        }
        let resolution = if d.not_in_db {
            Resolution::VersionNotInDb
        } else if chosen.len() > 1 {
            Resolution::VersionSet
        } else if coherent.contains_key(k) {
            Resolution::ExactBySourceCoherence
        } else {
            Resolution::Exact
        };
        let mut notes = Vec::new();
        if let Some(c) = coherent.get(k) {
            notes.push(format!(
                "bytes fit several versions; source coherence ({c}, shared by its other binary packages) chose this one"
            ));
        }
        let discriminating = !d.not_in_db
            && chosen.len() == 1
            && all_ids.len() > 1
            && all_ids.iter().filter(|id| **id != chosen[0]).all(|id| {
                sup_count.get(id).copied().unwrap_or(0) < sup_count[&chosen[0]]
                    || contra.get(id).is_some_and(|c| !c.is_empty())
            });
        let confidence = match resolution {
            Resolution::Exact if discriminating || all_ids.len() == 1 => 0.95,
            Resolution::Exact => 0.9,
            Resolution::ExactBySourceCoherence => 0.8,
            Resolution::VersionSet => 0.6,
            Resolution::VersionNotInDb => 0.5,
        };
        // Code proves the code, not the build: a later revision rebuilt
        // from unchanged code (and stripped of its build-id) looks the same.
        let code_only = elf_by_code > 0 && elf_by_identity == 0;
        let confidence = if code_only && !d.not_in_db {
            notes.push(
                "its ELF files match by code only (no file hash or build-id): a rebuild of the same code at a revision the DB lacks would look the same"
                    .into(),
            );
            f64::min(confidence, 0.7)
        } else {
            confidence
        };
        if d.not_in_db {
            notes.push(format!(
                "{} file(s) match no known version; nearest known version {}",
                contradictions.len(),
                first.version
            ));
        }
        packages.push(Identified {
            ecosystem: first.ecosystem.clone(),
            name: k.0.clone(),
            arch: k.1.clone(),
            source: first.source.clone(),
            version: (resolution != Resolution::VersionNotInDb && chosen.len() == 1)
                .then(|| first.version.clone()),
            source_version: (chosen.len() == 1 && !d.not_in_db)
                .then(|| first.source_version.clone()),
            candidate_versions: if d.not_in_db {
                Vec::new()
            } else {
                chosen.iter().map(|id| pkgs[id].version.clone()).collect()
            },
            nearest_version: d.not_in_db.then(|| first.version.clone()),
            version_range: if d.not_in_db {
                code_range(all_ids, &contradictions_idx, l, pkgs)
            } else if chosen.len() > 1 {
                Some(crate::range::set(
                    "deb",
                    chosen.iter().map(|id| pkgs[id].version.as_str()),
                ))
            } else {
                None
            },
            occurrences,
            contradictions,
            files_total: first.regular_files,
            confidence,
            notes,
            resolution,
        });
    }
    // Debian builds are reproducible: a binary whose bytes did not change
    // between two revisions fits both. Binary packages of one source share
    // its version, so when siblings match no known version this one is
    // most likely at that unknown version too, with bytes identical to an
    // older build: report that build as the nearest, never as exact.
    let unknown_sources: HashSet<String> = packages
        .iter()
        .filter(|p| p.resolution == Resolution::VersionNotInDb)
        .map(|p| p.source.clone())
        .collect();
    for p in packages.iter_mut() {
        let exact = matches!(
            p.resolution,
            Resolution::Exact | Resolution::ExactBySourceCoherence
        );
        if exact && unknown_sources.contains(&p.source) {
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
