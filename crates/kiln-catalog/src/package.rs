//! The package model every cataloger fills in and every report reads.

use serde::Serialize;

use crate::ecosystem::Ecosystem;
use crate::evidence::Evidence;

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

impl Unknown {
    /// A file at tree path `path` (no leading `/`) and why it was refused.
    pub fn at(path: &str, reason: impl Into<String>) -> Unknown {
        Unknown {
            path: format!("/{path}"),
            reason: reason.into(),
        }
    }
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
