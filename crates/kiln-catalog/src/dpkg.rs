//! dpkg: `var/lib/dpkg/status`, distroless `var/lib/dpkg/status.d/*`, and
//! file ownership from `info/*.list` and `*.md5sums`.

use std::collections::BTreeMap;

use kiln_tree::Tree;

use crate::deb822::{self, Paragraph};
use crate::purl::purl;
use crate::read_text;
use crate::{Distro, Ecosystem, Location, OwnedFile, Package, Unknown};

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d";
const INFO: &str = "var/lib/dpkg/info";

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    path == STATUS
        || path.starts_with("var/lib/dpkg/status.d/")
        || (path.starts_with("var/lib/dpkg/info/")
            && (path.ends_with(".list") || path.ends_with(".md5sums")))
}

/// Catalog dpkg packages.
pub fn catalog(
    tree: &Tree,
    distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    if tree.get(STATUS).is_some_and(|e| e.is_file()) {
        if let Some(text) = read_text(tree, STATUS, unknowns) {
            match deb822::parse(&text) {
                Ok(paras) => {
                    for p in paras {
                        if let Some(pkg) = package(tree, &p, STATUS, distro, false) {
                            out.push(pkg);
                        }
                    }
                }
                Err(e) => unknowns.push(Unknown {
                    path: format!("/{STATUS}"),
                    reason: e.to_string(),
                }),
            }
        }
    }
    // Distroless: one status file per package, md5sums beside it.
    let status_d: Vec<String> = tree
        .iter_under(STATUS_D)
        .filter(|(p, e)| e.is_file() && !p.ends_with(".md5sums"))
        .map(|(p, _)| p.to_string())
        .collect();
    for path in status_d {
        let Some(text) = read_text(tree, &path, unknowns) else {
            continue;
        };
        match deb822::parse(&text) {
            Ok(paras) => {
                for p in paras {
                    if let Some(pkg) = package(tree, &p, &path, distro, true) {
                        out.push(pkg);
                    }
                }
            }
            Err(e) => unknowns.push(Unknown {
                path: format!("/{path}"),
                reason: e.to_string(),
            }),
        }
    }
}

fn package(
    tree: &Tree,
    p: &Paragraph,
    path: &str,
    distro: Option<&Distro>,
    distroless: bool,
) -> Option<Package> {
    let name = p.get("Package")?.to_string();
    // Distroless status.d entries often carry no Status field at all.
    if let Some(status) = p.get("Status") {
        if status.split_whitespace().last() != Some("installed") {
            return None;
        }
    }
    let version = p.get("Version").unwrap_or_default().to_string();
    let arch = p.get("Architecture").map(str::to_string);
    let (source_name, source_version) = match p.get("Source") {
        Some(s) => {
            let (n, v) = deb822::split_source(s);
            (n, v.unwrap_or_else(|| version.clone()))
        }
        None => (name.clone(), version.clone()),
    };
    let mut locations = vec![Location {
        path: format!("/{path}"),
        layer: tree.get(path).and_then(|e| e.layer),
    }];
    let files = if distroless {
        let sums = format!("{}.md5sums", path);
        owned_files(tree, &[], &[sums], &mut locations)
    } else {
        let mut lists = vec![format!("{INFO}/{name}.list")];
        let mut sums = vec![format!("{INFO}/{name}.md5sums")];
        if let Some(a) = &arch {
            lists.push(format!("{INFO}/{name}:{a}.list"));
            sums.push(format!("{INFO}/{name}:{a}.md5sums"));
        }
        owned_files(tree, &lists, &sums, &mut locations)
    };
    Some(Package {
        purl: purl(Ecosystem::Deb, &name, &version, arch.as_deref(), distro),
        name,
        version,
        ecosystem: Ecosystem::Deb,
        arch,
        source_name: Some(source_name),
        source_version: Some(source_version),
        licenses: Vec::new(),
        found_by: "dpkg-db-cataloger",
        locations,
        files,
        evidence: None,
        parent: None,
    })
}

fn owned_files(
    tree: &Tree,
    lists: &[String],
    sums: &[String],
    locations: &mut Vec<Location>,
) -> Vec<OwnedFile> {
    let mut files: BTreeMap<String, Option<String>> = BTreeMap::new();
    for list in lists {
        let Some(entry) = tree.get(list).filter(|e| e.is_file()) else {
            continue;
        };
        let Ok(bytes) = tree.read(list, 64 << 20) else {
            continue;
        };
        locations.push(Location {
            path: format!("/{list}"),
            layer: entry.layer,
        });
        for line in String::from_utf8_lossy(&bytes).lines() {
            let rel = line.trim_start_matches('/');
            if rel.is_empty() || rel == "." {
                continue;
            }
            if tree.get(rel).is_some_and(|e| e.is_dir()) {
                continue;
            }
            files.entry(format!("/{rel}")).or_insert(None);
        }
    }
    for sum in sums {
        let Some(entry) = tree.get(sum).filter(|e| e.is_file()) else {
            continue;
        };
        let Ok(bytes) = tree.read(sum, 64 << 20) else {
            continue;
        };
        locations.push(Location {
            path: format!("/{sum}"),
            layer: entry.layer,
        });
        for line in String::from_utf8_lossy(&bytes).lines() {
            // "<32 hex>  path/relative/to/root"
            let Some((md5, rel)) = line.split_once("  ") else {
                continue;
            };
            if md5.len() == 32 {
                files.insert(
                    format!("/{}", rel.trim_start_matches('/')),
                    Some(format!("md5:{md5}")),
                );
            }
        }
    }
    files
        .into_iter()
        .map(|(path, digest)| OwnedFile { path, digest })
        .collect()
}
