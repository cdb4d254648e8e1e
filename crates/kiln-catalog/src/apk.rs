//! apk: `lib/apk/db/installed`, Alpine's (and Wolfi's) package database.

use kiln_tree::Tree;

use crate::purl::purl;
use crate::read_text;
use crate::{Distro, Ecosystem, Location, OwnedFile, Package, Unknown};

const INSTALLED: &str = "lib/apk/db/installed";

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    path == INSTALLED
}

/// Catalog apk packages.
pub fn catalog(
    tree: &Tree,
    distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    if !tree.get(INSTALLED).is_some_and(|e| e.is_file()) {
        return;
    }
    let Some(text) = read_text(tree, INSTALLED, unknowns) else {
        return;
    };
    let layer = tree.get(INSTALLED).and_then(|e| e.layer);
    for record in parse(&text) {
        if record.name.is_empty() {
            continue;
        }
        out.push(Package {
            purl: purl(
                Ecosystem::Apk,
                &record.name,
                &record.version,
                record.arch.as_deref(),
                distro,
            ),
            name: record.name,
            version: record.version,
            ecosystem: Ecosystem::Apk,
            arch: record.arch,
            source_name: record.origin,
            source_version: None,
            licenses: record.license.into_iter().collect(),
            found_by: "apk-db-cataloger",
            locations: vec![Location {
                path: format!("/{INSTALLED}"),
                layer,
            }],
            files: record.files,
            evidence: None,
            parent: None,
        });
    }
}

/// One record of the installed database.
#[derive(Debug, Default)]
pub struct Record {
    /// `P:`
    pub name: String,
    /// `V:`
    pub version: String,
    /// `A:`
    pub arch: Option<String>,
    /// `o:`
    pub origin: Option<String>,
    /// `L:`
    pub license: Option<String>,
    /// `F:` + `R:` pairs, with `Z:` checksums.
    pub files: Vec<OwnedFile>,
}

/// Parse the installed database: blank-line separated records of
/// single-letter `K:value` lines, where `R:` files belong to the last `F:`.
pub fn parse(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut cur = Record::default();
    let mut dir = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.name.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            dir.clear();
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k {
            "P" => cur.name = v.to_string(),
            "V" => cur.version = v.to_string(),
            "A" => cur.arch = Some(v.to_string()),
            "o" => cur.origin = Some(v.to_string()),
            "L" => cur.license = Some(v.to_string()),
            "F" => dir = v.to_string(),
            "R" => cur.files.push(OwnedFile {
                path: if dir.is_empty() {
                    format!("/{v}")
                } else {
                    format!("/{dir}/{v}")
                },
                digest: None,
            }),
            // Q1-prefixed base64 SHA-1 of the file just listed.
            "Z" => {
                if let Some(f) = cur.files.last_mut() {
                    f.digest = Some(format!("apk-checksum:{v}"));
                }
            }
            _ => {}
        }
    }
    if !cur.name.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_files() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nZ:Q1xyz=\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nF:bin\nR:busybox\n";
        let r = parse(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "musl");
        assert_eq!(r[0].files[0].path, "/lib/ld-musl-x86_64.so.1");
        assert_eq!(r[0].files[0].digest.as_deref(), Some("apk-checksum:Q1xyz="));
        assert_eq!(r[1].files[0].path, "/bin/busybox");
    }
}
