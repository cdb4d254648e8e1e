//! What the bytes say against what the metadata claims: each identified
//! package becomes a reported [`Package`] with its evidence, cross-checked
//! with the package the metadata declares under the same name; metadata
//! the bytes did not confirm stays in the report, marked so.

use kiln_catalog::purl::purl;
use kiln_catalog::{
    Contribution, Distro, Ecosystem, Evidence, Location, Occurrence, Package, Resolution, Technique,
};
use kiln_rainbow::{Identification, Identified};

/// Confidence of what package metadata alone declares.
const METADATA_CONFIDENCE: f64 = 0.7;

/// Packages identified from bytes, cross-checked with the `claimed` ones
/// (what the image's metadata declares), followed by the claimed packages
/// no identified package confirms.
pub fn reconcile(
    found: &Identification,
    claimed: Vec<Package>,
    distro: Option<&Distro>,
) -> Vec<Package> {
    let mut packages: Vec<Package> = found
        .packages
        .iter()
        .map(|id| {
            let mut p = to_package(id, distro);
            cross_check(&mut p, id, &claimed);
            p
        })
        .collect();
    for c in claimed {
        if !found.packages.iter().any(|i| same_package(&c, i)) {
            packages.push(unconfirmed(c));
        }
    }
    packages
}

/// A package the metadata declares and no file of which matched.
fn unconfirmed(mut c: Package) -> Package {
    let mut ev = Evidence::new(Resolution::MetadataOnly, METADATA_CONFIDENCE);
    ev.techniques.push(Contribution {
        technique: Technique::PackageMetadata,
        files: 0,
        confidence: METADATA_CONFIDENCE,
    });
    // The DB holds the distro's packages; it holds wheels only when built
    // with them, so silence for the rest is not a finding.
    if c.ecosystem == Ecosystem::Deb {
        ev.notes
            .push("declared by package metadata; no file of it matched the signature DB".into());
    }
    c.evidence = Some(ev);
    c
}

/// Which cataloger a package identified from bytes is reported under.
fn found_by(e: Ecosystem) -> &'static str {
    match e {
        Ecosystem::Python => "kiln-rainbow-wheel",
        Ecosystem::Npm => "kiln-rainbow-npm",
        _ => "kiln-rainbow-deb",
    }
}

/// The reported package for one identified package.
pub fn to_package(id: &Identified, distro: Option<&Distro>) -> Package {
    let version = match (&id.version, id.resolution) {
        (Some(v), _) => v.clone(),
        (None, Resolution::VersionNotInDb) => String::new(),
        (None, _) => id.candidate_versions.join(" | "),
    };
    let distro_package = id.ecosystem.descriptor().distro_package;
    let arch = distro_package.then(|| id.arch.clone());
    Package {
        purl: purl(
            id.ecosystem,
            &id.name,
            id.version.as_deref().unwrap_or(""),
            arch.as_deref(),
            distro,
        ),
        name: id.name.clone(),
        version,
        ecosystem: id.ecosystem,
        arch,
        source_name: distro_package.then(|| id.source.clone()),
        source_version: id.source_version.clone().filter(|_| distro_package),
        licenses: Vec::new(),
        found_by: found_by(id.ecosystem),
        locations: layer_locations(id),
        files: Vec::new(),
        evidence: Some(evidence(id)),
        parent: None,
    }
}

/// One location per layer that holds evidence: its first file there.
fn layer_locations(id: &Identified) -> Vec<Location> {
    let mut layers: Vec<Option<usize>> = id.occurrences.iter().map(|o| o.1).collect();
    layers.sort();
    layers.dedup();
    layers
        .into_iter()
        .filter_map(|l| {
            id.occurrences.iter().find(|o| o.1 == l).map(|o| Location {
                path: o.0.clone(),
                layer: l,
            })
        })
        .collect()
}

fn evidence(id: &Identified) -> Evidence {
    let mut ev = Evidence::new(id.resolution, id.confidence);
    for (_, _, m) in &id.occurrences {
        ev.count(m.technique(), m.confidence());
    }
    if id.resolution == Resolution::ExactBySourceCoherence {
        ev.techniques.push(Contribution {
            technique: Technique::SourceCoherence,
            files: 0,
            confidence: 0.8,
        });
    }
    ev.files_seen = id.occurrences.len();
    ev.files_total = id.files_total;
    if id.candidate_versions.len() > 1 {
        ev.candidate_versions = id.candidate_versions.clone();
    }
    ev.nearest_version = id.nearest_version.clone();
    ev.version_range = id.version_range.clone();
    ev.notes = id.notes.clone();
    ev.occurrences = id
        .occurrences
        .iter()
        .map(|(path, layer, m)| Occurrence {
            path: path.clone(),
            layer: *layer,
            technique: m.technique(),
        })
        .collect();
    ev
}

/// Does a package the metadata declares name the package the bytes found?
/// Distribution packages by name and architecture, others by the name as
/// their ecosystem normalises it.
pub fn same_package(c: &Package, id: &Identified) -> bool {
    if c.ecosystem != id.ecosystem {
        return false;
    }
    if c.ecosystem.descriptor().distro_package {
        c.name == id.name && c.arch.as_deref() == Some(id.arch.as_str())
    } else {
        c.ecosystem.normalize_name(&c.name) == id.name
    }
}

/// Compare what the bytes say with what the metadata claims: agreement
/// adds the metadata as a technique; disagreement is noted, never hidden.
pub fn cross_check(p: &mut Package, id: &Identified, claimed: &[Package]) {
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
    if id.candidate_versions.iter().any(|v| v == &c.version) {
        ev.notes
            .push(format!("package metadata agrees: {}", c.version));
        ev.techniques.push(Contribution {
            technique: Technique::PackageMetadata,
            files: 0,
            confidence: METADATA_CONFIDENCE,
        });
        return;
    }
    let found = match (&id.version, &id.nearest_version) {
        (Some(v), _) => v.clone(),
        (None, Some(n)) => format!("no known version (nearest {n})"),
        (None, None) => id.candidate_versions.join(" | "),
    };
    ev.notes.push(format!(
        "DISAGREEMENT: package metadata claims {} but the files match {found}",
        c.version
    ));
}

/// One component per (file, project): evidence from function hashes joins
/// what version strings, version functions or library names already said
/// about the same file. A version read from the file wins; the functions
/// then count for the project, and a disagreement is shown, never
/// averaged away. Techniques are listed only when they agree with the
/// reported version.
pub fn merge_component(packages: &mut Vec<Package>, f: Package) {
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
    if p.version.is_empty() {
        // Nothing read a version: the functions' answer is the answer.
        p.version = f.version;
        p.purl = f.purl;
        ev.confidence = ev.confidence.max(fev.confidence);
        ev.resolution = fev.resolution;
        ev.candidate_versions = fev.candidate_versions;
        ev.nearest_version = fev.nearest_version;
        ev.version_range = ev.version_range.take().or(fev.version_range);
        ev.techniques.extend(fev.techniques);
        return;
    }
    // The functions agree when they name the read version: pinned, among
    // their candidates, or as the nearest when they pin nothing.
    let agrees = f.version == p.version
        || fev.candidate_versions.contains(&p.version)
        || fev.nearest_version.as_ref() == Some(&p.version);
    if agrees {
        ev.confidence = (ev.confidence.max(fev.confidence) + 0.05).min(0.99);
        ev.techniques.extend(fev.techniques);
    } else if !f.version.is_empty() {
        ev.notes.push(format!(
            "DISAGREEMENT: function hashes point to {} {}",
            f.name, f.version
        ));
        ev.confidence = ev.confidence.min(0.5);
    }
}

/// The report's order: by ecosystem, name, version.
pub fn sort(packages: &mut [Package]) {
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version).cmp(&(b.ecosystem, &b.name, &b.version))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_rainbow::Match;

    fn identified(name: &str, resolution: Resolution, versions: &[&str]) -> Identified {
        let one = versions.len() == 1 && resolution != Resolution::VersionNotInDb;
        Identified {
            ecosystem: Ecosystem::Deb,
            name: name.into(),
            arch: "amd64".into(),
            source: name.into(),
            version: one.then(|| versions[0].to_string()),
            source_version: one.then(|| versions[0].to_string()),
            resolution,
            candidate_versions: if resolution == Resolution::VersionNotInDb {
                Vec::new()
            } else {
                versions.iter().map(|v| v.to_string()).collect()
            },
            nearest_version: (resolution == Resolution::VersionNotInDb)
                .then(|| versions[0].to_string()),
            version_range: None,
            occurrences: vec![
                ("/usr/lib/a.so".into(), Some(0), Match::FileDigest),
                ("/usr/lib/b.so".into(), Some(1), Match::ElfBuildId),
                ("/usr/lib/c.so".into(), Some(1), Match::FileDigest),
            ],
            contradictions: Vec::new(),
            files_total: 4,
            confidence: 0.95,
            notes: Vec::new(),
        }
    }

    fn claimed(name: &str, version: &str, ecosystem: Ecosystem) -> Package {
        let mut p = Package::embedded(
            ecosystem,
            name,
            version,
            "var/lib/dpkg/status",
            None,
            "dpkg",
        );
        p.arch = ecosystem
            .descriptor()
            .distro_package
            .then(|| "amd64".into());
        p
    }

    fn debian() -> Distro {
        Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
            ..Default::default()
        }
    }

    fn techniques(p: &Package) -> Vec<(Technique, usize)> {
        let ev = p.evidence.as_ref().unwrap();
        ev.techniques
            .iter()
            .map(|t| (t.technique, t.files))
            .collect()
    }

    #[test]
    fn an_exact_package_carries_purl_techniques_and_one_location_per_layer() {
        let id = identified("libfoo", Resolution::Exact, &["1.0-1"]);
        let p = to_package(&id, Some(&debian()));
        assert_eq!(p.version, "1.0-1");
        assert_eq!(
            p.purl,
            "pkg:deb/debian/libfoo@1.0-1?arch=amd64&distro=debian-12"
        );
        assert_eq!(p.found_by, "kiln-rainbow-deb");
        assert_eq!(
            techniques(&p),
            vec![(Technique::FileDigest, 2), (Technique::ElfBuildId, 1)]
        );
        let layers: Vec<Option<usize>> = p.locations.iter().map(|l| l.layer).collect();
        assert_eq!(layers, vec![Some(0), Some(1)]);
        let ev = p.evidence.unwrap();
        assert_eq!((ev.files_seen, ev.files_total), (3, 4));
        assert!(ev.candidate_versions.is_empty());
    }

    #[test]
    fn version_not_in_db_has_no_version_and_names_the_nearest() {
        let id = identified("libfoo", Resolution::VersionNotInDb, &["1.0-1"]);
        let p = to_package(&id, Some(&debian()));
        assert_eq!(p.version, "");
        assert_eq!(p.purl, "pkg:deb/debian/libfoo?arch=amd64&distro=debian-12");
        let ev = p.evidence.unwrap();
        assert_eq!(ev.resolution, Resolution::VersionNotInDb);
        assert_eq!(ev.nearest_version.as_deref(), Some("1.0-1"));
    }

    #[test]
    fn a_version_set_lists_every_candidate_and_coherence_is_a_technique() {
        let set = to_package(
            &identified("libfoo", Resolution::VersionSet, &["2", "1"]),
            None,
        );
        assert_eq!(set.version, "2 | 1");
        assert_eq!(set.evidence.unwrap().candidate_versions, vec!["2", "1"]);
        let id = identified("libfoo", Resolution::ExactBySourceCoherence, &["2"]);
        let coherent = to_package(&id, None);
        assert!(techniques(&coherent).contains(&(Technique::SourceCoherence, 0)));
    }

    #[test]
    fn cross_check_agreement_disagreement_and_absence() {
        let id = identified("libfoo", Resolution::Exact, &["1.0-2"]);
        let agree = reconcile(
            &Identification {
                packages: vec![id.clone()],
                ..Default::default()
            },
            vec![claimed("libfoo", "1.0-2", Ecosystem::Deb)],
            None,
        );
        assert_eq!(agree.len(), 1, "the metadata's package is the same one");
        assert!(techniques(&agree[0]).contains(&(Technique::PackageMetadata, 0)));

        let mut p = to_package(&id, None);
        cross_check(&mut p, &id, &[claimed("libfoo", "1.0-1", Ecosystem::Deb)]);
        let notes = &p.evidence.as_ref().unwrap().notes;
        assert!(
            notes.contains(
                &"DISAGREEMENT: package metadata claims 1.0-1 but the files match 1.0-2"
                    .to_string()
            ),
            "{notes:?}"
        );
        assert!(!techniques(&p)
            .iter()
            .any(|t| t.0 == Technique::PackageMetadata));

        let unknown = identified("libfoo", Resolution::VersionNotInDb, &["1.0-1"]);
        let mut p = to_package(&unknown, None);
        cross_check(
            &mut p,
            &unknown,
            &[claimed("libfoo", "1.0-9", Ecosystem::Deb)],
        );
        assert!(p.evidence.unwrap().notes[0].ends_with("no known version (nearest 1.0-1)"));

        let mut p = to_package(&id, None);
        cross_check(&mut p, &id, &[claimed("other", "1", Ecosystem::Deb)]);
        assert_eq!(
            p.evidence.unwrap().notes,
            vec!["not declared by the image's package metadata"]
        );
        let mut p = to_package(&id, None);
        cross_check(&mut p, &id, &[]);
        assert!(
            p.evidence.unwrap().notes.is_empty(),
            "no metadata, no claim"
        );
    }

    #[test]
    fn unconfirmed_metadata_stays_marked_metadata_only() {
        let found = Identification::default();
        let out = reconcile(
            &found,
            vec![
                claimed("bash", "5.2", Ecosystem::Deb),
                claimed("Requests", "2.0", Ecosystem::Python),
            ],
            None,
        );
        let ev: Vec<&Evidence> = out.iter().map(|p| p.evidence.as_ref().unwrap()).collect();
        assert!(ev.iter().all(|e| e.resolution == Resolution::MetadataOnly));
        assert_eq!(ev[0].notes.len(), 1);
        assert!(ev[1].notes.is_empty());
    }

    #[test]
    fn same_package_normalises_python_names_and_checks_deb_arch() {
        let mut wheel = identified("zope-interface", Resolution::Exact, &["6.0"]);
        wheel.ecosystem = Ecosystem::Python;
        assert!(same_package(
            &claimed("Zope.Interface", "6.0", Ecosystem::Python),
            &wheel
        ));
        assert!(!same_package(
            &claimed("zope-interface", "6.0", Ecosystem::Deb),
            &wheel
        ));
        let deb = identified("libfoo", Resolution::Exact, &["1"]);
        let mut other_arch = claimed("libfoo", "1", Ecosystem::Deb);
        other_arch.arch = Some("i386".into());
        assert!(!same_package(&other_arch, &deb));
    }

    fn component(version: &str, confidence: f64) -> Package {
        let mut p = Package::embedded(Ecosystem::Generic, "zlib", version, "app/bin", None, "t");
        let resolution = if version.is_empty() {
            Resolution::ComponentProjectOnly
        } else {
            Resolution::ComponentVersion
        };
        let mut ev = Evidence::new(resolution, confidence);
        ev.count(Technique::VersionString, confidence);
        ev.notes.push(format!("clue {version}"));
        p.evidence = Some(ev);
        p
    }

    fn by_functions(version: &str, confidence: f64) -> Package {
        let mut p = component(version, confidence);
        let ev = p.evidence.as_mut().unwrap();
        ev.techniques[0].technique = Technique::FunctionHashes;
        if version.is_empty() {
            ev.resolution = Resolution::VersionNotInDb;
            ev.nearest_version = Some("1.2.13".into());
            ev.version_range = Some("vers:generic/>1.2.11".into());
        }
        p
    }

    #[test]
    fn merging_function_evidence_into_a_component() {
        // Agreement: confidence up, both techniques listed.
        let mut ps = vec![component("1.2.13", 0.8)];
        merge_component(&mut ps, by_functions("1.2.13", 0.7));
        let ev = ps[0].evidence.as_ref().unwrap();
        assert!((ev.confidence - 0.85).abs() < 1e-9);
        assert_eq!(ev.techniques.len(), 2);

        // Disagreement: kept, noted, capped; functions not behind the answer.
        let mut ps = vec![component("1.2.13", 0.8)];
        merge_component(&mut ps, by_functions("1.2.11", 0.9));
        let ev = ps[0].evidence.as_ref().unwrap();
        assert_eq!(ps[0].version, "1.2.13");
        assert_eq!(ev.confidence, 0.5);
        assert_eq!(ev.techniques.len(), 1);
        assert!(ev
            .notes
            .iter()
            .any(|n| n.starts_with("DISAGREEMENT: function hashes point to zlib 1.2.11")));

        // A project named without a version takes the functions' version.
        let mut ps = vec![component("", 0.5)];
        merge_component(&mut ps, by_functions("1.2.13", 0.9));
        assert_eq!(ps[0].version, "1.2.13");
        assert_eq!(ps[0].purl, "pkg:generic/zlib@1.2.13");
        assert_eq!(
            ps[0].evidence.as_ref().unwrap().resolution,
            Resolution::ComponentVersion
        );

        // Functions that only bound the version add the range.
        let mut ps = vec![component("", 0.5)];
        merge_component(&mut ps, by_functions("", 0.6));
        let ev = ps[0].evidence.as_ref().unwrap();
        assert_eq!(ps[0].version, "");
        assert_eq!(ev.version_range.as_deref(), Some("vers:generic/>1.2.11"));

        // Another file: a package of its own.
        let mut ps = vec![component("1.2.13", 0.8)];
        let mut elsewhere = by_functions("1.2.13", 0.7);
        elsewhere.locations[0].path = "/other".into();
        merge_component(&mut ps, elsewhere);
        assert_eq!(ps.len(), 2);
    }
}
