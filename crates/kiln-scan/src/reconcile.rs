//! What the bytes say against what the metadata claims: each identified
//! package becomes a reported [`Package`] with its evidence, cross-checked
//! with the package the metadata declares under the same name; metadata
//! the bytes did not confirm stays in the report, marked so.

use kiln_catalog::purl::purl;
use kiln_catalog::{
    Contribution, Distro, Ecosystem, Evidence, Location, Occurrence, Package, Resolution,
    Technique,
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
/// what version strings or functions already said about the same file.
/// Techniques are listed only when they agree with the reported version.
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

/// The report's order: by ecosystem, name, version.
pub fn sort(packages: &mut [Package]) {
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version).cmp(&(b.ecosystem, &b.name, &b.version))
    });
}
