//! How a package was identified from bytes: the resolution of its version,
//! the techniques behind it, and where the evidence sits. Closed sets are
//! enums serialised to the strings kiln's documents have always carried.

use serde::Serialize;

/// How a package's version was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// One version explains the bytes best.
    Exact,
    /// Several fit; the version shared by its source's other binaries won.
    ExactBySourceCoherence,
    /// Several versions fit equally; all are listed.
    VersionSet,
    /// Every known version is contradicted by some file: the installed
    /// version is one the signature DB does not have.
    VersionNotInDb,
    /// Declared by package metadata; no file of it matched the DB.
    MetadataOnly,
    /// A component inside another file, whose version the evidence names.
    ComponentVersion,
    /// A component inside another file, named but without a version.
    ComponentProjectOnly,
}

impl Resolution {
    /// The name used in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Exact => "exact",
            Resolution::ExactBySourceCoherence => "exact-by-source-coherence",
            Resolution::VersionSet => "version-set",
            Resolution::VersionNotInDb => "version-not-in-db",
            Resolution::MetadataOnly => "metadata-only",
            Resolution::ComponentVersion => "component-version",
            Resolution::ComponentProjectOnly => "component-project-only",
        }
    }

    /// Does it name one exact version?
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            Resolution::Exact | Resolution::ExactBySourceCoherence | Resolution::ComponentVersion
        )
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A way of recognising a package or component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technique {
    /// Same bytes at the same path.
    FileDigest,
    /// Same ELF build-id at the same path.
    ElfBuildId,
    /// Same loaded sections (code and data) at the same path.
    ElfLoadedBytes,
    /// Every function of the file is one of the build's.
    ElfFunctions,
    /// Same bytes (or build-id) at another path.
    FileDigestRenamed,
    /// The version shared by the source's other binary packages.
    SourceCoherence,
    /// What the image's package metadata declares.
    PackageMetadata,
    /// Distinctive function hashes of a project inside another file.
    FunctionHashes,
    /// A version function's value, read by evaluating its code.
    VersionFunction,
    /// A string only one project's files carry, holding its version.
    VersionString,
    /// A version string other projects' files also match (never alone).
    WeakString,
    /// A library file name or SONAME.
    LibraryName,
    /// A versioned library of the same project beside it.
    Sibling,
    /// Loaded only by one project's libraries.
    NeededOnlyBy,
}

impl Technique {
    /// The name used in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Technique::FileDigest => "file-digest",
            Technique::ElfBuildId => "elf-build-id",
            Technique::ElfLoadedBytes => "elf-loaded-bytes",
            Technique::ElfFunctions => "elf-functions",
            Technique::FileDigestRenamed => "file-digest-renamed",
            Technique::SourceCoherence => "source-coherence",
            Technique::PackageMetadata => "package-metadata",
            Technique::FunctionHashes => "function-hashes",
            Technique::VersionFunction => "version-function",
            Technique::VersionString => "version-string",
            Technique::WeakString => "weak-string",
            Technique::LibraryName => "library-name",
            Technique::Sibling => "sibling",
            Technique::NeededOnlyBy => "needed-only-by",
        }
    }

    /// The CycloneDX identity-evidence method it is an instance of.
    pub fn cyclonedx_method(self) -> &'static str {
        match self {
            Technique::FileDigest | Technique::FileDigestRenamed | Technique::ElfLoadedBytes => {
                "hash-comparison"
            }
            Technique::ElfBuildId
            | Technique::ElfFunctions
            | Technique::FunctionHashes
            | Technique::VersionFunction
            | Technique::VersionString
            | Technique::WeakString => "binary-analysis",
            Technique::LibraryName => "filename",
            Technique::PackageMetadata => "manifest-analysis",
            Technique::SourceCoherence | Technique::Sibling | Technique::NeededOnlyBy => "other",
        }
    }
}

impl std::fmt::Display for Technique {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a package was identified, for packages found (or checked) by bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// 0..1: how sure the identification (name and version) is.
    pub confidence: f64,
    /// How the version was settled.
    pub resolution: Resolution,
    /// Which techniques contributed, and on how many files.
    pub techniques: Vec<Contribution>,
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

impl Evidence {
    /// Evidence with a resolution and confidence, and nothing else yet.
    pub fn new(resolution: Resolution, confidence: f64) -> Self {
        Evidence {
            confidence,
            resolution,
            techniques: Vec::new(),
            files_seen: 0,
            files_total: 0,
            candidate_versions: Vec::new(),
            nearest_version: None,
            version_range: None,
            notes: Vec::new(),
            occurrences: Vec::new(),
        }
    }

    /// Count one more file for `technique` (added with `confidence` when
    /// it is new).
    pub fn count(&mut self, technique: Technique, confidence: f64) {
        match self
            .techniques
            .iter_mut()
            .find(|t| t.technique == technique)
        {
            Some(t) => t.files += 1,
            None => self.techniques.push(Contribution {
                technique,
                files: 1,
                confidence,
            }),
        }
    }
}

/// One technique's contribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The technique.
    pub technique: Technique,
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
    pub technique: Technique,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serialisation() {
        for r in [
            Resolution::Exact,
            Resolution::ExactBySourceCoherence,
            Resolution::VersionSet,
            Resolution::VersionNotInDb,
            Resolution::MetadataOnly,
            Resolution::ComponentVersion,
            Resolution::ComponentProjectOnly,
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for t in [
            Technique::FileDigest,
            Technique::ElfBuildId,
            Technique::ElfLoadedBytes,
            Technique::ElfFunctions,
            Technique::FileDigestRenamed,
            Technique::SourceCoherence,
            Technique::PackageMetadata,
            Technique::FunctionHashes,
            Technique::VersionFunction,
            Technique::VersionString,
            Technique::WeakString,
            Technique::LibraryName,
            Technique::Sibling,
            Technique::NeededOnlyBy,
        ] {
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
    }

    #[test]
    fn counting_adds_files_to_one_entry() {
        let mut e = Evidence::new(Resolution::Exact, 0.9);
        e.count(Technique::FileDigest, 0.99);
        e.count(Technique::ElfBuildId, 0.97);
        e.count(Technique::FileDigest, 0.5);
        assert_eq!(e.techniques.len(), 2);
        assert_eq!(e.techniques[0].files, 2);
        assert_eq!(e.techniques[0].confidence, 0.99);
    }
}
