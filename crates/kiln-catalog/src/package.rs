//! The package model every cataloger fills in and every report reads.

use serde::Serialize;

/// Which package ecosystem a package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian packages (dpkg).
    Deb,
    /// Alpine packages (apk).
    Apk,
    /// Python distributions.
    Python,
    /// Go modules, from the build info embedded in Go binaries.
    Go,
    /// Rust crates, from `cargo auditable` data in Rust binaries.
    Cargo,
    /// Upstream projects found inside other files (vendored libraries),
    /// named by kiln's canonical project names.
    Generic,
}

impl Ecosystem {
    /// The short type name shown in tables, as Syft shows it.
    pub fn label(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Python => "python",
            Ecosystem::Go => "go-module",
            Ecosystem::Cargo => "rust-crate",
            Ecosystem::Generic => "generic",
        }
    }
}

/// Where a piece of metadata was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Absolute path inside the image.
    pub path: String,
    /// Index of the layer that last wrote the file (`None` for `dir:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
}

/// A file a package claims to own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedFile {
    /// Absolute path inside the image.
    pub path: String,
    /// A digest the metadata records for it, as `algorithm:hex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One package, as its metadata declares it.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// Package name as the ecosystem spells it.
    pub name: String,
    /// Version string, verbatim (Debian epochs and revisions included).
    pub version: String,
    /// Ecosystem.
    #[serde(rename = "type")]
    pub ecosystem: Ecosystem,
    /// Architecture, where the ecosystem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Source package name (Debian `Source:`, Alpine origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// Source package version, when it differs or is stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Package URL.
    pub purl: String,
    /// Declared licenses, verbatim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    /// Which cataloger found it.
    pub found_by: &'static str,
    /// The metadata files that declare it.
    pub locations: Vec<Location>,
    /// Files the metadata says it owns.
    pub files: Vec<OwnedFile>,
    /// How the package was identified from bytes, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// For a component found inside another package's file (a vendored
    /// library in a wheel): the purl of that package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Package {
    /// A package named by build data embedded in a binary (Go build info,
    /// cargo-auditable), located at the binary's tree path.
    pub fn embedded(
        ecosystem: Ecosystem,
        name: &str,
        version: &str,
        path: &str,
        layer: Option<usize>,
        found_by: &'static str,
    ) -> Package {
        Package {
            purl: crate::purl::purl(ecosystem, name, version, None, None),
            name: name.to_string(),
            version: version.to_string(),
            ecosystem,
            arch: None,
            source_name: None,
            source_version: None,
            licenses: Vec::new(),
            found_by,
            locations: vec![Location {
                path: format!("/{path}"),
                layer,
            }],
            files: Vec::new(),
            evidence: None,
            parent: None,
        }
    }
}

/// How a package was identified, for packages found (or checked) by bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// 0..1: how sure the identification (name and version) is.
    pub confidence: f64,
    /// `exact`, `exact-by-source-coherence`, `version-set`,
    /// `version-not-in-db` or `metadata-only`.
    pub resolution: String,
    /// Which techniques contributed, and on how many files.
    pub techniques: Vec<Technique>,
    /// Files of the package seen in the image.
    pub files_seen: usize,
    /// Regular files the resolved version ships.
    pub files_total: usize,
    /// The versions the bytes fit, when more than one does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidate_versions: Vec<String>,
    /// For `version-not-in-db`: the known version that explains most files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_version: Option<String>,
    /// The versions the evidence allows, as a `vers:` range (tied versions,
    /// or the known versions an unknown one lies between).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_range: Option<String>,
    /// Human-readable notes (coherence decisions, metadata disagreements).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where the evidence sits.
    pub occurrences: Vec<Occurrence>,
}

/// One technique's contribution.
#[derive(Debug, Clone, Serialize)]
pub struct Technique {
    /// `file-sha256`, `file-sha256-renamed`, `elf-build-id`,
    /// `source-coherence`, `package-metadata`.
    pub technique: String,
    /// Files this technique matched.
    pub files: usize,
    /// How much a match by this technique is worth on its own.
    pub confidence: f64,
}

/// A file that is evidence for a package.
#[derive(Debug, Clone, Serialize)]
pub struct Occurrence {
    /// Absolute path in the image.
    pub path: String,
    /// Layer that last wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Technique that matched it.
    pub technique: String,
}

/// A file a cataloger could not use, with the reason. One bad file never
/// aborts a scan; it is reported here instead.
#[derive(Debug, Clone, Serialize)]
pub struct Unknown {
    /// Absolute path inside the image.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// The operating system an image declares in `os-release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Distro {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, e.g. `bookworm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// `PRETTY_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// `ID_LIKE`, split.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub id_like: Vec<String>,
}

impl Distro {
    /// The purl `distro` qualifier value, e.g. `debian-12`.
    pub fn qualifier(&self) -> Option<String> {
        self.version_id
            .as_ref()
            .or(self.codename.as_ref())
            .map(|v| format!("{}-{}", self.id, v))
    }
}

/// Everything the metadata catalogers found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// The declared OS, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    /// Packages, sorted by ecosystem, name, version.
    pub packages: Vec<Package>,
    /// Files that could not be used.
    pub unknowns: Vec<Unknown>,
    /// Regular files no identified package explains (byte scans only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unexplained_files: Vec<String>,
}
