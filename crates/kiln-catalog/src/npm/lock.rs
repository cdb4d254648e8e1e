//! npm lockfiles, read only where no `node_modules` sits beside them:
//! `package-lock.json` (v1 `dependencies` tree, v2/v3 `packages` map),
//! `yarn.lock` (classic and berry) and `pnpm-lock.yaml` (v5–v9).

use std::collections::BTreeSet;

use kiln_tree::Tree;
use serde_json::Value;

use super::DECLARED;
use crate::{files_where, read_text, Ecosystem, Package, Unknown};

/// The lockfile formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    PackageLock,
    Yarn,
    Pnpm,
}

pub(super) fn kind(path: &str) -> Option<Kind> {
    if path.contains("node_modules/") {
        return None;
    }
    match path.rsplit('/').next()? {
        "package-lock.json" | "npm-shrinkwrap.json" => Some(Kind::PackageLock),
        "yarn.lock" => Some(Kind::Yarn),
        "pnpm-lock.yaml" => Some(Kind::Pnpm),
        _ => None,
    }
}

/// The `(name, version)` pairs a lockfile declares; its file name says
/// which format (`package-lock.json`, `yarn.lock`, `pnpm-lock.yaml`).
pub fn declared(file_name: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    let set = match kind(file_name) {
        Some(Kind::PackageLock) => package_lock(text)?,
        Some(Kind::Yarn) => yarn(text),
        Some(Kind::Pnpm) => pnpm(text)?,
        None => return Err(format!("{file_name}: not an npm lockfile name")),
    };
    Ok(set.into_iter().collect())
}

pub(super) fn catalog(tree: &Tree, out: &mut Vec<Package>, unknowns: &mut Vec<Unknown>) {
    for (path, layer) in files_where(tree, |p| kind(p).is_some()) {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let modules = if dir.is_empty() {
            "node_modules".to_string()
        } else {
            format!("{dir}/node_modules")
        };
        if tree.get(&modules).is_some() {
            continue;
        }
        let Some(text) = read_text(tree, &path, unknowns) else {
            continue;
        };
        match declared(&path, &text) {
            Ok(list) => {
                out.extend(list.into_iter().map(|(n, v)| {
                    Package::embedded(Ecosystem::Npm, &n, &v, &path, layer, DECLARED)
                }))
            }
            Err(reason) => unknowns.push(Unknown::at(&path, reason)),
        }
    }
}

type Set = BTreeSet<(String, String)>;

/// `package-lock.json`: v2/v3 list every installed path under `packages`
/// (`""` is the project itself, links are workspace members); v1 nests
/// `dependencies`.
fn package_lock(text: &str) -> Result<Set, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("invalid package-lock.json: {e}"))?;
    let mut set = Set::new();
    if let Some(pkgs) = v.get("packages").and_then(Value::as_object) {
        for (key, p) in pkgs {
            if key.is_empty() || p.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| key.rsplit_once("node_modules/").map(|(_, n)| n.to_string()));
            let version = p.get("version").and_then(Value::as_str);
            if let (Some(n), Some(v)) = (name, version) {
                if key.contains("node_modules/") {
                    set.insert((n, v.to_string()));
                }
            }
        }
        return Ok(set);
    }
    fn walk(deps: &serde_json::Map<String, Value>, set: &mut Set) {
        for (name, d) in deps {
            if let Some(v) = d.get("version").and_then(Value::as_str) {
                if !v.starts_with("file:") && !v.starts_with("link:") {
                    set.insert((name.clone(), v.to_string()));
                }
            }
            if let Some(inner) = d.get("dependencies").and_then(Value::as_object) {
                walk(inner, set);
            }
        }
    }
    match v.get("dependencies").and_then(Value::as_object) {
        Some(deps) => walk(deps, &mut set),
        None if v.get("lockfileVersion").is_none() => {
            return Err("package-lock.json has neither packages nor dependencies".into())
        }
        None => {}
    }
    Ok(set)
}

/// `yarn.lock`: entries start at column 0 with one or more descriptors
/// (`name@range`, quoted, comma-separated); the `version` line below
/// names what was resolved. Berry's `__metadata` and workspace entries
/// are skipped.
fn yarn(text: &str) -> Set {
    let mut set = Set::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            current = descriptor_name(line);
            continue;
        }
        let t = line.trim();
        let Some(rest) = t.strip_prefix("version") else {
            continue;
        };
        let v = rest.trim_start_matches(':').trim().trim_matches('"');
        if let Some(n) = current.take() {
            set.insert((n, v.to_string()));
        }
    }
    set
}

/// The package name of a yarn entry's first descriptor, unless it is a
/// workspace or the project itself.
fn descriptor_name(line: &str) -> Option<String> {
    let first = line
        .trim_end_matches(':')
        .split(',')
        .next()?
        .trim()
        .trim_matches('"');
    if first == "__metadata" || first.contains("@workspace:") || first.contains("@link:") {
        return None;
    }
    // The `@` after the name; a scope's leading `@` is not it.
    let at = first.get(1..)?.find('@')? + 1;
    Some(first[..at].to_string())
}

/// `pnpm-lock.yaml`: the keys of `packages` — `/name/1.0.0` (v5),
/// `/name@1.0.0` (v6), `name@1.0.0` (v9) — with any peer suffix
/// (`(react@18.2.0)` or `_react@18.2.0`) removed.
fn pnpm(text: &str) -> Result<Set, String> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("invalid pnpm-lock.yaml: {e}"))?;
    let mut set = Set::new();
    let Some(pkgs) = v.get("packages").and_then(|p| p.as_mapping()) else {
        return Ok(set);
    };
    for key in pkgs.keys().filter_map(|k| k.as_str()) {
        if let Some((name, version)) = pnpm_key(key) {
            set.insert((name.to_string(), version.to_string()));
        }
    }
    Ok(set)
}

/// Name and version of a pnpm `packages` key.
fn pnpm_key(key: &str) -> Option<(&str, &str)> {
    let k = key.trim_start_matches('/');
    let k = k.split('(').next().unwrap_or(k);
    // The name: one path segment, or two for a scope.
    let name_end = if k.starts_with('@') {
        k.find('/')? + 1 + k[k.find('/')? + 1..].find(['/', '@'])?
    } else {
        k.find(['/', '@'])?
    };
    let (name, rest) = k.split_at(name_end);
    let version = rest.get(1..)?;
    // v5 appends peers after `_`; versions themselves never hold one.
    let version = version.split('_').next().unwrap_or(version);
    Some((name, version)).filter(|(n, v)| !n.is_empty() && !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(set: &Set, n: &str, v: &str) -> bool {
        set.contains(&(n.to_string(), v.to_string()))
    }

    #[test]
    fn package_lock_versions() {
        let v3 = r#"{"lockfileVersion":3,"packages":{"":{"name":"app"},
            "node_modules/ms":{"version":"2.1.3"},
            "node_modules/@types/node":{"version":"20.1.0"},
            "node_modules/a/node_modules/ms":{"version":"2.0.0"},
            "node_modules/w":{"resolved":"packages/w","link":true}}}"#;
        let s = package_lock(v3).unwrap();
        assert_eq!(s.len(), 3);
        assert!(has(&s, "@types/node", "20.1.0") && has(&s, "ms", "2.0.0"));
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"debug":{"version":"4.3.4",
            "dependencies":{"ms":{"version":"2.1.2"}}}}}"#;
        let s = package_lock(v1).unwrap();
        assert!(has(&s, "debug", "4.3.4") && has(&s, "ms", "2.1.2"));
        assert!(package_lock("{not json").is_err());
    }

    #[test]
    fn yarn_classic_and_berry() {
        let classic = "# yarn lockfile v1\n\n\"@babel/code-frame@^7.0.0\", \"@babel/code-frame@^7.22.13\":\n  version \"7.22.13\"\n  resolved \"x\"\n\nms@2.1.2:\n  version \"2.1.2\"\n";
        let s = yarn(classic);
        assert!(has(&s, "@babel/code-frame", "7.22.13") && has(&s, "ms", "2.1.2"));
        let berry = "__metadata:\n  version: 6\n\n\"ms@npm:^2.1.1\":\n  version: 2.1.3\n  resolution: \"ms@npm:2.1.3\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n";
        let s = yarn(berry);
        assert_eq!(s.len(), 1);
        assert!(has(&s, "ms", "2.1.3"));
        // Stray lines are skipped, never a panic.
        assert!(yarn(":\n  version \"1\"\n\"\u{e9}@1\":\n  version \"1\"\n").len() <= 1);
    }

    #[test]
    fn pnpm_keys_of_each_version() {
        let v6 = "lockfileVersion: '6.0'\npackages:\n  /ms@2.1.3:\n    resolution: {integrity: x}\n  /@babel/core@7.24.0(supports-color@5.5.0):\n    dev: true\n";
        let s = pnpm(v6).unwrap();
        assert!(has(&s, "ms", "2.1.3") && has(&s, "@babel/core", "7.24.0"));
        let v5 = "lockfileVersion: 5.4\npackages:\n  /ms/2.1.3:\n    dev: false\n  /@scope/x/1.0.0_react@18.2.0:\n    dev: false\n";
        let s = pnpm(v5).unwrap();
        assert!(has(&s, "ms", "2.1.3") && has(&s, "@scope/x", "1.0.0"));
        assert!(pnpm(":\n  - [").is_err());
    }
}
