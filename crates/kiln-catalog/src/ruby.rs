//! Ruby gems: installed gemspecs (`…/specifications/*.gemspec`, default
//! gems under `specifications/default/`, and Debian's
//! `rubygems-integration` paths), read as the literal assignments
//! RubyGems writes into them, and `Gemfile.lock` `GEM` specs.

use kiln_tree::Tree;

use crate::{files_where, read_text, Distro, Ecosystem, Package, Unknown};

/// Files this cataloger reads.
pub fn wants(path: &str) -> bool {
    is_gemspec(path) || path.ends_with("/Gemfile.lock") || path == "Gemfile.lock"
}

fn is_gemspec(path: &str) -> bool {
    path.ends_with(".gemspec")
        && (path.contains("/specifications/") || path.starts_with("specifications/"))
}

/// Catalog gems.
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
        if is_gemspec(&path) {
            match gemspec(&text) {
                Some((name, version, licenses)) => {
                    let mut p = gem(
                        &name,
                        &version,
                        &path,
                        layer,
                        "ruby-installed-gemspec-cataloger",
                    );
                    p.licenses = licenses;
                    out.push(p);
                }
                None => unknowns.push(Unknown::at(
                    &path,
                    "gemspec names no literal name and version",
                )),
            }
        } else {
            for (name, version) in gemfile_lock(&text) {
                out.push(gem(&name, &version, &path, layer, "ruby-gemfile-cataloger"));
            }
        }
    }
}

fn gem(name: &str, version: &str, path: &str, layer: Option<usize>, by: &'static str) -> Package {
    Package::embedded(Ecosystem::Gem, name, version, path, layer, by)
}

/// The first quoted string on a line after `=`: `"rack".freeze` → `rack`.
fn quoted(s: &str) -> Option<String> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &s[1..];
    Some(rest[..rest.find(q)?].to_string())
}

/// `s.name`, `s.version` (a string or `Gem::Version.new("…")`) and
/// `s.licenses`/`s.license` of a RubyGems-written specification.
fn gemspec(text: &str) -> Option<(String, String, Vec<String>)> {
    let (mut name, mut version, mut licenses) = (None, None, Vec::new());
    for line in text.lines().map(str::trim) {
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let field = lhs.trim().rsplit('.').next().unwrap_or("");
        if !lhs.trim().contains('.') {
            continue;
        }
        match field {
            "name" if name.is_none() => name = quoted(rhs),
            "version" if version.is_none() => {
                let rhs = rhs.trim().trim_start_matches("Gem::Version.new(");
                version = quoted(rhs);
            }
            "licenses" | "license" if licenses.is_empty() => {
                licenses = rhs
                    .split(',')
                    .filter_map(|l| quoted(l.trim().trim_start_matches('[')))
                    .collect();
            }
            _ => {}
        }
    }
    Some((name?, version?, licenses))
}

/// `Gemfile.lock`: under a `GEM` (or `GIT`/`PATH`) section's `specs:`,
/// the lines indented by exactly four spaces are `name (version)`.
fn gemfile_lock(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_specs = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_specs = false;
            continue;
        }
        if line.trim() == "specs:" {
            in_specs = true;
            continue;
        }
        let four = line.starts_with("    ") && !line.starts_with("     ");
        if in_specs && four {
            if let Some((n, v)) = line.trim().split_once(" (") {
                let v = v.trim_end_matches(')');
                // Platform gems: `nokogiri (1.15.4-x86_64-linux)`.
                out.push((n.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemspec_fields() {
        let t = "Gem::Specification.new do |s|\n  s.name = \"rack\".freeze\n  s.version = \"2.2.22\"\n  s.licenses = [\"MIT\".freeze, \"Ruby\".freeze]\n  s.add_development_dependency(%q<minitest>.freeze, [\"~> 5.0\"])\nend\n";
        let (n, v, l) = gemspec(t).unwrap();
        assert_eq!((n.as_str(), v.as_str()), ("rack", "2.2.22"));
        assert_eq!(l, vec!["MIT", "Ruby"]);
        assert!(gemspec("puts 1").is_none());
        let v = "  s.name = %q{x}\n  s.name = 'json'\n  s.version = Gem::Version.new(\"2.6.1\")\n";
        assert_eq!(gemspec(v).unwrap().1, "2.6.1");
    }

    #[test]
    fn gemfile_lock_specs() {
        let t = "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (2.2.8)\n    rack-test (2.1.0)\n      rack (>= 1.3)\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n  rack-test\n";
        assert_eq!(
            gemfile_lock(t),
            vec![
                ("rack".into(), "2.2.8".into()),
                ("rack-test".into(), "2.1.0".into())
            ]
        );
    }
}
