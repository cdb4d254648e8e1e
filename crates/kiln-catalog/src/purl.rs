//! Package URLs. The per-ecosystem facts (type, default namespace, whether
//! `arch`/`distro` qualifiers apply, name normalisation) come from the
//! ecosystem's [`crate::Descriptor`]; Go's module-path namespace is here.

use packageurl::PackageUrl;

use crate::{Distro, Ecosystem, NameSplit};

/// Build the purl for a package.
///
/// - deb: `pkg:deb/<os id>/NAME@VERSION?arch=ARCH&distro=<id>-<version>`
/// - apk: `pkg:apk/<os id>/NAME@VERSION?arch=ARCH&distro=<id>-<version>`
/// - python: `pkg:pypi/NAME@VERSION` (name normalised per PEP 503)
/// - rpm: `pkg:rpm/<os id>/NAME@VERSION-RELEASE?arch=ARCH&epoch=N&distro=…`
/// - npm: `pkg:npm/%40SCOPE/NAME@VERSION`; maven: `pkg:maven/GROUP/ARTIFACT@VERSION`;
///   composer: `pkg:composer/VENDOR/NAME@VERSION`
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
    let (ns, name) = match (d.name_split, &name) {
        (NameSplit::LastSlash, n) => split(n.rsplit_once('/'), n),
        (NameSplit::Colon, n) => split(n.split_once(':'), n),
        (NameSplit::Whole, n) => (None, n.clone()),
    };
    // rpm writes the epoch as a qualifier, not in the version.
    let (epoch, version) = match (ecosystem, version.split_once(':')) {
        (Ecosystem::Rpm, Some((e, v))) if e.bytes().all(|c| c.is_ascii_digit()) => (Some(e), v),
        _ => (None, version),
    };
    let Ok(mut p) = PackageUrl::new(ty, name.clone()) else {
        return format!("pkg:{ty}/{name}@{version}");
    };
    if let Some(ns) = ns {
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
        if let Some(e) = epoch.filter(|e| *e != "0") {
            let _ = p.add_qualifier("epoch", e.to_string());
        }
        if let Some(q) = distro.and_then(Distro::qualifier) {
            let _ = p.add_qualifier("distro", q);
        }
    }
    p.to_string()
}

fn split(parts: Option<(&str, &str)>, whole: &str) -> (Option<String>, String) {
    match parts {
        Some((ns, n)) if !ns.is_empty() && !n.is_empty() => (Some(ns.to_string()), n.to_string()),
        _ => (None, whole.to_string()),
    }
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

    #[test]
    fn new_ecosystems_split_names_as_purl_types_want() {
        let rocky = Distro {
            id: "rocky".into(),
            version_id: Some("9.3".into()),
            ..Default::default()
        };
        assert_eq!(
            purl(
                Ecosystem::Rpm,
                "bash",
                "5.1.8-6.el9",
                Some("x86_64"),
                Some(&rocky)
            ),
            "pkg:rpm/rocky/bash@5.1.8-6.el9?arch=x86_64&distro=rocky-9.3"
        );
        assert_eq!(
            purl(
                Ecosystem::Rpm,
                "openssl",
                "1:3.0.7-24.el9",
                Some("x86_64"),
                Some(&rocky)
            ),
            "pkg:rpm/rocky/openssl@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1"
        );
        assert_eq!(
            purl(Ecosystem::Npm, "@babel/core", "7.24.0", None, None),
            "pkg:npm/%40babel/core@7.24.0"
        );
        assert_eq!(
            purl(
                Ecosystem::Java,
                "org.apache.commons:commons-lang3",
                "3.12.0",
                None,
                None
            ),
            "pkg:maven/org.apache.commons/commons-lang3@3.12.0"
        );
        assert_eq!(
            purl(Ecosystem::Composer, "Monolog/monolog", "3.5.0", None, None),
            "pkg:composer/monolog/monolog@3.5.0"
        );
        assert_eq!(
            purl(Ecosystem::Gem, "rack", "2.2.4", None, None),
            "pkg:gem/rack@2.2.4"
        );
    }
}
