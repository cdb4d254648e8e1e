//! rpm: the package database of RHEL, CentOS, Rocky, Alma, Fedora, Amazon
//! Linux, Oracle Linux and SUSE, in each of its three formats —
//! SQLite (`rpmdb.sqlite`), Berkeley DB hash (`Packages`) and NDB
//! (`Packages.db`) — under `/var/lib/rpm` or `/usr/lib/sysimage/rpm`.
//! Every format yields the same header blobs, parsed by [`header`].

mod bdb;
pub mod header;
pub mod ndb;
mod sqlite;

use kiln_tree::Tree;

use crate::purl::purl;
use crate::{Distro, Ecosystem, Location, OwnedFile, Package, Unknown};

/// Largest rpm database read (a full RHEL install's is a few hundred MiB).
pub const MAX_DB: u64 = 1 << 30;

/// Why an rpm database or header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// A header blob is truncated or inconsistent.
    #[error("corrupt rpm header: {0}")]
    Header(&'static str),
    /// The Berkeley DB file is not one kiln can read.
    #[error("Berkeley DB: {0}")]
    Bdb(&'static str),
    /// The NDB file is damaged.
    #[error("NDB: {0}")]
    Ndb(&'static str),
    /// SQLite refused the file.
    #[error("SQLite: {0}")]
    Sqlite(String),
}

/// The formats, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Sqlite,
    Bdb,
    Ndb,
}

const DIRS: &[&str] = &["var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm"];
const FILES: &[(&str, Format)] = &[
    ("rpmdb.sqlite", Format::Sqlite),
    ("Packages.db", Format::Ndb),
    ("Packages", Format::Bdb),
];

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    let Some((dir, name)) = path.rsplit_once('/') else {
        return false;
    };
    DIRS.contains(&dir) && (FILES.iter().any(|(f, _)| *f == name) || name == "rpmdb.sqlite-wal")
}

/// Catalog rpm packages from the first database found (rpm itself uses
/// one; `/var/lib/rpm` is often a link to `/usr/lib/sysimage/rpm`).
pub fn catalog(
    tree: &Tree,
    distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    for dir in DIRS {
        for (name, format) in FILES {
            let path = format!("{dir}/{name}");
            let Some(entry) = tree.get(&path).filter(|e| e.is_file()) else {
                continue;
            };
            let layer = entry.layer;
            match read(tree, &path, *format) {
                Ok(blobs) => add(&blobs, &path, layer, distro, out, unknowns),
                Err(reason) => unknowns.push(Unknown::at(&path, reason)),
            }
            return;
        }
    }
}

fn read(tree: &Tree, path: &str, format: Format) -> Result<Vec<Vec<u8>>, String> {
    let data = tree.read(path, MAX_DB).map_err(|e| e.to_string())?;
    let blobs = match format {
        Format::Sqlite => {
            let wal = tree
                .get(&format!("{path}-wal"))
                .filter(|e| e.is_file())
                .and_then(|_| tree.read(&format!("{path}-wal"), MAX_DB).ok());
            sqlite::values(&data, wal.as_deref())
        }
        Format::Bdb => bdb::values(&data),
        Format::Ndb => ndb::values(&data),
    };
    blobs.map_err(|e| e.to_string())
}

/// Parse each blob into a package; a bad header is reported and skipped.
fn add(
    blobs: &[Vec<u8>],
    path: &str,
    layer: Option<usize>,
    distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    for (i, blob) in blobs.iter().enumerate() {
        // The Berkeley DB keeps a 4-byte instance counter beside the headers.
        if blob.len() <= 8 {
            continue;
        }
        match header::parse(blob) {
            Ok(h) if h.name == "gpg-pubkey" => {}
            Ok(h) => out.push(package(h, path, layer, distro)),
            Err(e) => unknowns.push(Unknown::at(path, format!("record {}: {e}", i + 1))),
        }
    }
}

fn package(
    h: header::Header,
    path: &str,
    layer: Option<usize>,
    distro: Option<&Distro>,
) -> Package {
    let version = h.evr();
    let (source_name, source_version) = h.source().unzip();
    Package {
        purl: purl(Ecosystem::Rpm, &h.name, &version, h.arch.as_deref(), distro),
        version,
        ecosystem: Ecosystem::Rpm,
        source_name,
        source_version,
        licenses: h.license.clone().into_iter().collect(),
        found_by: "rpm-db-cataloger",
        locations: vec![Location {
            path: format!("/{path}"),
            layer,
        }],
        files: h
            .files
            .into_iter()
            .map(|(path, digest)| OwnedFile { path, digest })
            .collect(),
        evidence: None,
        parent: None,
        arch: h.arch,
        name: h.name,
    }
}
