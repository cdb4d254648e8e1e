//! Vendored and statically linked components: upstream projects found
//! inside ELF files by the templates the DB learned (see [`crate::learn`]).
//!
//! Evidence per file and project, strongest first:
//!
//! | technique          | what                                                   | weight |
//! |--------------------|--------------------------------------------------------|--------|
//! | `version-function` | a learned function (`WebPGetDecoderVersion`) decodes   | 0.9    |
//! | `version-string`   | a specific learned string (`OpenSSL (VER) <date>`)     | 0.8    |
//! | `library-name`     | the file's library name (`libtiff-0709261b.so.6.1.0`)  | 0.5    |
//! | `weak-string`      | a template other projects share (`^(VER)$`)            | 0.3    |
//! | `sibling`          | a library beside it of the same project has a version  | 0.5    |
//! | `needed-only-by`   | an unknown library only one project's libraries load   | 0.4    |
//!
//! A project is reported only with evidence of weight ≥ 0.4: weak strings
//! never name a project alone, they only supply a version to a project
//! something stronger named. When functions whose encodings the DB cannot
//! tell apart decode to different versions, none of them is believed.

use std::collections::{BTreeMap, HashMap, HashSet};

use kiln_catalog::Technique;
use kiln_fingerprint::ElfInfo;
use regex::Regex;
use serde::Serialize;

use crate::db::Db;
use crate::error::{RainbowError, Result};
use crate::learn::{self, IntEncoding, TemplateKind};
use crate::patterns::{LazyRegex, PatternSets};
use crate::project::library_name;

/// Weight of the clues that read a version reliably on their own (version
/// functions, specific version strings).
const STRONG: f64 = 0.8;

/// Strength of two different kinds of weak clue for one project.
const CORROBORATED: f64 = 0.5;

/// Least literal context for a string template to name a project alone.
const MIN_LITERAL: usize = 5;

#[derive(Debug, Clone)]
struct Tpl {
    project: String,
    kind: TemplateKind,
    pattern: String,
    versions: i64,
    others: i64,
}

impl Tpl {
    /// A string template no other project's files match, with enough
    /// literal context to name its project alone.
    fn specific(&self) -> bool {
        self.others == 0 && learn::literal_len(&self.pattern) >= MIN_LITERAL
    }
}

/// The string templates, compiled and indexed (to find which match, and
/// each one's capture).
#[derive(Debug)]
struct Compiled {
    sets: PatternSets,
    /// Per string template: does a hit name its project alone?
    specific: Vec<bool>,
    /// Per string template: its project, as an index into `projects`.
    project: Vec<usize>,
    /// The string templates' projects, each once.
    projects: Vec<String>,
    /// Project -> its index in `projects`.
    ids: HashMap<String, usize>,
}

/// The templates of a DB, compiled for scanning.
#[derive(Debug)]
pub struct Templates {
    strings: Vec<Tpl>,
    /// Compiled on first use (or ahead of time by [`Templates::compile`]
    /// on another thread while layers stream): the string regexes and
    /// their set.
    compiled: std::sync::OnceLock<std::result::Result<Compiled, String>>,
    functions: HashMap<String, Vec<(Tpl, Option<LazyRegex>)>>,
    libnames: HashMap<String, Vec<Tpl>>,
}

impl Templates {
    /// Load and compile every template in `db`.
    pub fn load(db: &Db) -> Result<Templates> {
        let mut t = Templates {
            strings: Vec::new(),
            compiled: std::sync::OnceLock::new(),
            functions: HashMap::new(),
            libnames: HashMap::new(),
        };
        if !db.conn.has_table("template")? {
            return Ok(t);
        }
        let mut rows = db.conn.query(
            "SELECT project, kind, symbol, pattern, versions, others FROM template",
            &[],
        )?;
        // Engines return rows in different orders; matching must not
        // depend on it.
        rows.sort();
        for r in rows {
            let (symbol, kind) = (r.text(2)?, r.text(1)?);
            let tpl = Tpl {
                project: r.text(0)?,
                kind: TemplateKind::String,
                pattern: r.text(3)?,
                versions: r.int(4)?,
                others: r.int(5)?,
            };
            let kind = TemplateKind::parse(&kind).ok_or_else(|| RainbowError::Corrupt {
                db: db.location().to_string(),
                reason: format!("template of unknown kind {kind:?}"),
            })?;
            let tpl = Tpl { kind, ..tpl };
            match tpl.kind {
                TemplateKind::String => t.strings.push(tpl),
                TemplateKind::Libname => t.libnames.entry(symbol).or_default().push(tpl),
                TemplateKind::FnStr => {
                    let re = LazyRegex::new(&tpl.pattern).map_err(|e| RainbowError::Corrupt {
                        db: db.location().to_string(),
                        reason: e,
                    })?;
                    t.functions.entry(symbol).or_default().push((tpl, Some(re)));
                }
                TemplateKind::FnInt
                | TemplateKind::StoreArgs
                | TemplateKind::StoreInt
                | TemplateKind::StoreSeq => {
                    t.functions.entry(symbol).or_default().push((tpl, None))
                }
            }
        }
        Ok(t)
    }

    /// Compile the string templates (about 30 ms for a Debian-sized DB);
    /// call it early on a spare thread so matching does not wait. An
    /// invalid pattern is an error, never a silently disabled template.
    pub fn compile(&self) -> Result<()> {
        self.compiled().map(|_| ())
    }

    fn compiled(&self) -> Result<&Compiled> {
        let c = self.compiled.get_or_init(|| {
            let patterns: Vec<&str> = self.strings.iter().map(|t| t.pattern.as_str()).collect();
            let mut ids: HashMap<&str, usize> = HashMap::new();
            let project = self
                .strings
                .iter()
                .map(|t| {
                    let next = ids.len();
                    *ids.entry(t.project.as_str()).or_insert(next)
                })
                .collect();
            let mut projects = vec![String::new(); ids.len()];
            for (name, id) in &ids {
                projects[*id] = name.to_string();
            }
            let ids = ids.into_iter().map(|(n, i)| (n.to_string(), i)).collect();
            Ok(Compiled {
                sets: PatternSets::build(&patterns)?,
                specific: self.strings.iter().map(Tpl::specific).collect(),
                project,
                projects,
                ids,
            })
        });
        c.as_ref().map_err(|e| RainbowError::Template(e.clone()))
    }

    /// Does any template read function `name`? (Which functions a scan
    /// must evaluate.)
    pub fn wants(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// No templates at all (a DB built before schema 2).
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty() && self.functions.is_empty() && self.libnames.is_empty()
    }
}

/// One piece of evidence for a component.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Clue {
    /// How it was found: a version function, a version string (specific or
    /// weak), a library name, a sibling or a sole user.
    pub technique: Technique,
    /// What was seen: the string, `symbol() = value`, the file name.
    pub detail: String,
    /// The version it reads, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Weight of this clue.
    pub weight: f64,
}

/// An upstream project found inside one file.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// Canonical project name (`openssl`, `libjpeg-turbo`).
    pub project: String,
    /// Upstream version, when the evidence gives one.
    pub version: Option<String>,
    /// The file it was found in.
    pub path: String,
    /// Layer of that file.
    pub layer: Option<usize>,
    /// 0..1.
    pub confidence: f64,
    /// All clues, strongest first.
    pub clues: Vec<Clue>,
    /// When strong clues (version functions, specific version strings)
    /// read different versions: those versions, and no `version`.
    pub candidates: Vec<String>,
    /// Clues that read another version than the one reported, in words.
    pub disagreements: Vec<String>,
}

/// A file to look into.
pub struct FileClues<'a> {
    /// Absolute path.
    pub path: &'a str,
    /// Layer.
    pub layer: Option<usize>,
    /// ELF facts with clues.
    pub elf: &'a ElfInfo,
    /// The project of the package the file belongs to, if an identified
    /// package explains it: components of that same project are the
    /// package itself and are not reported again.
    pub owner_project: Option<String>,
}

/// What each file's own clues say, file by file, whoever owns the file:
/// the costly part of finding components (patterns over strings,
/// function constants decoded). It needs no identification, so a scan
/// runs it while identification runs.
pub fn read_components(t: &Templates, files: &[FileClues<'_>]) -> Result<Vec<Vec<Component>>> {
    use rayon::prelude::*;
    let compiled = t.compiled()?;
    Ok(files
        .par_iter()
        .map(|f| {
            let mut by: BTreeMap<String, Vec<Clue>> = BTreeMap::new();
            libname_clues(t, f, &mut by);
            if let Some(c) = &f.elf.clues {
                function_clues(t, c, &mut by);
                string_clues(t, compiled, c, &mut by);
            }
            by.into_iter()
                .filter_map(|(project, clues)| settle(project, f.path, f.layer, clues))
                .collect()
        })
        .collect())
}

/// The components in `files`, from what [`read_components`] read of them,
/// now that their owners are known: a component of the owner's own
/// project is the owner itself, not something it vendors.
pub fn settle_components(
    t: &Templates,
    files: &[FileClues<'_>],
    read: Vec<Vec<Component>>,
) -> Vec<Component> {
    let mut out: Vec<Component> = files
        .iter()
        .zip(read)
        .flat_map(|(f, found)| {
            found
                .into_iter()
                .filter(|c| f.owner_project.as_deref() != Some(c.project.as_str()))
        })
        .collect();
    shared_names(t, files, &mut out);
    needed_only_by(t, files, &mut out);
    siblings(&mut out);
    out.sort_by(|a, b| (&a.path, &a.project).cmp(&(&b.path, &b.project)));
    out
}

fn libname_clues(t: &Templates, f: &FileClues<'_>, by: &mut BTreeMap<String, Vec<Clue>>) {
    let file_name = f.path.rsplit('/').next().unwrap_or(f.path);
    let names = [Some(file_name), f.elf.soname.as_deref()];
    for name in names.into_iter().flatten() {
        let Some((base, fv)) = library_name(name) else {
            continue;
        };
        let Some(tpls) = t.libnames.get(&base) else {
            continue;
        };
        let shared = tpls.len() > 1;
        for tpl in tpls {
            let clues = by.entry(tpl.project.clone()).or_default();
            if clues.iter().any(|c| c.technique == Technique::LibraryName) {
                continue;
            }
            let version = (!tpl.pattern.is_empty())
                .then(|| learn::apply_relation(&tpl.pattern, &fv))
                .flatten();
            clues.push(Clue {
                technique: Technique::LibraryName,
                detail: name.to_string(),
                weight: if shared { 0.3 } else { 0.5 },
                version,
            });
        }
    }
}

fn function_clues(
    t: &Templates,
    c: &kiln_fingerprint::Clues,
    by: &mut BTreeMap<String, Vec<Clue>>,
) {
    for f in &c.functions {
        let Some(tpls) = t.functions.get(&f.name) else {
            continue;
        };
        // Per project: the decodes of the best-attested encodings.
        let mut per: BTreeMap<&str, Vec<(i64, u32, String, String)>> = BTreeMap::new();
        let mut regular: BTreeMap<&str, i64> = BTreeMap::new();
        for (tpl, re) in tpls {
            if tpl_is_regular(tpl) {
                let best = regular.entry(&tpl.project).or_insert(tpl.versions);
                *best = (*best).max(tpl.versions);
            }
            for (version, detail, odd) in
                read_function(tpl, re.as_ref().and_then(LazyRegex::get), f)
            {
                per.entry(&tpl.project)
                    .or_default()
                    .push((tpl.versions, odd, version, detail));
            }
        }
        for (project, reads) in per {
            let regular = regular.get(project).copied();
            let Some((version, detail)) = settle_reads(reads, regular) else {
                continue;
            };
            by.entry(project.to_string()).or_default().push(Clue {
                technique: Technique::VersionFunction,
                detail,
                version: Some(version),
                weight: 0.9,
            });
        }
    }
}

/// One version from a function's reads (support, oddness, version,
/// detail): the best-attested encodings must agree. One observed version
/// fits several encodings; when one of them is perfectly regular (a byte
/// or two decimal digits per field: `1.0.0` as `0x010000`), upstream keeps
/// that one across releases and it alone reads. OpenSSL's `0x30000110`
/// fits none regularly, so its readings must agree or read nothing.
///
/// `regular` is the support of the project's best regular integer encoding
/// for this function, whether or not it read: when that encoding declines a
/// value (libunistring's `0x000909` has a field `x:16,8` learned from 1.0
/// lacks), an odd sibling from the same observation (`x:16,0`, reading
/// `0.2313`) must not read in its place.
fn settle_reads(
    mut reads: Vec<(i64, u32, String, String)>,
    regular: Option<i64>,
) -> Option<(String, String)> {
    let best = reads.iter().map(|r| r.0).max()?;
    reads.retain(|r| r.0 == best);
    // Oddness 0 or 1: equal natural field widths (see
    // `IntEncoding::regular`).
    if reads.iter().any(|r| r.1 <= 1) || regular.is_some_and(|s| s >= best) {
        reads.retain(|r| r.1 <= 1);
    }
    reads.sort_by(|a, b| a.2.cmp(&b.2));
    reads.dedup_by(|a, b| a.2 == b.2);
    match reads.as_slice() {
        [one] => Some((one.2.clone(), one.3.clone())),
        _ => None,
    }
}

/// An integer template whose encoding has equal natural field widths.
fn tpl_is_regular(tpl: &Tpl) -> bool {
    let enc = match tpl.kind {
        TemplateKind::FnInt => tpl.pattern.as_str(),
        TemplateKind::StoreInt => match tpl.pattern.split_once(':') {
            Some((_, enc)) => enc,
            None => return false,
        },
        _ => return false,
    };
    enc.parse::<IntEncoding>().is_ok_and(|e| e.regular())
}

/// Versions a function template reads from one function: (version,
/// detail, oddness of the encoding).
fn read_function(
    tpl: &Tpl,
    re: Option<&Regex>,
    f: &kiln_fingerprint::FunctionConsts,
) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    match tpl.kind {
        TemplateKind::FnStr => {
            let Some(re) = re else { return out };
            for s in &f.returns_str {
                if let Some(v) = re.captures(s).and_then(|c| c.get(1)) {
                    out.push((v.as_str().to_string(), format!("{}() = \"{s}\"", f.name), 0));
                }
            }
        }
        TemplateKind::FnInt => {
            let Ok(enc) = tpl.pattern.parse::<IntEncoding>() else {
                return out;
            };
            for v in &f.returns {
                if let Some(ver) = enc.decode(*v) {
                    out.push((ver, format!("{}() = {v:#x}", f.name), enc.oddness()));
                }
            }
        }
        TemplateKind::StoreInt => {
            let Some((disp, enc)) = tpl.pattern.split_once(':') else {
                return out;
            };
            let (Ok(disp), Ok(enc)) = (disp.parse::<i64>(), enc.parse::<IntEncoding>()) else {
                return out;
            };
            let mut vals: Vec<u64> = learn::words(&f.stores)
                .into_iter()
                .filter(|(d, _)| *d == disp)
                .map(|(_, v)| v)
                .collect();
            vals.dedup();
            let reads: Vec<String> = vals.iter().filter_map(|v| enc.decode(*v)).collect();
            if let [ver] = reads.as_slice() {
                out.push((
                    ver.clone(),
                    format!("{} stores {} at +{disp:#x}", f.name, vals[0]),
                    enc.oddness(),
                ));
            }
        }
        TemplateKind::StoreArgs => {
            let Some((start, n)) = tpl.pattern.split_once(':') else {
                return out;
            };
            let (Ok(start), Ok(n)) = (start.parse::<u8>(), n.parse::<usize>()) else {
                return out;
            };
            if let Some(ver) = learn::read_args(&f.stores, start, n) {
                out.push((
                    ver.clone(),
                    format!("{} stores {ver} through its arguments", f.name),
                    0,
                ));
            }
        }
        TemplateKind::StoreSeq => {
            let Some((disp, n)) = tpl.pattern.split_once(':') else {
                return out;
            };
            let (Ok(disp), Ok(n)) = (disp.parse::<i64>(), n.parse::<usize>()) else {
                return out;
            };
            if let Some(ver) = learn::read_seq(&f.stores, disp, n) {
                out.push((
                    ver.clone(),
                    format!("{} stores {ver} at +{disp:#x}", f.name),
                    0,
                ));
            }
        }
        _ => {}
    }
    out
}

/// A pattern's hit on a string: the templates it stands for, and the
/// version it read.
type Reading<'a> = (&'a [usize], &'a str);

fn string_clues(
    t: &Templates,
    compiled: &Compiled,
    c: &kiln_fingerprint::Clues,
    by: &mut BTreeMap<String, Vec<Clue>>,
) {
    // Each string's matching patterns, read once for all the projects
    // that share a pattern: (owners, version read).
    let matched: Vec<(&str, Vec<Reading<'_>>)> = c
        .strings
        .iter()
        .map(|s| {
            let hits = compiled.sets.matching(s).into_iter();
            let read =
                hits.filter_map(|(re, owners)| Some((owners, re.captures(s)?.get(1)?.as_str())));
            (s.as_str(), read.collect())
        })
        .collect();
    // A project can settle only with a clue from before or a specific
    // string; a big DB matches a bare `1.2.3` for hundreds of projects
    // that cannot. Projects are independent below, so skipping those
    // changes nothing but the time.
    let mut able = vec![false; compiled.projects.len()];
    for name in by.keys() {
        if let Some(&i) = compiled.ids.get(name) {
            able[i] = true;
        }
    }
    for (_, hits) in &matched {
        for i in hits.iter().flat_map(|(owners, _)| owners.iter()) {
            if compiled.specific[*i] {
                able[compiled.project[*i]] = true;
            }
        }
    }
    let before: Vec<(String, String)> = by
        .iter()
        .flat_map(|(p, clues)| clues.iter().map(move |c| (p.clone(), c.detail.clone())))
        .collect();
    let mut seen: HashSet<(&str, &str)> = before
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_str()))
        .collect();
    let mut strong: HashSet<&str> = before.iter().map(|(p, _)| p.as_str()).collect();
    // Pass 1: every (string, template) hit in order, the first hit per
    // project and string winning, as one clue per detail allows.
    let mut hits: Vec<(usize, &str, &str, bool)> = Vec::new();
    let mut per_string: Vec<(usize, &str)> = Vec::new();
    for (s, read) in &matched {
        for (owners, v) in read {
            let owners = owners.iter().filter(|i| able[compiled.project[**i]]);
            per_string.extend(owners.map(|i| (*i, *v)));
        }
        // In template order, as one pattern per template would give.
        per_string.sort_unstable_by_key(|h| h.0);
        for (i, v) in per_string.drain(..) {
            let tpl = &t.strings[i];
            if !seen.insert((tpl.project.as_str(), s)) {
                continue;
            }
            let specific = compiled.specific[i];
            if specific {
                strong.insert(tpl.project.as_str());
            }
            hits.push((i, s, v, specific));
        }
    }
    // Pass 2: clues, in the same order, for the projects that can settle
    // at all; a project with weak strings alone never does.
    for (i, s, v, specific) in hits {
        let tpl = &t.strings[i];
        if !strong.contains(tpl.project.as_str()) {
            continue;
        }
        by.entry(tpl.project.clone()).or_default().push(Clue {
            technique: if specific {
                Technique::VersionString
            } else {
                Technique::WeakString
            },
            detail: s.to_string(),
            version: Some(v.to_string()),
            weight: if specific { 0.8 } else { 0.3 },
        });
    }
}

/// One component from a file's clues for one project, or none when no
/// clue is strong enough to name the project.
fn settle(
    project: String,
    path: &str,
    layer: Option<usize>,
    mut clues: Vec<Clue>,
) -> Option<Component> {
    let mut strength = clues
        .iter()
        .filter(|c| c.technique != Technique::WeakString)
        .map(|c| c.weight)
        .fold(0.0, f64::max);
    // Two kinds of weak evidence that agree on the project corroborate
    // each other (a library name several projects ship, and a version
    // string other projects' files match too).
    let mut kinds: Vec<Technique> = clues.iter().map(|c| c.technique).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.len() >= 2 {
        strength = strength.max(CORROBORATED);
    }
    if strength < 0.4 {
        return None;
    }
    // Strong clues that read different versions pin none: a set.
    let mut strong: Vec<&str> = clues
        .iter()
        .filter(|c| c.weight >= STRONG)
        .filter_map(|c| c.version.as_deref())
        .collect();
    strong.sort_unstable();
    strong.dedup();
    let candidates: Vec<String> = if strong.len() > 1 {
        strong.iter().map(|v| v.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut votes: BTreeMap<&str, f64> = BTreeMap::new();
    for c in &clues {
        if let Some(v) = &c.version {
            *votes.entry(v.as_str()).or_default() += c.weight;
        }
    }
    let version = votes
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(v, _)| v.to_string())
        .filter(|_| candidates.is_empty());
    let version_weight = version
        .as_ref()
        .map(|v| {
            clues
                .iter()
                .filter(|c| c.version.as_ref() == Some(v))
                .map(|c| c.weight)
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    // Several agreeing clues raise confidence a little.
    let agreeing = version
        .as_ref()
        .map(|v| {
            clues
                .iter()
                .filter(|c| c.version.as_ref() == Some(v))
                .count()
        })
        .unwrap_or(0);
    let disagreements: Vec<String> = clues
        .iter()
        .filter(|c| c.technique != Technique::WeakString)
        .filter_map(|c| {
            let v = c.version.as_ref()?;
            (version.as_ref() != Some(v))
                .then(|| format!("{} reads {v} ({})", c.technique, c.detail))
        })
        .collect();
    let mut confidence =
        (strength.max(version_weight) + 0.05 * agreeing.saturating_sub(1) as f64).min(0.99);
    if !disagreements.is_empty() {
        confidence = confidence.min(0.6);
    }
    clues.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    Some(Component {
        project,
        version,
        path: path.to_string(),
        layer,
        confidence: (confidence * 100.0).round() / 100.0,
        clues,
        candidates,
        disagreements,
    })
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// A library name several projects ship (`libssl`: OpenSSL and Android's
/// BoringSSL) names the one whose library sits beside it (`libcrypto` of
/// OpenSSL in the same directory).
fn shared_names(t: &Templates, files: &[FileClues<'_>], out: &mut Vec<Component>) {
    let mut added = Vec::new();
    for f in files {
        if out.iter().any(|c| c.path == f.path) || f.owner_project.is_some() {
            continue;
        }
        let file_name = f.path.rsplit('/').next().unwrap_or(f.path);
        let Some(tpls) = library_name(file_name).and_then(|(base, _)| t.libnames.get(&base)) else {
            continue;
        };
        let dir = dir_of(f.path);
        let mut beside: Vec<&str> = tpls
            .iter()
            .map(|tpl| tpl.project.as_str())
            .filter(|p| {
                out.iter()
                    .any(|c| dir_of(&c.path) == dir && c.project == *p)
            })
            .collect();
        beside.sort_unstable();
        beside.dedup();
        if let [p] = beside.as_slice() {
            added.push(Component {
                project: p.to_string(),
                version: None,
                path: f.path.to_string(),
                layer: f.layer,
                confidence: 0.5,
                clues: vec![Clue {
                    technique: Technique::LibraryName,
                    detail: format!("{file_name} (a {p} library beside it)"),
                    version: None,
                    weight: 0.5,
                }],
                candidates: Vec::new(),
                disagreements: Vec::new(),
            });
        }
    }
    out.extend(added);
}

/// A library no clue names, loaded only by one project's libraries, is
/// that project's private helper (libwebp's `libsharpyuv`). A library
/// whose name the DB knows is not: its name says whose it is.
fn needed_only_by(t: &Templates, files: &[FileClues<'_>], out: &mut Vec<Component>) {
    let mut added = Vec::new();
    for f in files {
        let file_name = f.path.rsplit('/').next().unwrap_or(f.path);
        let Some((base, _)) = library_name(file_name) else {
            continue;
        };
        if t.libnames.contains_key(&base)
            || out.iter().any(|c| c.path == f.path)
            || f.owner_project.is_some()
        {
            continue;
        }
        let names: Vec<&str> = [Some(file_name), f.elf.soname.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let dir = dir_of(f.path);
        let mut projects: Vec<&str> = Vec::new();
        for g in files
            .iter()
            .filter(|g| dir_of(g.path) == dir && g.path != f.path)
        {
            if !g.elf.needed.iter().any(|n| names.contains(&n.as_str())) {
                continue;
            }
            let comps: Vec<&Component> = out.iter().filter(|c| c.path == g.path).collect();
            projects.extend(comps.iter().map(|c| c.project.as_str()));
        }
        projects.sort();
        projects.dedup();
        if let [p] = projects.as_slice() {
            added.push(Component {
                project: p.to_string(),
                version: None,
                path: f.path.to_string(),
                layer: f.layer,
                confidence: 0.4,
                clues: vec![Clue {
                    technique: Technique::NeededOnlyBy,
                    detail: format!("loaded only by {p} libraries in {dir}"),
                    version: None,
                    weight: 0.4,
                }],
                candidates: Vec::new(),
                disagreements: Vec::new(),
            });
        }
    }
    out.extend(added);
}

/// Components without a version take the version of a library of the
/// same project beside them (`libssl` from `libcrypto`, `liblber` from
/// `libldap`), when all such siblings agree.
fn siblings(out: &mut [Component]) {
    let known: Vec<(String, String, String, String)> = out
        .iter()
        .filter_map(|c| {
            let v = c.version.clone()?;
            Some((
                dir_of(&c.path).to_string(),
                c.project.clone(),
                v,
                c.path.clone(),
            ))
        })
        .collect();
    for c in out
        .iter_mut()
        .filter(|c| c.version.is_none() && c.candidates.is_empty())
    {
        let mut vs: Vec<&(String, String, String, String)> = known
            .iter()
            .filter(|k| k.0 == dir_of(&c.path) && k.1 == c.project)
            .collect();
        vs.sort_by(|a, b| a.2.cmp(&b.2));
        vs.dedup_by(|a, b| a.2 == b.2);
        if let [k] = vs.as_slice() {
            c.version = Some(k.2.clone());
            c.clues.push(Clue {
                technique: Technique::Sibling,
                detail: k.3.clone(),
                version: Some(k.2.clone()),
                weight: 0.5,
            });
            c.confidence = (c.confidence.min(0.5) * 100.0).round() / 100.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clue(technique: Technique, version: &str, weight: f64) -> Clue {
        Clue {
            technique,
            detail: format!("reads {version}"),
            version: Some(version.into()),
            weight,
        }
    }

    #[test]
    fn agreeing_clues_give_the_version() {
        let c = settle(
            "zlib".into(),
            "a.so",
            None,
            vec![
                clue(Technique::VersionFunction, "1.3.1", 0.9),
                clue(Technique::LibraryName, "1.3.1", 0.5),
            ],
        )
        .unwrap();
        assert_eq!(c.version.as_deref(), Some("1.3.1"));
        assert!(c.disagreements.is_empty());
        assert_eq!(c.confidence, 0.95);
    }

    #[test]
    fn strong_clues_that_disagree_pin_no_version() {
        let c = settle(
            "lcms2".into(),
            "a.so",
            None,
            vec![
                clue(Technique::VersionFunction, "2.16", 0.9),
                clue(Technique::VersionString, "2.14", 0.8),
            ],
        )
        .unwrap();
        assert_eq!(c.version, None);
        assert_eq!(c.candidates, vec!["2.14", "2.16"]);
        assert_eq!(c.disagreements.len(), 2);
    }

    #[test]
    fn a_weaker_disagreeing_clue_is_shown_and_lowers_confidence() {
        let c = settle(
            "libtiff".into(),
            "a.so",
            None,
            vec![
                clue(Technique::VersionFunction, "4.6.0", 0.9),
                clue(Technique::LibraryName, "6.0.2", 0.5),
            ],
        )
        .unwrap();
        assert_eq!(c.version.as_deref(), Some("4.6.0"));
        assert_eq!(
            c.disagreements,
            vec!["library-name reads 6.0.2 (reads 6.0.2)"]
        );
        assert_eq!(c.confidence, 0.6);
    }

    #[test]
    fn a_regular_encoding_reads_alone_and_irregular_ones_must_agree() {
        let read = |odd, v: &str| (1i64, odd, v.to_string(), format!("reads {v}"));
        let regular = settle_reads(vec![read(0, "1.2.0"), read(7, "1.0.32")], Some(1));
        assert_eq!(regular.map(|r| r.0).as_deref(), Some("1.2.0"));
        // OpenSSL 3's 0xMNN00PP0 from one observation: no regular encoding.
        assert_eq!(
            settle_reads(vec![read(5, "3.48.1"), read(7, "3.3.1")], None),
            None
        );
        assert_eq!(
            settle_reads(vec![read(5, "3.3.1"), read(7, "3.3.1")], None)
                .map(|r| r.0)
                .as_deref(),
            Some("3.3.1")
        );
    }

    #[test]
    fn an_odd_encoding_does_not_read_what_the_regular_one_declined() {
        // libunistring 1.0 (0x010000) fits x:16,8 and x:16,0; 0.9.9's
        // 0x000909 has a third field, so x:16,8 declines it.
        let read = |odd, v: &str| (1i64, odd, v.to_string(), format!("reads {v}"));
        assert_eq!(settle_reads(vec![read(2, "0.2313")], Some(1)), None);
        assert_eq!(
            settle_reads(vec![read(2, "0.2313")], None)
                .map(|r| r.0)
                .as_deref(),
            Some("0.2313")
        );
    }

    #[test]
    fn two_kinds_of_weak_clue_corroborate() {
        let name = Clue {
            technique: Technique::LibraryName,
            detail: "libcrypto-401bea5d.so.1.1.1k".into(),
            version: None,
            weight: 0.3,
        };
        let c = settle(
            "openssl".into(),
            "a.so",
            None,
            vec![name.clone(), clue(Technique::WeakString, "1.1.1k", 0.3)],
        )
        .unwrap();
        assert_eq!(c.version.as_deref(), Some("1.1.1k"));
        assert!(settle("openssl".into(), "a.so", None, vec![name]).is_none());
    }

    #[test]
    fn weak_strings_alone_name_nothing() {
        assert!(settle(
            "demo".into(),
            "a.so",
            None,
            vec![clue(Technique::WeakString, "1.2.3", 0.3)]
        )
        .is_none());
    }
}
