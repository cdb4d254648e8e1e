//! `kiln strip`: make the adversary images a metadata-only scanner cannot
//! see through, so kiln can prove it can.
//!
//! Transforms (each selectable):
//!
//! - `DeletePackageDb`: the dpkg, apk and rpm databases and
//!   every `*.dist-info` / `*.egg-info`;
//! - `DeleteDocs`: `/usr/share/doc`;
//! - `AppendElf`: SlimToolkit's `--obfuscate-metadata`: bytes
//!   appended to every ELF executable, so whole-file hashes no longer match;
//! - `HideAppMetadata`: application manifests and lockfiles
//!   (`package.json`, `requirements.txt`, `go.sum`, …) moved to hidden names;
//! - `RenameElf`: ELF files renamed.
//!
//! Each layer is rewritten on its own, or the image is
//! squashed into one layer ([`strip`]); either way with the source image's
//! config, to an `oci-dir:` or `oci-archive:` destination.
//!
//! ```
//! use kiln_strip::Transform;
//! let t = Transform::parse_list("delete-db,append-elf").unwrap();
//! assert_eq!(t, vec![Transform::DeletePackageDb, Transform::AppendElf]);
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;

use kiln_image::spec::{History, ImageConfig};
use kiln_image::write::ImageOutput;
use kiln_image::{Compression, ImageError, SourceRef};
use kiln_tree::{path, Entry, Export, Tree, TreeError};
use serde::Serialize;

/// One obfuscation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Delete dpkg/apk/rpm databases and Python `*.dist-info`/`*.egg-info`.
    DeletePackageDb,
    /// Delete `/usr/share/doc`.
    DeleteDocs,
    /// Append bytes to every ELF executable.
    AppendElf,
    /// Move app manifests and lockfiles to hidden names.
    HideAppMetadata,
    /// Rename ELF files.
    RenameElf,
}

impl Transform {
    /// Every transform, in the order they apply.
    pub const ALL: &'static [Transform] = &[
        Transform::DeletePackageDb,
        Transform::DeleteDocs,
        Transform::AppendElf,
        Transform::HideAppMetadata,
        Transform::RenameElf,
    ];

    /// The transforms `kiln strip` applies when none are named: all but
    /// renaming, which breaks the image's own links.
    pub const DEFAULT: &'static [Transform] = &[
        Transform::DeletePackageDb,
        Transform::DeleteDocs,
        Transform::AppendElf,
        Transform::HideAppMetadata,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transform::DeletePackageDb => "delete-db",
            Transform::DeleteDocs => "delete-docs",
            Transform::AppendElf => "append-elf",
            Transform::HideAppMetadata => "hide-app-metadata",
            Transform::RenameElf => "rename-elf",
        }
    }

    /// Parse a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<Transform>, String> {
        s.split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                Transform::ALL
                    .iter()
                    .copied()
                    .find(|x| x.name() == t.trim())
                    .ok_or_else(|| {
                        let names: Vec<&str> = Transform::ALL.iter().map(|x| x.name()).collect();
                        format!("unknown transform {t:?}; choose from {}", names.join(", "))
                    })
            })
            .collect()
    }
}

impl std::str::FromStr for Transform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match Transform::parse_list(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!("expected one transform name, got {s:?}")),
        }
    }
}

/// Package databases, by ecosystem.
const PACKAGE_DBS: &[&str] = &[
    "var/lib/dpkg",
    "lib/apk/db",
    "var/lib/rpm",
    "usr/lib/sysimage/rpm",
];
const DOCS: &str = "usr/share/doc";
/// Application metadata SlimToolkit's obfuscation hides.
const APP_METADATA: &[&str] = &[
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "requirements.txt",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "pyproject.toml",
    "go.mod",
    "go.sum",
    "Cargo.toml",
    "Cargo.lock",
    "Gemfile",
    "Gemfile.lock",
    "composer.json",
    "composer.lock",
    "pom.xml",
];
/// What is appended to ELF executables: a marker plus padding, as
/// SlimToolkit's obfuscation appends a trailer.
const ELF_TRAILER: &[u8] =
    b"\0kiln-strip: appended bytes to defeat whole-file hashing\0\0\0\0\0\0\0\0";

/// Errors of `kiln strip`.
#[derive(Debug, thiserror::Error)]
pub enum StripError {
    /// Writing the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Reading the source failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// A source layer is malformed.
    #[error("layer {layer}: {reason}")]
    Layer {
        /// The layer's digest.
        layer: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a strip did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StripReport {
    /// Transforms applied.
    pub transforms: Vec<Transform>,
    /// Paths removed (directories count once, with their contents).
    pub deleted: usize,
    /// ELF executables padded.
    pub appended: usize,
    /// Files moved to other names.
    pub renamed: usize,
    /// Paths written.
    pub kept: usize,
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn is_python_metadata(path: &str) -> bool {
    path.split('/')
        .any(|c| c.ends_with(".dist-info") || c.ends_with(".egg-info"))
}

/// Decide the fate of one path. `elf` says whether a regular file is ELF.
fn plan(path: &str, e: &Entry, elf: bool, transforms: &[Transform]) -> Option<Export> {
    plan_for(path, e.is_file(), e.mode, elf, transforms)
}

/// [`plan`] on bare facts, for layer members that are not tree entries.
fn plan_for(
    path: &str,
    is_file: bool,
    mode: u32,
    elf: bool,
    transforms: &[Transform],
) -> Option<Export> {
    let on = |t| transforms.contains(&t);
    if on(Transform::DeletePackageDb)
        && (PACKAGE_DBS.iter().any(|d| under(path, d)) || is_python_metadata(path))
    {
        return None;
    }
    if on(Transform::DeleteDocs) && under(path, DOCS) {
        return None;
    }
    let mut x = Export::default();
    if is_file {
        let name = path::file_name(path);
        if on(Transform::HideAppMetadata) && APP_METADATA.contains(&name) {
            x.rename = Some(path::join(
                path::parent(path),
                &format!(".kiln-hidden.{name}"),
            ));
        }
        if elf && on(Transform::AppendElf) && mode & 0o111 != 0 {
            x.append = ELF_TRAILER.to_vec();
        }
        if elf && on(Transform::RenameElf) {
            x.rename = Some(path::join(
                path::parent(path),
                &format!(".{}.renamed", name),
            ));
        }
    }
    Some(x)
}

mod layers;
pub use layers::strip_layers;

/// Strip `tree` (built with ELF detection: see [`elf_marker`]) into `dest`
/// as one squashed layer. `config` is the source image's config, or a
/// minimal one for `dir:`. [`strip_layers`] keeps an image's layering.
pub fn strip(
    tree: &Tree,
    config: Option<&ImageConfig>,
    dest: &SourceRef,
    transforms: &[Transform],
) -> Result<StripReport, StripError> {
    let is_elf = |e: &Entry| e.facts::<ElfMarker>().is_some();
    let mut report = StripReport {
        transforms: transforms.to_vec(),
        ..Default::default()
    };
    for (p, e) in tree.iter() {
        match plan(p, e, is_elf(e), transforms) {
            None => report.deleted += 1,
            Some(x) => {
                report.kept += 1;
                report.appended += usize::from(!x.append.is_empty());
                report.renamed += usize::from(x.rename.is_some());
            }
        }
    }
    let out = ImageOutput::create(dest)?;
    let sink = out.layer_sink(Compression::Gzip)?;
    let sink = tree.export(|p, e| plan(p, e, is_elf(e), transforms), sink)?;
    let layer = sink.finish()?;
    let created = kiln_image::spec::creation_time(config);
    let mut cfg = config.cloned().unwrap_or_else(|| ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    });
    let names: Vec<&str> = transforms.iter().map(|t| t.name()).collect();
    cfg.history = vec![History {
        created: Some(created.clone()),
        created_by: Some(format!("kiln strip --transforms {}", names.join(","))),
        empty_layer: false,
    }];
    cfg.created = Some(created);
    let labels = cfg.config.labels.get_or_insert_with(BTreeMap::new);
    labels.insert("dev.kiln.strip.transforms".into(), names.join(","));
    out.finish(cfg, &[layer])?;
    Ok(report)
}

/// Facts marker stored by [`elf_marker`]: the file starts like ELF.
#[derive(Debug, Clone, Copy)]
pub struct ElfMarker;

/// A tree inspector that marks ELF files, for [`strip`].
pub fn elf_marker(_: &str, data: &[u8]) -> Option<kiln_tree::Facts> {
    data.starts_with(b"\x7fELF")
        .then(|| std::sync::Arc::new(ElfMarker) as kiln_tree::Facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Transform::ALL {
            assert_eq!(Transform::parse_list(t.name()).unwrap(), vec![*t]);
        }
        assert!(Transform::parse_list("nope").is_err());
    }

    #[test]
    fn paths() {
        assert!(under("var/lib/dpkg/status", "var/lib/dpkg"));
        assert!(!under("var/lib/dpkgx", "var/lib/dpkg"));
        assert!(is_python_metadata(
            "usr/lib/python3/dist-packages/pip-23.2.1.dist-info/RECORD"
        ));
    }
}
