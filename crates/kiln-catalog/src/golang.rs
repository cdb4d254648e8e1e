//! Go binaries: the module list their build info declares (Go version as
//! `stdlib`, the main module, every dependency, replacements applied), as
//! `go version -m` prints it. Reads the [`ElfInfo`] facts the tree's
//! inspector recorded, so no file is read twice.

use kiln_fingerprint::{ElfInfo, GoModule};
use kiln_tree::Tree;

use crate::{Distro, Ecosystem, Package, Unknown};

/// Go build info is found through inspected ELF facts, not by path.
pub fn wants(_path: &str) -> bool {
    false
}

fn package(name: &str, version: &str, path: &str, layer: Option<usize>) -> Package {
    Package::embedded(
        Ecosystem::Go,
        name,
        version,
        path,
        layer,
        "go-module-binary-cataloger",
    )
}

/// The module a line resolves to after its `=>` replacement (a local
/// directory replacement keeps the original path and version).
fn effective(m: &GoModule) -> (&str, &str) {
    match &m.replaced_by {
        Some(r) if !r.version.is_empty() && r.version != "(devel)" => (&r.path, &r.version),
        _ => (&m.path, &m.version),
    }
}

/// Catalog Go modules from every Go binary in the tree.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    _unknowns: &mut Vec<Unknown>,
) {
    for (path, e) in tree.iter() {
        let Some(go) = e.facts::<ElfInfo>().and_then(|i| i.go.as_ref()) else {
            continue;
        };
        let toolchain = go.go_version.trim_start_matches("go");
        out.push(package("stdlib", toolchain, path, e.layer));
        if let Some(m) = &go.main {
            let (p, v) = effective(m);
            out.push(package(p, v, path, e.layer));
        }
        for d in &go.deps {
            let (p, v) = effective(d);
            out.push(package(p, v, path, e.layer));
        }
    }
}
