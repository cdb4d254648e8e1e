//! Rust binaries: the crates `cargo auditable` recorded in them (as
//! `cargo audit bin` and Syft read them). Build-time-only crates (build
//! scripts, proc macros) are not in the binary and are left out.

use kiln_fingerprint::ElfInfo;
use kiln_tree::Tree;

use crate::{Distro, Ecosystem, Package, Unknown};

/// Audit data is found through inspected ELF facts, not by path.
pub fn wants(_path: &str) -> bool {
    false
}

/// Catalog crates from every Rust binary with audit data in the tree.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    _unknowns: &mut Vec<Unknown>,
) {
    for (path, e) in tree.iter() {
        let Some(crates) = e.facts::<ElfInfo>().and_then(|i| i.rust.as_ref()) else {
            continue;
        };
        for c in crates.iter().filter(|c| c.kind.as_deref() != Some("build")) {
            out.push(Package::embedded(
                Ecosystem::Cargo,
                &c.name,
                &c.version,
                path,
                e.layer,
                "cargo-auditable-binary-cataloger",
            ));
        }
    }
}
