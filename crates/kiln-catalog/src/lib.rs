//! What an image's package metadata claims.
//!
//! `kiln-catalog` is the metadata half of kiln's third stage: given a
//! squashed [`kiln_tree::Tree`], it reads the package databases an image
//! carries and reports each [`Package`] with its version, architecture,
//! source package, package URL, the files it owns and the layer that
//! installed it. It reads the image only through the tree, never tar files
//! or host paths, so the same catalogers work on images and on `dir:`
//! roots.
//!
//! Ecosystems are modules, each a `wants` predicate (which files it needs,
//! so the tree can capture them while layers stream) and a `catalog`
//! function:
//!
//! - [`dpkg`] reads `var/lib/dpkg/status`, distroless `status.d/`, `info/*.list`, `*.md5sums`;
//! - [`apk`] reads `lib/apk/db/installed`;
//! - [`rpm`] reads the rpmdb (SQLite, Berkeley DB or NDB);
//! - [`python`] reads `*.dist-info`, `*.egg-info`;
//! - [`java`] reads jar/war/ear archives, nested ones included;
//! - [`ruby`] reads gemspecs and `Gemfile.lock`, [`php`] Composer's
//!   `installed.json` and `composer.lock`, [`dotnet`] `*.deps.json`;
//! - [`npm`] reads `node_modules/**/package.json` and lockfiles;
//! - [`golang`] reads the build info inside Go binaries, and
//!   [`rust`] reads `cargo auditable` data inside Rust binaries
//!   (both need the tree built with an ELF inspector, as `kiln-scan`
//!   builds it);
//! - [`os_release`] reads the distro, which shapes the purls.
//!
//! A file that cannot be parsed becomes an [`Unknown`] and the scan goes on.
//!
//! The package model every later stage shares lives here too: [`Package`]
//! with its [`Evidence`] (typed [`Resolution`] and [`Technique`]s), and one
//! [`Descriptor`] per [`Ecosystem`] — table label, purl type, OSV name,
//! SPDX origin, and the [`version::Scheme`] that orders its versions and
//! names its `vers:` ranges.
//!
//! ```
//! use kiln_catalog::{purl::purl, Distro, Ecosystem};
//! let d = Distro { id: "debian".into(), version_id: Some("12".into()), ..Default::default() };
//! assert_eq!(
//!     purl(Ecosystem::Deb, "curl", "7.88.1-10+deb12u5", Some("amd64"), Some(&d)),
//!     "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12",
//! );
//! ```
#![deny(missing_docs)]

pub mod apk;
pub mod deb822;
pub mod dotnet;
pub mod dpkg;
mod ecosystem;
mod evidence;
pub mod golang;
pub mod java;
pub mod npm;
pub mod os_release;
mod package;
pub mod php;
pub mod projects;
pub mod purl;
pub mod python;
pub mod rpm;
pub mod ruby;
pub mod rust;
pub mod version;

use kiln_tree::Tree;

pub use ecosystem::{Descriptor, Ecosystem, NameSplit, OsvName};
pub use evidence::{Contribution, Evidence, Occurrence, Resolution, Technique};
pub use package::{Catalog, Distro, Location, OwnedFile, Package, Unknown};

/// Largest metadata file a cataloger reads into memory.
pub const MAX_METADATA_FILE: u64 = 64 << 20;

/// One ecosystem's cataloger: which files it reads, and how it reads them.
struct Cataloger {
    wants: fn(&str) -> bool,
    run: fn(&Tree, Option<&Distro>, &mut Vec<Package>, &mut Vec<Unknown>),
    /// Largest file it reads: package databases and archives outgrow the
    /// metadata files the others read.
    max_size: u64,
}

/// The catalogers, in the order they run.
const CATALOGERS: &[Cataloger] = &[
    Cataloger {
        wants: dpkg::wants,
        run: dpkg::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: apk::wants,
        run: apk::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: rpm::wants,
        run: rpm::catalog,
        max_size: rpm::MAX_DB,
    },
    Cataloger {
        wants: python::wants,
        run: python::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: npm::wants,
        run: npm::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: java::wants,
        run: java::catalog,
        max_size: java::MAX_ARCHIVE,
    },
    Cataloger {
        wants: ruby::wants,
        run: ruby::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: php::wants,
        run: php::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: dotnet::wants,
        run: dotnet::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: golang::wants,
        run: golang::catalog,
        max_size: MAX_METADATA_FILE,
    },
    Cataloger {
        wants: rust::wants,
        run: rust::catalog,
        max_size: MAX_METADATA_FILE,
    },
];

/// Should the tree keep this file in memory while layers stream? True for
/// every file some cataloger will read.
pub fn wants(path: &str, size: u64) -> bool {
    (size <= MAX_METADATA_FILE && os_release::PATHS.contains(&path))
        || CATALOGERS
            .iter()
            .any(|c| size <= c.max_size && (c.wants)(path))
}

/// Run every cataloger over `tree`.
pub fn catalog(tree: &Tree) -> Catalog {
    let mut unknowns = Vec::new();
    let distro = os_release::find(tree, &mut unknowns);
    let mut packages = Vec::new();
    for c in CATALOGERS {
        (c.run)(tree, distro.as_ref(), &mut packages, &mut unknowns);
    }
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.arch).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.arch,
        ))
    });
    Catalog {
        distro,
        packages,
        unknowns,
        unexplained_files: Vec::new(),
    }
}

/// The tree's regular files whose paths `wanted` accepts, with the layer
/// that wrote each: what a cataloger walks.
pub(crate) fn files_where(
    tree: &Tree,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(String, Option<usize>)> {
    tree.iter()
        .filter(|(p, e)| e.is_file() && wanted(p))
        .map(|(p, e)| (p.to_string(), e.layer))
        .collect()
}

/// Read a metadata file as text, recording a failure as an unknown.
pub(crate) fn read_text(tree: &Tree, path: &str, unknowns: &mut Vec<Unknown>) -> Option<String> {
    match tree.read(path, MAX_METADATA_FILE) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            unknowns.push(Unknown {
                path: format!("/{path}"),
                reason: e.to_string(),
            });
            None
        }
    }
}
