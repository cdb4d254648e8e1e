//! Identification: which packages, at which exact versions, explain the
//! files of a squashed tree — from the bytes alone.
//!
//! For every regular file the tree's content digest (and ELF build-id) is looked
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

//!
//! The stages are modules: [`lookup`] asks a [`SignatureLookup`] about
//! every file in batches, [`code`] compares ELF files by code when their
//! bytes match nothing, and [`resolve`] turns the answers into packages,
//! one pure function per phase.

use std::collections::{HashMap, HashSet};

use kiln_catalog::{Ecosystem, Resolution, Technique};
use kiln_fingerprint::ElfInfo;
use kiln_tree::{Kind, Tree};
use serde::Serialize;

use crate::error::Result;

mod ahead;
mod code;
mod lookup;
mod report;
mod resolve;
mod store;
#[cfg(test)]
mod tests;

pub use ahead::{Answers, FileSender, LookAhead};
pub use lookup::{Build, BuildId, ContentId, KeyHit, PathHit, SignatureLookup, StoredCode};

/// One observed regular file.
#[derive(Debug, Clone, Default)]
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

/// How one file supports a package build, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Match {
    /// Same bytes at the same path.
    FileDigest,
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
    FileDigestRenamed,
}

impl Match {
    /// The technique this match is an instance of.
    pub fn technique(self) -> Technique {
        match self {
            Match::FileDigest => Technique::FileDigest,
            Match::ElfBuildId => Technique::ElfBuildId,
            Match::ElfLoadedBytes => Technique::ElfLoadedBytes,
            Match::ElfFunctions => Technique::ElfFunctions,
            Match::FileDigestRenamed => Technique::FileDigestRenamed,
        }
    }

    /// How much one such match is worth on its own.
    pub fn confidence(self) -> f64 {
        match self {
            Match::FileDigest => 0.99,
            Match::ElfBuildId => 0.97,
            Match::ElfLoadedBytes => 0.95,
            Match::ElfFunctions => 0.85,
            Match::FileDigestRenamed => 0.9,
        }
    }

    /// A match by code only, not by the file's bytes or build-id.
    fn by_code(self) -> bool {
        matches!(self, Match::ElfLoadedBytes | Match::ElfFunctions)
    }
}

/// One package identified from bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Identified {
    /// The package's ecosystem: Debian packages, or Python for wheels.
    pub ecosystem: Ecosystem,
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
    /// How the version was settled: `Exact`, `ExactBySourceCoherence`,
    /// `VersionSet` or `VersionNotInDb`.
    pub resolution: Resolution,
    /// Versions the bytes fit (one for exact resolutions).
    pub candidate_versions: Vec<String>,
    /// For `VersionNotInDb`, the known version explaining the most files.
    pub nearest_version: Option<String>,
    /// The versions the evidence allows, as a `vers:` range in the
    /// ecosystem's scheme: the tied versions of a version set, or for
    /// `VersionNotInDb` the known versions the installed one must lie
    /// between, from which functions of the files first and last appear.
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

/// Every path a package may record for the file at `path`: the path
/// itself, its usrmerge twins, for a file in a Python site directory its
/// path there (`idna/core.py`, as wheels record it), and for a file in an
/// npm package directory its path there (`/lib/index.js`, as kiln records
/// npm tarballs) — so a file that differs from a wheel's or a tarball's
/// at the same place contradicts that version.
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
    if let Some(rest) = site_relative(path) {
        out.push(rest.to_string());
    }
    if let Some(root) = npm_root(path) {
        out.push(path[root.len()..].to_string());
    }
    out
}

/// The part of `path` below its innermost `site-packages` or
/// `dist-packages` directory.
fn site_relative(path: &str) -> Option<&str> {
    ["site-packages/", "dist-packages/"]
        .iter()
        .filter_map(|dir| {
            let at = path.rfind(dir)?;
            (at == 0 || path.as_bytes()[at - 1] == b'/').then(|| &path[at + dir.len()..])
        })
        .min_by_key(|rest| rest.len())
        .filter(|rest| !rest.is_empty())
}

/// The tree's regular files with what identification needs of each.
fn observe(tree: &Tree) -> Vec<Obs> {
    tree.iter()
        .filter(|(_, e)| e.is_file())
        .filter_map(|(p, e)| {
            let elf = e.facts::<ElfInfo>();
            Some(Obs {
                path: p.to_string(),
                sha: e.digest?,
                build_id: elf.and_then(|i| i.build_id.clone()),
                layer: e.layer,
                size: e.size,
                elf: elf.is_some(),
                loaded: elf.and_then(|i| i.loaded),
            })
        })
        .collect()
}

/// Identify the packages in `tree` against the signatures in `db`. The
/// tree must have been built with hashing on and, for build-id matching,
/// an inspector that stores [`ElfInfo`] facts.
///
/// npm installs several versions of one package side by side, where a
/// distribution installs one: npm packages are therefore resolved once
/// per package directory (`…/node_modules/[@scope/]NAME`), every other
/// ecosystem once over the whole tree. Both passes see every path alias,
/// so a Debian package's file under `node_modules` still counts for the
/// Debian package.
pub fn identify<L: SignatureLookup + Send>(db: &L, tree: &Tree) -> Result<Identification> {
    identify_with(db, tree, None)
}

/// [`identify`], with what a [`LookAhead`] already asked while the tree
/// was built: the store is asked only for the rest.
pub fn identify_with<L: SignatureLookup + Send>(
    db: &L,
    tree: &Tree,
    known: Option<&Answers>,
) -> Result<Identification> {
    let links = dir_links(tree);
    let obs = observe(tree);
    let mut found = identify_observed(db, tree, &obs, &links, true, known)?;
    found.packages.retain(|p| p.ecosystem != Ecosystem::Npm);
    let groups = npm_groups(&obs);
    if groups.is_empty() {
        return Ok(found);
    }
    let explained: HashSet<String> = found
        .packages
        .iter()
        .flat_map(|p| p.occurrences.iter().map(|o| o.0.clone()))
        .collect();
    found
        .unexplained
        .retain(|p| npm_root(p.trim_start_matches('/')).is_none());
    for group in groups.into_values() {
        let mut more = identify_observed(db, tree, &group, &[], false, known)?;
        more.packages.retain(|p| p.ecosystem == Ecosystem::Npm);
        let ours: HashSet<&str> = more
            .packages
            .iter()
            .flat_map(|p| p.occurrences.iter().map(|o| o.0.as_str()))
            .collect();
        found.unexplained.extend(
            group
                .iter()
                .map(|o| format!("/{}", o.path))
                .filter(|p| !ours.contains(p.as_str()) && !explained.contains(p)),
        );
        found.packages.extend(more.packages);
    }
    found
        .packages
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    found.unexplained.sort();
    Ok(found)
}

/// The npm package directory a path lies in: up to the package name
/// after its last `node_modules/` (two segments for a scope).
fn npm_root(path: &str) -> Option<&str> {
    let at = path.rfind("node_modules/")? + "node_modules/".len();
    let rest = &path[at..];
    let mut segs = rest.splitn(3, '/');
    let first = segs.next()?;
    if first.starts_with('.') {
        return None;
    }
    let len = if first.starts_with('@') {
        first.len() + 1 + segs.next()?.len()
    } else {
        first.len()
    };
    // A file inside the package, not the directory entry itself.
    (rest.len() > len + 1).then(|| &path[..at + len])
}

/// The observations inside npm package directories, by directory.
fn npm_groups(obs: &[Obs]) -> std::collections::BTreeMap<&str, Vec<Obs>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<Obs>> = Default::default();
    for o in obs {
        if let Some(root) = npm_root(&o.path) {
            groups.entry(root).or_default().push(o.clone());
        }
    }
    groups
}

/// Identify one set of observations; `code` also compares ELF files by
/// code (once per tree is enough).
fn identify_observed<L: SignatureLookup + Send>(
    db: &L,
    tree: &Tree,
    obs: &[Obs],
    links: &[(String, String)],
    code: bool,
    known: Option<&Answers>,
) -> Result<Identification> {
    let mut lookups = lookup::gather(db, obs, links, known)?;
    if code {
        code::lookup_functions(db, tree, obs, &mut lookups)?;
    }
    let builds = lookup::builds(db, &lookups.build_ids(), known)?;
    let mut found = resolve::resolve(obs, &lookups, &builds);
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
