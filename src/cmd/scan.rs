//! `kiln scan`: identify packages and exact versions from the bytes of the
//! files, cross-checked against whatever metadata the image still has.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use kiln_catalog::{purl::purl, Ecosystem, Evidence, Location, Occurrence, Package, Technique};
use kiln_fingerprint::ElfInfo;
use kiln_rainbow::vendored::{Component, FileClues, Templates};
use kiln_rainbow::{Db, Identified, Resolution};
use kiln_report::Sbom;
use kiln_tree::{BuildOptions, Facts};

use super::db::DbArg;
use super::source::SourceArgs;
use crate::progress;

/// `kiln scan SOURCE [--db FILE] [-o FORMAT]`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    db: DbArg,
    /// Output format: table, json, cyclonedx-json, spdx-json; with
    /// --vuln also sarif. Defaults to table on a terminal and json otherwise.
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Also match the packages against advisories (as `kiln vuln`).
    #[arg(long)]
    vuln: bool,
    #[command(flatten)]
    policy: super::vuln::Policy,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    if args.vuln {
        let v =
            super::vuln::Args::from_scan(args.source, args.db, args.output, args.file, args.policy);
        return super::vuln::run(v, quiet);
    }
    let db = Db::open_readonly(&args.db.path())?;
    let sbom = collect(&args.source, Some(&db), quiet)?;
    let format = args
        .output
        .as_deref()
        .map(str::parse::<kiln_report::Format>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    super::emit_as(&sbom, format, args.file.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Read the source once: catalog its metadata and, with a signature DB,
/// identify its packages from bytes and cross-check the two.
pub fn collect(source: &SourceArgs, db: Option<&Db>, quiet: bool) -> Result<Sbom> {
    if let Some(db) = db.filter(|_| !quiet) {
        let v = db.schema_version()?;
        if v < kiln_rainbow::SCHEMA_VERSION {
            eprintln!(
                "kiln: warning: {} has schema {v}; build a new DB with `kiln db build` for what schema {} adds (stripped files matched by code, compact function signatures)",
                db.path().display(),
                kiln_rainbow::SCHEMA_VERSION
            );
        }
    }
    let templates = db.map(Templates::load).transpose()?.map(Arc::new);
    // Compile the string templates while the layers stream.
    if let Some(t) = &templates {
        let t = Arc::clone(t);
        std::thread::spawn(move || {
            t.compile();
        });
    }
    let bar = progress::bytes("reading and hashing layers", quiet);
    let ticker = bar.clone();
    let inspect: Box<kiln_tree::InspectFn> = match &templates {
        Some(t) if !t.is_empty() => {
            let t = Arc::clone(t);
            Box::new(move |_, data| elf_facts_with_clues(data, &t))
        }
        _ => Box::new(elf_facts),
    };
    let opts = BuildOptions {
        capture: Box::new(kiln_catalog::wants),
        hash: db.is_some(),
        progress: Some(Box::new(move |n| ticker.inc(n))),
        inspect: Some(inspect),
        // Matching needs every ELF file's build-id; without a DB only Go
        // binaries (executables) matter.
        inspect_if: if db.is_some() {
            None
        } else {
            Some(Box::new(executables))
        },
    };
    let (tree, source) = source.open_tree(&opts)?;
    bar.finish_and_clear();
    let mut catalog = kiln_catalog::catalog(&tree);
    let Some(db) = db else {
        return Ok(Sbom { source, catalog });
    };
    let found = kiln_rainbow::identify(db, &tree)?;
    let claimed = std::mem::take(&mut catalog.packages);
    let distro = catalog.distro.clone();
    let mut packages: Vec<Package> = Vec::new();
    for id in &found.packages {
        let mut p = to_package(id, distro.as_ref());
        cross_check(&mut p, id, &claimed);
        packages.push(p);
    }
    // Metadata the bytes did not confirm stays in the report, marked so.
    for c in claimed {
        let confirmed = found.packages.iter().any(|i| same_package(&c, i));
        if !confirmed {
            let mut c = c;
            c.evidence = Some(Evidence {
                confidence: 0.7,
                resolution: "metadata-only".into(),
                techniques: vec![Technique {
                    technique: "package-metadata".into(),
                    files: 0,
                    confidence: 0.7,
                }],
                notes: if c.ecosystem == Ecosystem::Deb {
                    vec![
                        "declared by package metadata; no file of it matched the signature DB"
                            .into(),
                    ]
                } else {
                    Vec::new()
                },
                ..Default::default()
            });
            packages.push(c);
        }
    }
    if let Some(t) = &templates {
        let components = vendored_components(&tree, &found, t, &packages, distro.as_ref());
        packages.extend(components);
    }
    for f in function_components(db, &tree, &found)? {
        merge_component(&mut packages, f);
    }
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version).cmp(&(b.ecosystem, &b.name, &b.version))
    });
    catalog.packages = packages;
    catalog.unexplained_files = found.unexplained;
    Ok(Sbom { source, catalog })
}

/// Inspect only executable files: where Go binaries are.
pub fn executables(_path: &str, mode: u32, _size: u64) -> bool {
    mode & 0o111 != 0
}

/// The tree inspector: ELF identity facts for ELF files (build-ids for
/// matching, Go build info for the Go cataloger).
pub fn elf_facts(_path: &str, data: &[u8]) -> Option<Facts> {
    ElfInfo::parse(data)
        .ok()
        .flatten()
        .map(|i| Arc::new(i) as Facts)
}

/// One component per (file, project): evidence from function hashes joins
/// what version strings or functions already said about the same file.
fn merge_component(packages: &mut Vec<Package>, f: Package) {
    let same = packages.iter_mut().find(|p| {
        p.ecosystem == Ecosystem::Generic
            && p.name == f.name
            && p.locations.first().map(|l| &l.path) == f.locations.first().map(|l| &l.path)
    });
    let Some(p) = same else {
        packages.push(f);
        return;
    };
    let (Some(ev), Some(fev)) = (p.evidence.as_mut(), f.evidence) else {
        return;
    };
    ev.notes.extend(fev.notes);
    // Techniques are listed only when they agree with the reported version.
    if p.version.is_empty() && !f.version.is_empty() {
        p.version = f.version;
        p.purl = f.purl;
        ev.confidence = ev.confidence.max(fev.confidence);
        ev.resolution = fev.resolution;
        ev.techniques.extend(fev.techniques);
    } else if !f.version.is_empty() && f.version != p.version {
        ev.notes.push(format!(
            "DISAGREEMENT: function hashes point to {} {}",
            f.name, f.version
        ));
        ev.confidence = ev.confidence.min(0.5);
    } else if f.version == p.version {
        ev.confidence = (ev.confidence.max(fev.confidence) + 0.05).min(0.99);
        ev.techniques.extend(fev.techniques);
    } else if ev.version_range.is_none() {
        ev.version_range = fev.version_range;
    }
}

/// Projects found by their functions in ELF files no package explains
/// (statically linked, stripped, rebuilt or patched copies), from the
/// function sets identification already computed for them.
fn function_components(
    db: &Db,
    tree: &kiln_tree::Tree,
    found: &kiln_rainbow::Identification,
) -> Result<Vec<Package>> {
    if found.function_hashes.is_empty() || !kiln_rainbow::funcmatch::has_signatures(db)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (path, hashes) in &found.function_hashes {
        let layer = tree.get(path.trim_start_matches('/')).and_then(|e| e.layer);
        for m in kiln_rainbow::funcmatch::match_functions(db, hashes)? {
            let exact = m.versions.len() == 1 && !m.not_in_db;
            let version = if exact {
                m.versions[0].clone()
            } else {
                String::new()
            };
            let mut note = format!(
                "function-hashes: containment {:.3} ({} of {} distinctive functions of {} {})",
                m.containment,
                m.matched,
                m.distinctive,
                m.project,
                m.versions.join(" | ")
            );
            if let Some((v, c)) = &m.runner_up {
                note.push_str(&format!("; next best {v} at {c:.3}"));
            }
            if m.not_in_db {
                note.push_str(
                    "; the file has functions of no known version: a build the DB does not have",
                );
            }
            let confidence = ((0.5 + m.containment).min(0.95) * 100.0).round() / 100.0;
            let evidence = Evidence {
                confidence,
                resolution: if exact {
                    "component-version".into()
                } else if m.not_in_db {
                    "version-not-in-db".into()
                } else {
                    "version-set".into()
                },
                techniques: vec![Technique {
                    technique: "function-hashes".into(),
                    files: 1,
                    confidence,
                }],
                candidate_versions: if exact || m.not_in_db {
                    Vec::new()
                } else {
                    m.versions.clone()
                },
                nearest_version: m.not_in_db.then(|| m.versions.join(" | ")),
                version_range: m.range.clone(),
                notes: vec![note],
                ..Default::default()
            };
            let at = Location {
                path: path.clone(),
                layer,
            };
            out.push(file_component(
                &m.project,
                &version,
                at,
                "kiln-functions",
                evidence,
                None,
            ));
        }
    }
    Ok(out)
}

/// ELF facts plus version clues, evaluating only the functions the DB has
/// templates for.
fn elf_facts_with_clues(data: &[u8], t: &Templates) -> Option<Facts> {
    ElfInfo::parse_with(data, Some(&|n: &str| t.wants(n)))
        .ok()
        .flatten()
        .map(|i| Arc::new(i) as Facts)
}

/// Upstream components inside the tree's ELF files, each nested under the
/// package that owns its file (when one does).
fn vendored_components(
    tree: &kiln_tree::Tree,
    found: &kiln_rainbow::Identification,
    t: &Templates,
    packages: &[Package],
    distro: Option<&kiln_catalog::Distro>,
) -> Vec<Package> {
    // path -> (owner purl, owner's upstream project for distro packages)
    let mut owners: HashMap<&str, (String, Option<String>)> = HashMap::new();
    for id in &found.packages {
        let purl = to_package(id, distro).purl;
        // Distro packages are upstream projects themselves; a wheel is not.
        let project =
            (id.ecosystem == "deb").then(|| kiln_rainbow::project::project_name(&id.source));
        // Files that contradict every known version still belong to it.
        let paths = id
            .occurrences
            .iter()
            .map(|o| &o.0)
            .chain(id.contradictions.iter().map(|c| &c.0));
        for path in paths {
            owners.insert(
                path.trim_start_matches('/'),
                (purl.clone(), project.clone()),
            );
        }
    }
    for p in packages.iter().filter(|p| p.ecosystem != Ecosystem::Deb) {
        for f in &p.files {
            owners
                .entry(f.path.trim_start_matches('/'))
                .or_insert((p.purl.clone(), None));
        }
    }
    let files: Vec<FileClues<'_>> = tree
        .iter()
        .filter_map(|(path, e)| {
            let elf = e.facts::<ElfInfo>()?;
            elf.clues.as_ref()?;
            Some(FileClues {
                path,
                layer: e.layer,
                elf,
                owner_project: owners.get(path).and_then(|o| o.1.clone()),
            })
        })
        .collect();
    kiln_rainbow::vendored::find_components(t, &files)
        .into_iter()
        .map(|c| {
            let parent = owners.get(c.path.as_str()).map(|o| o.0.clone());
            let mut c = c;
            c.path = format!("/{}", c.path);
            component_package(c, parent)
        })
        .collect()
}

fn component_package(c: Component, parent: Option<String>) -> Package {
    let version = c.version.clone().unwrap_or_default();
    let mut techniques: Vec<Technique> = Vec::new();
    for clue in &c.clues {
        count_technique(&mut techniques, clue.technique, clue.weight);
    }
    let notes = c
        .clues
        .iter()
        .map(|clue| match &clue.version {
            Some(v) => format!("{}: {} -> {v}", clue.technique, clue.detail),
            None => format!("{}: {}", clue.technique, clue.detail),
        })
        .collect();
    let evidence = Evidence {
        confidence: c.confidence,
        resolution: if c.version.is_some() {
            "component-version".into()
        } else {
            "component-project-only".into()
        },
        techniques,
        notes,
        ..Default::default()
    };
    let at = Location {
        path: c.path,
        layer: c.layer,
    };
    file_component(&c.project, &version, at, "kiln-vendored", evidence, parent)
}

/// An upstream component found inside one file: a `pkg:generic` package
/// located at that file, where its evidence (first technique) occurs.
fn file_component(
    project: &str,
    version: &str,
    at: Location,
    found_by: &'static str,
    mut evidence: Evidence,
    parent: Option<String>,
) -> Package {
    let path = at.path.trim_start_matches('/');
    evidence.files_seen = 1;
    evidence.occurrences = vec![Occurrence {
        path: format!("/{path}"),
        layer: at.layer,
        technique: evidence
            .techniques
            .first()
            .map_or("version-string", |t| t.technique.as_str())
            .into(),
    }];
    let mut p = Package::embedded(
        Ecosystem::Generic,
        project,
        version,
        path,
        at.layer,
        found_by,
    );
    p.evidence = Some(evidence);
    p.parent = parent;
    p
}

/// Count one more file for `technique` (added with `confidence` when new).
fn count_technique(techniques: &mut Vec<Technique>, technique: &str, confidence: f64) {
    match techniques.iter_mut().find(|t| t.technique == technique) {
        Some(t) => t.files += 1,
        None => techniques.push(Technique {
            technique: technique.into(),
            files: 1,
            confidence,
        }),
    }
}

fn to_package(id: &Identified, distro: Option<&kiln_catalog::Distro>) -> Package {
    let version = match (&id.version, &id.resolution) {
        (Some(v), _) => v.clone(),
        (None, Resolution::VersionNotInDb) => String::new(),
        (None, _) => id.candidate_versions.join(" | "),
    };
    let mut techniques: Vec<Technique> = Vec::new();
    for (_, _, m) in &id.occurrences {
        count_technique(&mut techniques, m.name(), m.confidence());
    }
    if id.resolution == Resolution::ExactBySourceCoherence {
        techniques.push(Technique {
            technique: "source-coherence".into(),
            files: 0,
            confidence: 0.8,
        });
    }
    let mut layers: Vec<Option<usize>> = id.occurrences.iter().map(|o| o.1).collect();
    layers.sort();
    layers.dedup();
    let python = id.ecosystem == "python";
    let ecosystem = if python {
        Ecosystem::Python
    } else {
        Ecosystem::Deb
    };
    Package {
        purl: if python {
            purl(
                ecosystem,
                &id.name,
                id.version.as_deref().unwrap_or(""),
                None,
                None,
            )
        } else {
            purl(
                ecosystem,
                &id.name,
                id.version.as_deref().unwrap_or(""),
                Some(&id.arch),
                distro,
            )
        },
        name: id.name.clone(),
        version,
        ecosystem,
        arch: (!python).then(|| id.arch.clone()),
        source_name: (!python).then(|| id.source.clone()),
        source_version: if python {
            None
        } else {
            id.source_version.clone()
        },
        licenses: Vec::new(),
        found_by: if python {
            "kiln-rainbow-wheel"
        } else {
            "kiln-rainbow-deb"
        },
        locations: layers
            .into_iter()
            .filter_map(|l| {
                id.occurrences.iter().find(|o| o.1 == l).map(|o| Location {
                    path: o.0.clone(),
                    layer: l,
                })
            })
            .collect(),
        files: Vec::new(),
        evidence: Some(Evidence {
            confidence: id.confidence,
            resolution: id.resolution.name().into(),
            techniques,
            files_seen: id.occurrences.len(),
            files_total: id.files_total,
            candidate_versions: if id.candidate_versions.len() > 1 {
                id.candidate_versions.clone()
            } else {
                Vec::new()
            },
            nearest_version: id.nearest_version.clone(),
            version_range: id.version_range.clone(),
            notes: id.notes.clone(),
            occurrences: id
                .occurrences
                .iter()
                .map(|(path, layer, m)| Occurrence {
                    path: path.clone(),
                    layer: *layer,
                    technique: m.name().into(),
                })
                .collect(),
        }),
        parent: None,
    }
}

/// Does a package the metadata declares name the package the bytes found?
fn same_package(c: &Package, id: &Identified) -> bool {
    match c.ecosystem {
        Ecosystem::Deb => {
            id.ecosystem == "deb"
                && c.name == id.name
                && c.arch.as_deref() == Some(id.arch.as_str())
        }
        Ecosystem::Python => {
            id.ecosystem == "python" && kiln_rainbow::wheel::normalize_name(&c.name) == id.name
        }
        _ => false,
    }
}

/// Compare what the bytes say with what the metadata claims.
fn cross_check(p: &mut Package, id: &Identified, claimed: &[Package]) {
    let Some(ev) = p.evidence.as_mut() else {
        return;
    };
    let Some(c) = claimed.iter().find(|c| same_package(c, id)) else {
        if !claimed.is_empty() {
            ev.notes
                .push("not declared by the image's package metadata".into());
        }
        return;
    };
    let fits = id.candidate_versions.iter().any(|v| v == &c.version);
    if fits {
        ev.notes
            .push(format!("package metadata agrees: {}", c.version));
        ev.techniques.push(Technique {
            technique: "package-metadata".into(),
            files: 0,
            confidence: 0.7,
        });
    } else {
        ev.notes.push(format!(
            "DISAGREEMENT: package metadata claims {} but the files match {}",
            c.version,
            match (&id.version, &id.nearest_version) {
                (Some(v), _) => v.clone(),
                (None, Some(n)) => format!("no known version (nearest {n})"),
                (None, None) => id.candidate_versions.join(" | "),
            }
        ));
    }
}
