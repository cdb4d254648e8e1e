//! .NET: the NuGet packages an application's `*.deps.json` lists as
//! `libraries` of type `package` (projects and reference assemblies are
//! the application itself, not packages).

use kiln_tree::Tree;
use serde::Deserialize;

use crate::{files_where, read_text, Distro, Ecosystem, Package, Unknown};

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    path.ends_with(".deps.json")
}

#[derive(Deserialize)]
struct Deps {
    libraries: std::collections::BTreeMap<String, Library>,
}

#[derive(Deserialize)]
struct Library {
    #[serde(rename = "type")]
    kind: String,
}

/// Catalog NuGet packages.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    for (path, layer) in files_where(tree, wants) {
        let Some(text) = read_text(tree, &path, unknowns) else {
            continue;
        };
        let deps: Deps = match serde_json::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                unknowns.push(Unknown::at(&path, format!("invalid deps.json: {e}")));
                continue;
            }
        };
        for (key, lib) in deps.libraries {
            let Some((name, version)) = key.split_once('/').filter(|_| lib.kind == "package")
            else {
                continue;
            };
            out.push(Package::embedded(
                Ecosystem::Dotnet,
                name,
                version,
                &path,
                layer,
                "dotnet-deps-cataloger",
            ));
        }
    }
}
