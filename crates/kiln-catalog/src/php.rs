//! PHP Composer: installed packages from `vendor/composer/installed.json`
//! (Composer 1's list and Composer 2's `{"packages": …}`), and
//! `composer.lock` (`packages` and `packages-dev`).

use kiln_tree::Tree;
use serde::Deserialize;

use crate::{files_where, read_text, Distro, Ecosystem, Package, Unknown};

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    path.ends_with("vendor/composer/installed.json")
        || path.ends_with("/composer.lock")
        || path == "composer.lock"
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    version: String,
    #[serde(default)]
    license: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Installed {
    V2 { packages: Vec<Entry> },
    V1(Vec<Entry>),
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    packages: Vec<Entry>,
    #[serde(default, rename = "packages-dev")]
    dev: Vec<Entry>,
}

/// Catalog Composer packages.
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
        let (entries, by) = if path.ends_with("installed.json") {
            let parsed = serde_json::from_str::<Installed>(&text).map(|i| match i {
                Installed::V2 { packages } | Installed::V1(packages) => packages,
            });
            (parsed, "php-composer-installed-cataloger")
        } else {
            let parsed = serde_json::from_str::<Lock>(&text)
                .map(|l| l.packages.into_iter().chain(l.dev).collect::<Vec<_>>());
            (parsed, "php-composer-lock-cataloger")
        };
        match entries {
            Ok(list) => out.extend(list.into_iter().map(|e| {
                let mut p =
                    Package::embedded(Ecosystem::Composer, &e.name, &e.version, &path, layer, by);
                p.licenses = e.license;
                p
            })),
            Err(e) => unknowns.push(Unknown::at(
                &path,
                format!("invalid Composer metadata: {e}"),
            )),
        }
    }
}
