//! Upstream components inside files: vendored libraries named by version
//! strings, version functions and library names, and projects whose
//! distinctive functions a file contains. Each is a `pkg:generic` package
//! located at its file and, where a package owns that file, nested under
//! it.

use std::collections::HashMap;

use kiln_catalog::{Distro, Ecosystem, Evidence, Location, Occurrence, Package, Resolution};
use kiln_fingerprint::ElfInfo;
use kiln_rainbow::funcmatch::{FunctionMatch, Pin};
use kiln_rainbow::vendored::{Component, FileClues, Templates};
use kiln_rainbow::{Identification, SignatureLookup};
use kiln_tree::Tree;

use crate::reconcile::to_package;
use crate::Result;

/// The tree's ELF files with version clues, and what each file's clues
/// say on their own: the part of [`vendored`] that needs no
/// identification, so it runs while identification does.
pub struct Reads<'t> {
    files: Vec<FileClues<'t>>,
    read: Vec<Vec<Component>>,
}

/// Read the version clues of the tree's ELF files against the templates.
pub fn read<'t>(tree: &'t Tree, templates: &Templates) -> Result<Reads<'t>> {
    let files: Vec<FileClues<'_>> = tree
        .iter()
        .filter_map(|(path, e)| {
            let elf = e.facts::<ElfInfo>()?;
            elf.clues.as_ref()?;
            Some(FileClues {
                path,
                layer: e.layer,
                elf,
                owner_project: None,
            })
        })
        .collect();
    let read = kiln_rainbow::vendored::read_components(templates, &files)?;
    Ok(Reads { files, read })
}

/// Upstream components inside the tree's ELF files, each nested under the
/// package that owns its file (when one does).
pub fn vendored(
    reads: Reads<'_>,
    found: &Identification,
    templates: &Templates,
    packages: &[Package],
    distro: Option<&Distro>,
) -> Vec<Package> {
    let owners = owners(found, packages, distro);
    let Reads { mut files, read } = reads;
    for f in &mut files {
        f.owner_project = owners.get(f.path).and_then(|o| o.1.clone());
    }
    let found = kiln_rainbow::vendored::settle_components(templates, &files, read);
    found
        .into_iter()
        .map(|mut c| {
            let parent = owners.get(c.path.as_str()).map(|o| o.0.clone());
            c.path = format!("/{}", c.path);
            component_package(c, parent)
        })
        .collect()
}

/// Tree path -> (owner's purl, owner's upstream project for distribution
/// packages, which are upstream projects themselves; a wheel is not).
fn owners<'a>(
    found: &'a Identification,
    packages: &'a [Package],
    distro: Option<&Distro>,
) -> HashMap<&'a str, (String, Option<String>)> {
    let mut owners = HashMap::new();
    for id in &found.packages {
        let purl = to_package(id, distro).purl;
        let project = id
            .ecosystem
            .descriptor()
            .distro_package
            .then(|| kiln_rainbow::project::project_name(&id.source));
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
    // Packages identification did not produce (Debian ones it did).
    for p in packages.iter().filter(|p| p.ecosystem != Ecosystem::Deb) {
        for f in &p.files {
            owners
                .entry(f.path.trim_start_matches('/'))
                .or_insert((p.purl.clone(), None));
        }
    }
    owners
}

/// A vendored component as a reported package.
pub fn component_package(c: Component, parent: Option<String>) -> Package {
    let version = c.version.clone().unwrap_or_default();
    let resolution = if c.version.is_some() {
        Resolution::ComponentVersion
    } else if !c.candidates.is_empty() {
        Resolution::VersionSet
    } else {
        Resolution::ComponentProjectOnly
    };
    let mut evidence = Evidence::new(resolution, c.confidence);
    evidence.candidate_versions = c.candidates.clone();
    for clue in &c.clues {
        evidence.count(clue.technique, clue.weight);
    }
    evidence.notes = c
        .clues
        .iter()
        .map(|clue| match &clue.version {
            Some(v) => format!("{}: {} -> {v}", clue.technique, clue.detail),
            None => format!("{}: {}", clue.technique, clue.detail),
        })
        .chain(c.disagreements.iter().map(|d| format!("DISAGREEMENT: {d}")))
        .collect();
    let at = Location {
        path: c.path,
        layer: c.layer,
    };
    file_component(&c.project, &version, at, "kiln-vendored", evidence, parent)
}

/// Projects found by their functions in ELF files no package explains
/// (statically linked, stripped, rebuilt or patched copies), from the
/// function sets identification already computed for them.
pub fn by_functions<L: SignatureLookup>(
    db: &L,
    tree: &Tree,
    found: &Identification,
) -> Result<Vec<Package>> {
    if found.function_hashes.is_empty() || !db.has_function_signatures()? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (path, hashes) in &found.function_hashes {
        let layer = tree.get(path.trim_start_matches('/')).and_then(|e| e.layer);
        for m in kiln_rainbow::funcmatch::match_functions(db, hashes)? {
            let at = Location {
                path: path.clone(),
                layer,
            };
            out.push(function_package(&m, at));
        }
    }
    Ok(out)
}

/// A project found by its functions in one file, as a reported package:
/// exact only when the code pins the version (see
/// [`kiln_rainbow::funcmatch::Pin`]); a version set when several known
/// versions fit; otherwise `version-not-in-db` with the nearest version.
pub fn function_package(m: &FunctionMatch, at: Location) -> Package {
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
    note.push_str(&format!("; {}", m.reason));
    let confidence = ((0.5 + m.containment).min(0.95) * 100.0).round() / 100.0;
    let (resolution, version) = match m.pin {
        Pin::Exact => (
            Resolution::ComponentVersion,
            m.versions.first().cloned().unwrap_or_default(),
        ),
        Pin::Set => (Resolution::VersionSet, String::new()),
        Pin::NotInDb => (Resolution::VersionNotInDb, String::new()),
    };
    let mut evidence = Evidence::new(resolution, confidence);
    evidence.count(kiln_catalog::Technique::FunctionHashes, confidence);
    match m.pin {
        Pin::Set => evidence.candidate_versions = m.versions.clone(),
        Pin::NotInDb => evidence.nearest_version = Some(m.versions.join(" | ")),
        Pin::Exact => {}
    }
    evidence.version_range = m.range.clone();
    evidence.notes = vec![note];
    file_component(&m.project, &version, at, "kiln-functions", evidence, None)
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
            .map_or(kiln_catalog::Technique::VersionString, |t| t.technique),
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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_catalog::Technique;
    use kiln_rainbow::vendored::Clue;

    fn matched(versions: &[&str], pin: Pin) -> FunctionMatch {
        FunctionMatch {
            project: "openssl".into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            pin,
            reason: "because".into(),
            matched: 40,
            distinctive: 100,
            containment: 0.4,
            explained: 0.5,
            runner_up: Some(("3.0.17".into(), 0.2)),
            range: (pin == Pin::NotInDb).then(|| "vers:generic/>3.0.17|<3.0.22".into()),
        }
    }

    fn at() -> Location {
        Location {
            path: "/app/lib.so".into(),
            layer: Some(1),
        }
    }

    #[test]
    fn function_matches_are_exact_only_when_the_code_pins_the_version() {
        let p = function_package(&matched(&["3.0.20"], Pin::Exact), at());
        assert_eq!(p.version, "3.0.20");
        assert_eq!(p.purl, "pkg:generic/openssl@3.0.20");
        let ev = p.evidence.unwrap();
        assert_eq!(ev.resolution, Resolution::ComponentVersion);
        assert_eq!(ev.confidence, 0.9);
        assert_eq!(ev.occurrences[0].technique, Technique::FunctionHashes);
        assert_eq!(ev.occurrences[0].layer, Some(1));
        assert!(
            ev.notes[0].contains("containment 0.400 (40 of 100"),
            "{}",
            ev.notes[0]
        );
        assert!(ev.notes[0].contains("next best 3.0.17 at 0.200; because"));

        let unknown = function_package(&matched(&["3.0.20"], Pin::NotInDb), at());
        assert_eq!(unknown.version, "");
        let ev = unknown.evidence.unwrap();
        assert_eq!(ev.resolution, Resolution::VersionNotInDb);
        assert_eq!(ev.nearest_version.as_deref(), Some("3.0.20"));
        assert_eq!(
            ev.version_range.as_deref(),
            Some("vers:generic/>3.0.17|<3.0.22")
        );

        let tied = function_package(&matched(&["3.0.20", "3.0.22"], Pin::Set), at());
        let ev = tied.evidence.unwrap();
        assert_eq!(ev.resolution, Resolution::VersionSet);
        assert_eq!(ev.candidate_versions, vec!["3.0.20", "3.0.22"]);
    }

    #[test]
    fn vendored_components_keep_every_clue_and_their_parent() {
        let clue = |technique, version: Option<&str>, weight| Clue {
            technique,
            detail: "OpenSSL 3.0.20 1 Jul 2025".into(),
            version: version.map(String::from),
            weight,
        };
        let c = Component {
            project: "openssl".into(),
            version: Some("3.0.20".into()),
            path: "/app/lib.so".into(),
            layer: None,
            confidence: 0.8,
            candidates: Vec::new(),
            disagreements: vec!["library-name reads 3.0.2 (libssl.so.3.0.2)".into()],
            clues: vec![
                clue(Technique::VersionString, Some("3.0.20"), 0.8),
                clue(Technique::WeakString, Some("3.0.20"), 0.3),
                clue(Technique::VersionString, None, 0.8),
            ],
        };
        let p = component_package(c, Some("pkg:pypi/cryptography@44.0.0".into()));
        assert_eq!(p.parent.as_deref(), Some("pkg:pypi/cryptography@44.0.0"));
        assert_eq!(p.found_by, "kiln-vendored");
        let ev = p.evidence.unwrap();
        assert_eq!(ev.resolution, Resolution::ComponentVersion);
        let counts: Vec<(Technique, usize)> = ev
            .techniques
            .iter()
            .map(|t| (t.technique, t.files))
            .collect();
        assert_eq!(
            counts,
            vec![(Technique::VersionString, 2), (Technique::WeakString, 1)]
        );
        assert_eq!(
            ev.notes[0],
            "version-string: OpenSSL 3.0.20 1 Jul 2025 -> 3.0.20"
        );
        assert_eq!(ev.notes[2], "version-string: OpenSSL 3.0.20 1 Jul 2025");
        assert_eq!(
            ev.notes[3],
            "DISAGREEMENT: library-name reads 3.0.2 (libssl.so.3.0.2)"
        );
        assert_eq!(ev.occurrences[0].path, "/app/lib.so");
    }
}
