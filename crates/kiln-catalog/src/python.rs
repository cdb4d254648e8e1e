//! Python: installed distributions from `*.dist-info/METADATA` and
//! `RECORD`, and legacy `*.egg-info` (directory or single file).

use kiln_tree::{path, Tree};

use crate::purl::purl;
use crate::read_text;
use crate::{Distro, Ecosystem, Location, OwnedFile, Package, Unknown};

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    let parent = path::file_name(path::parent(path));
    let name = path::file_name(path);
    (parent.ends_with(".dist-info") && matches!(name, "METADATA" | "RECORD"))
        || (parent.ends_with(".egg-info") && matches!(name, "PKG-INFO" | "installed-files.txt"))
        || name.ends_with(".egg-info")
}

/// Catalog Python distributions.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    let metas: Vec<(String, &'static str)> = tree
        .iter()
        .filter_map(|(p, e)| {
            let parent = path::file_name(path::parent(p));
            let name = path::file_name(p);
            if !e.is_file() {
                return None;
            }
            if parent.ends_with(".dist-info") && name == "METADATA" {
                Some((p.to_string(), "dist-info"))
            } else if parent.ends_with(".egg-info") && name == "PKG-INFO" {
                Some((p.to_string(), "egg-info"))
            } else if name.ends_with(".egg-info") {
                Some((p.to_string(), "egg-info-file"))
            } else {
                None
            }
        })
        .collect();
    for (meta_path, form) in metas {
        let Some(text) = read_text(tree, &meta_path, unknowns) else {
            continue;
        };
        let Some((name, version, license)) = parse_metadata(&text) else {
            unknowns.push(Unknown {
                path: format!("/{meta_path}"),
                reason: "package metadata has no Name or Version".into(),
            });
            continue;
        };
        let mut locations = vec![Location {
            path: format!("/{meta_path}"),
            layer: tree.get(&meta_path).and_then(|e| e.layer),
        }];
        let files = match form {
            "dist-info" => {
                let info_dir = path::parent(&meta_path);
                let record = path::join(info_dir, "RECORD");
                let site = path::parent(info_dir);
                read_record(tree, &record, site, &mut locations)
            }
            "egg-info" => {
                let info_dir = path::parent(&meta_path);
                let listing = path::join(info_dir, "installed-files.txt");
                read_installed_files(tree, &listing, info_dir, &mut locations)
            }
            _ => Vec::new(),
        };
        out.push(Package {
            purl: purl(Ecosystem::Python, &name, &version, None, None),
            name,
            version,
            ecosystem: Ecosystem::Python,
            arch: None,
            source_name: None,
            source_version: None,
            licenses: license.into_iter().collect(),
            found_by: "python-installed-package-cataloger",
            locations,
            files,
            evidence: None,
            parent: None,
        });
    }
}

/// Read `Name`, `Version` and `License` from the RFC 822 header block of
/// METADATA / PKG-INFO.
pub fn parse_metadata(text: &str) -> Option<(String, String, Option<String>)> {
    let (mut name, mut version, mut license) = (None, None, None);
    for line in text.lines() {
        if line.is_empty() {
            break; // the body (long description) starts here
        }
        if let Some((k, v)) = line.split_once(':') {
            match k {
                "Name" => name = Some(v.trim().to_string()),
                "Version" => version = Some(v.trim().to_string()),
                "License-Expression" => license = Some(v.trim().to_string()),
                "License" if license.is_none() && !v.trim().is_empty() => {
                    license = Some(v.trim().to_string())
                }
                _ => {}
            }
        }
    }
    // An empty `Name:` or `Version:` is no package (the fuzzer found
    // one reported with an empty name).
    let name = name.filter(|n| !n.is_empty())?;
    let version = version.filter(|v| !v.is_empty())?;
    Some((name, version, license))
}

fn read_record(
    tree: &Tree,
    record: &str,
    site: &str,
    locations: &mut Vec<Location>,
) -> Vec<OwnedFile> {
    let Some(entry) = tree.get(record).filter(|e| e.is_file()) else {
        return Vec::new();
    };
    let Ok(bytes) = tree.read(record, 64 << 20) else {
        return Vec::new();
    };
    locations.push(Location {
        path: format!("/{record}"),
        layer: entry.layer,
    });
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        let cols = split_csv(line);
        let Some(rel) = cols.first().filter(|c| !c.is_empty()) else {
            continue;
        };
        let Some(full) = path::clean(&path::join(site, rel)) else {
            continue;
        };
        let digest = cols
            .get(1)
            .filter(|d| !d.is_empty())
            .map(|d| d.replacen('=', ":", 1));
        out.push(OwnedFile {
            path: format!("/{full}"),
            digest,
        });
    }
    out
}

fn read_installed_files(
    tree: &Tree,
    listing: &str,
    info_dir: &str,
    locations: &mut Vec<Location>,
) -> Vec<OwnedFile> {
    let Some(entry) = tree.get(listing).filter(|e| e.is_file()) else {
        return Vec::new();
    };
    let Ok(bytes) = tree.read(listing, 64 << 20) else {
        return Vec::new();
    };
    locations.push(Location {
        path: format!("/{listing}"),
        layer: entry.layer,
    });
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| path::clean(&path::join(info_dir, l.trim())))
        .map(|p| OwnedFile {
            path: format!("/{p}"),
            digest: None,
        })
        .collect()
}

/// Split one CSV line (RFC 4180 quoting), as RECORD files use.
fn split_csv(line: &str) -> Vec<String> {
    let mut cols = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cols.last_mut().expect("non-empty").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cols.push(String::new()),
            (c, _) => cols.last_mut().expect("non-empty").push(c),
        }
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers_only() {
        let text = "Metadata-Version: 2.1\nName: psycopg2-binary\nVersion: 2.9.9\nLicense: LGPL with exceptions\n\nName: not-this\n";
        let (n, v, l) = parse_metadata(text).unwrap();
        assert_eq!((n.as_str(), v.as_str()), ("psycopg2-binary", "2.9.9"));
        assert_eq!(l.as_deref(), Some("LGPL with exceptions"));
        assert!(parse_metadata("Name: x\n").is_none());
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            split_csv("\"a,b.py\",sha256=x,3"),
            vec!["a,b.py".to_string(), "sha256=x".into(), "3".into()]
        );
    }

    #[test]
    fn wants_metadata_files() {
        assert!(wants(
            "usr/lib/python3/dist-packages/PIL/../pillow-11.3.0.dist-info/METADATA"
        ));
        assert!(wants("site/foo.egg-info"));
        assert!(!wants("site/foo.dist-info/LICENSE"));
    }
}
