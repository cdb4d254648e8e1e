//! npm: installed packages (`node_modules/**/package.json`, scoped and
//! nested, workspace links followed) and, for projects with no
//! `node_modules`, the packages their lockfiles declare —
//! `package-lock.json` v1–3, `yarn.lock` (classic and berry) and
//! `pnpm-lock.yaml` — reported with `found_by` naming the lockfile
//! cataloger, so declared packages are never mistaken for installed ones.

mod lock;

pub use lock::declared;

use kiln_tree::Tree;
use serde::Deserialize;

use crate::{files_where, read_text, Distro, Ecosystem, Package, Unknown};

/// Cataloger names, as Syft names them.
pub const INSTALLED: &str = "javascript-package-cataloger";
/// Packages only a lockfile declares.
pub const DECLARED: &str = "javascript-lock-cataloger";

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    installed_manifest(path).is_some() || lock::kind(path).is_some()
}

/// For `…/node_modules/[@scope/]NAME/package.json`, the package's
/// directory name as npm installed it.
fn installed_manifest(path: &str) -> Option<&str> {
    let dir = path.strip_suffix("/package.json")?;
    let (parent, name) = dir.rsplit_once('/')?;
    if parent.ends_with("node_modules") || parent == "node_modules" {
        return (!name.starts_with('.') && !name.starts_with('@')).then_some(name);
    }
    let (grand, scope) = parent.rsplit_once('/')?;
    (scope.starts_with('@') && (grand.ends_with("/node_modules") || grand == "node_modules"))
        .then_some(name)
}

#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    license: Option<serde_json::Value>,
    #[serde(default)]
    licenses: Option<serde_json::Value>,
}

/// The declared licenses: `"MIT"`, `{"type": "MIT"}`, or a list of either.
fn licenses(m: &Manifest) -> Vec<String> {
    fn one(v: &serde_json::Value) -> Option<String> {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.get("type")?.as_str().map(str::to_string))
    }
    let mut out: Vec<String> = m.license.iter().filter_map(one).collect();
    if let Some(serde_json::Value::Array(list)) = &m.licenses {
        out.extend(list.iter().filter_map(one));
    }
    out
}

/// Catalog npm packages.
pub fn catalog(
    tree: &Tree,
    _distro: Option<&Distro>,
    out: &mut Vec<Package>,
    unknowns: &mut Vec<Unknown>,
) {
    for (path, layer) in files_where(tree, |p| installed_manifest(p).is_some()) {
        if let Some(p) = installed(tree, &path, layer, unknowns) {
            out.push(p);
        }
    }
    workspace_links(tree, out, unknowns);
    lock::catalog(tree, out, unknowns);
}

fn installed(
    tree: &Tree,
    path: &str,
    layer: Option<usize>,
    unknowns: &mut Vec<Unknown>,
) -> Option<Package> {
    let text = read_text(tree, path, unknowns)?;
    let m: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            unknowns.push(Unknown::at(path, format!("invalid package.json: {e}")));
            return None;
        }
    };
    let (name, version) = (m.name.as_deref()?, m.version.as_deref()?);
    let mut p = Package::embedded(Ecosystem::Npm, name, version, path, layer, INSTALLED);
    p.licenses = licenses(&m);
    Some(p)
}

/// Workspace members are linked into `node_modules` (a symlink to the
/// member's directory); their manifests live outside any `node_modules`.
fn workspace_links(tree: &Tree, out: &mut Vec<Package>, unknowns: &mut Vec<Unknown>) {
    let links: Vec<String> = tree
        .iter()
        .filter(|(p, e)| {
            e.is_symlink() && installed_manifest(&format!("{p}/package.json")).is_some()
        })
        .map(|(p, _)| p.to_string())
        .collect();
    for link in links {
        let Ok((target, entry)) = tree.lookup(&format!("{link}/package.json")) else {
            continue;
        };
        if entry.is_file() && installed_manifest(&target).is_none() {
            if let Some(p) = installed(tree, &target, entry.layer, unknowns) {
                out.push(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_manifests_are_recognised_by_their_place() {
        assert_eq!(
            installed_manifest("app/node_modules/ms/package.json"),
            Some("ms")
        );
        assert_eq!(
            installed_manifest("node_modules/@babel/core/package.json"),
            Some("core")
        );
        assert_eq!(
            installed_manifest("a/node_modules/x/node_modules/y/package.json"),
            Some("y")
        );
        assert_eq!(installed_manifest("app/package.json"), None);
        assert_eq!(installed_manifest("node_modules/x/lib/package.json"), None);
        assert_eq!(installed_manifest("node_modules/.bin/package.json"), None);
    }
}
