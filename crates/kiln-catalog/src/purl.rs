//! Package URLs. The per-ecosystem facts (type, default namespace, whether
//! `arch`/`distro` qualifiers apply, name normalisation) come from the
//! ecosystem's [`crate::Descriptor`]; Go's module-path namespace is here.

use packageurl::PackageUrl;

use crate::{Distro, Ecosystem};

/// Build the purl for a package.
///
/// - deb: `pkg:deb/<os id>/NAME@VERSION?arch=ARCH&distro=<id>-<version>`
/// - apk: `pkg:apk/<os id>/NAME@VERSION?arch=ARCH&distro=<id>-<version>`
/// - python: `pkg:pypi/NAME@VERSION` (name normalised per PEP 503)
pub fn purl(
    ecosystem: Ecosystem,
    name: &str,
    version: &str,
    arch: Option<&str>,
    distro: Option<&Distro>,
) -> String {
    let d = ecosystem.descriptor();
    let (ty, default_ns) = (d.purl_type, d.purl_namespace);
    let name = ecosystem.normalize_name(name);
    // Go module paths: everything up to the last `/` is the namespace.
    let (go_ns, name) = match (ecosystem, name.rsplit_once('/')) {
        (Ecosystem::Go, Some((ns, n))) => (Some(ns.to_string()), n.to_string()),
        _ => (None, name),
    };
    let Ok(mut p) = PackageUrl::new(ty, name.clone()) else {
        return format!("pkg:{ty}/{name}@{version}");
    };
    if let Some(ns) = go_ns {
        p.with_namespace(ns);
    }
    if let Some(ns) = default_ns {
        let ns = distro
            .map(|d| d.id.as_str())
            .filter(|id| !id.is_empty())
            .unwrap_or(ns);
        p.with_namespace(ns.to_string());
    }
    if !version.is_empty() {
        p.with_version(version.to_string());
    }
    if d.distro_package {
        if let Some(a) = arch.filter(|a| !a.is_empty()) {
            let _ = p.add_qualifier("arch", a.to_string());
        }
        if let Some(q) = distro.and_then(Distro::qualifier) {
            let _ = p.add_qualifier("distro", q);
        }
    }
    p.to_string()
}

/// PEP 503 name normalisation: lower case, runs of `-_.` become `-`.
pub fn normalize_python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian12() -> Distro {
        Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
            ..Default::default()
        }
    }

    #[test]
    fn deb_purls_match_syft() {
        assert_eq!(
            purl(
                Ecosystem::Deb,
                "libuuid1",
                "2.38.1-5+deb12u1",
                Some("amd64"),
                Some(&debian12())
            ),
            "pkg:deb/debian/libuuid1@2.38.1-5%2Bdeb12u1?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl(
                Ecosystem::Deb,
                "tzdata",
                "2025b-0+deb12u1",
                Some("all"),
                None
            ),
            "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all"
        );
    }

    #[test]
    fn apk_and_pypi() {
        let alpine = Distro {
            id: "alpine".into(),
            version_id: Some("3.19.1".into()),
            ..Default::default()
        };
        assert_eq!(
            purl(
                Ecosystem::Apk,
                "musl",
                "1.2.4-r2",
                Some("x86_64"),
                Some(&alpine)
            ),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
        );
        assert_eq!(
            purl(Ecosystem::Python, "Psycopg2_Binary", "2.9.9", None, None),
            "pkg:pypi/psycopg2-binary@2.9.9"
        );
        assert_eq!(normalize_python_name("zope.interface"), "zope-interface");
        assert_eq!(
            purl(Ecosystem::Go, "golang.org/x/sys", "v0.5.0", None, None),
            "pkg:golang/golang.org/x/sys@v0.5.0"
        );
    }
}
