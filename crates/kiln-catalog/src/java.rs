//! Java archives — jar, war, ear, par, sar, and the plugin archives that
//! are jars by another name — named by their Maven coordinates from
//! `META-INF/maven/**/pom.properties` (or `pom.xml`), else from
//! `MANIFEST.MF`, else from the file name. Archives nested in archives
//! (Spring Boot's `BOOT-INF/lib`, `WEB-INF/lib`, shaded jars) are opened
//! in memory, within a depth and an expansion budget, so a zip bomb or a
//! cycle of nested archives is refused and reported, not followed.
//! Each package records the archive's SHA-1, the digest Maven Central
//! lookups (and Syft) use.

mod manifest;

use std::io::{Cursor, Read};

use kiln_tree::Tree;
use rayon::prelude::*;
use sha1::{Digest, Sha1};

use crate::{files_where, Distro, Ecosystem, OwnedFile, Package, Unknown};

const EXTENSIONS: &[&str] = &[
    ".jar", ".war", ".ear", ".par", ".sar", ".jpi", ".hpi", ".nar",
];
/// Largest top-level archive read (fat jars of several hundred MiB exist).
pub const MAX_ARCHIVE: u64 = 1 << 30;
/// How deep archives may nest.
const MAX_DEPTH: usize = 4;
/// Total bytes inflated from one top-level archive, nested ones included.
const MAX_EXPANSION: u64 = 512 << 20;
/// Largest single entry inflated (a nested archive or a metadata file).
const MAX_ENTRY: u64 = 128 << 20;

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    is_archive(path)
}

fn is_archive(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// Catalog Java archives.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    // Archives are independent and inflating them is the cost: in parallel.
    let walks: Vec<Walk> = files_where(tree, is_archive)
        .par_iter()
        .map(|(path, layer)| {
            let mut walk = Walk {
                layer: *layer,
                budget: MAX_EXPANSION,
                ancestors: Vec::new(),
                found: Vec::new(),
                refused: Vec::new(),
            };
            match tree.read(path, MAX_ARCHIVE) {
                Ok(data) => walk.archive(&format!("/{path}"), &data),
                Err(e) => walk.refused.push(Unknown::at(path, e.to_string())),
            }
            walk
        })
        .collect();
    for walk in walks {
        out.extend(walk.found);
        unknowns.extend(walk.refused);
    }
}

/// One top-level archive's walk through its nested archives.
struct Walk {
    layer: Option<usize>,
    budget: u64,
    /// SHA-1s of the archives being read, outermost first: a nested
    /// archive identical to one of them is a cycle.
    ancestors: Vec<[u8; 20]>,
    found: Vec<Package>,
    refused: Vec<Unknown>,
}

impl Walk {
    fn refuse(&mut self, location: &str, reason: impl Into<String>) {
        self.refused.push(Unknown {
            path: location.to_string(),
            reason: reason.into(),
        });
    }

    fn archive(&mut self, location: &str, data: &[u8]) {
        let sha1: [u8; 20] = Sha1::digest(data).into();
        if self.ancestors.contains(&sha1) {
            return self.refuse(location, "archive nests itself (cycle); not followed");
        }
        if self.ancestors.len() >= MAX_DEPTH {
            return self.refuse(
                location,
                format!("archives nested deeper than {MAX_DEPTH}; not followed"),
            );
        }
        let mut zip = match zip::ZipArchive::new(Cursor::new(data)) {
            Ok(z) => z,
            Err(e) => return self.refuse(location, format!("not a readable zip archive: {e}")),
        };
        self.ancestors.push(sha1);
        let names: Vec<String> = zip.file_names().map(str::to_string).collect();
        let mut found = Vec::new();
        for name in names
            .iter()
            .filter(|n| n.ends_with("/pom.properties") && n.starts_with("META-INF/maven/"))
        {
            if let Some(text) = self.entry(&mut zip, location, name) {
                found.extend(manifest::pom_properties(&text));
            }
        }
        if found.is_empty() {
            for name in names
                .iter()
                .filter(|n| n.ends_with("/pom.xml") && n.starts_with("META-INF/maven/"))
            {
                if let Some(text) = self.entry(&mut zip, location, name) {
                    found.extend(manifest::pom_xml(&text));
                }
            }
        }
        if found.is_empty() {
            let mf = self
                .entry(&mut zip, location, "META-INF/MANIFEST.MF")
                .unwrap_or_default();
            found.extend(manifest::from_manifest(&mf, location));
        }
        let digest = format!("sha1:{}", hex::encode(sha1));
        for c in found {
            self.found.push(package(c, location, self.layer, &digest));
        }
        for name in names.iter().filter(|n| is_archive(n)) {
            if let Some(inner) = self.bytes(&mut zip, location, name) {
                self.archive(&format!("{location}:{name}"), &inner);
            }
        }
        self.ancestors.pop();
    }

    fn entry(
        &mut self,
        zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
        location: &str,
        name: &str,
    ) -> Option<String> {
        self.bytes(zip, location, name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// One entry's bytes, within the entry cap and the archive's budget.
    fn bytes(
        &mut self,
        zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
        location: &str,
        name: &str,
    ) -> Option<Vec<u8>> {
        let cap = MAX_ENTRY.min(self.budget);
        let mut f = match zip.by_name(name) {
            Ok(f) => f,
            Err(e) => {
                self.refuse(&format!("{location}:{name}"), e.to_string());
                return None;
            }
        };
        if f.size() > cap {
            self.refuse(
                &format!("{location}:{name}"),
                format!(
                    "entry inflates to {} bytes, over the {cap}-byte cap (zip bomb?)",
                    f.size()
                ),
            );
            return None;
        }
        let mut buf = Vec::new();
        // The declared size may lie: read one byte past the cap to know.
        let read = (&mut f).take(cap + 1).read_to_end(&mut buf);
        match read {
            Ok(n) if n as u64 > cap => {
                self.refuse(
                    &format!("{location}:{name}"),
                    format!("entry inflates past the {cap}-byte cap (zip bomb?)"),
                );
                None
            }
            Ok(n) => {
                self.budget -= n as u64;
                Some(buf)
            }
            Err(e) => {
                self.refuse(
                    &format!("{location}:{name}"),
                    format!("cannot inflate: {e}"),
                );
                None
            }
        }
    }
}

fn package(
    c: manifest::Coordinates,
    location: &str,
    layer: Option<usize>,
    digest: &str,
) -> Package {
    let name = match &c.group {
        Some(g) => format!("{g}:{}", c.artifact),
        None => c.artifact.clone(),
    };
    let mut p = Package::embedded(
        Ecosystem::Java,
        &name,
        &c.version,
        location.trim_start_matches('/'),
        layer,
        "java-archive-cataloger",
    );
    p.files = vec![OwnedFile {
        path: location.to_string(),
        digest: Some(digest.to_string()),
    }];
    p.licenses = c.licenses;
    p
}
