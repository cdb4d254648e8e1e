//! The package ecosystems and, for each, one descriptor of its facts: how
//! tables label it, its purl type, the OSV ecosystem its advisories use,
//! how SPDX describes where its metadata comes from, its version order and
//! `vers:` scheme. Every crate reads these here rather than matching on
//! the ecosystem itself, so adding an ecosystem is one table row.

use serde::Serialize;

use crate::package::Distro;
use crate::version::Scheme;

/// Which package ecosystem a package belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian packages (dpkg).
    Deb,
    /// Alpine packages (apk).
    Apk,
    /// Python distributions.
    Python,
    /// Go modules, from the build info embedded in Go binaries.
    Go,
    /// Rust crates, from `cargo auditable` data in Rust binaries.
    Cargo,
    /// rpm packages (RHEL, Fedora, SUSE, Amazon Linux…), from the rpmdb.
    Rpm,
    /// npm packages, from `node_modules` or lockfiles.
    Npm,
    /// Java archives, named by Maven coordinates (`group:artifact`).
    Java,
    /// Ruby gems.
    Gem,
    /// PHP Composer packages (`vendor/name`).
    Composer,
    /// .NET (NuGet) packages, from `*.deps.json`.
    Dotnet,
    /// Upstream projects found inside other files (vendored libraries),
    /// named by kiln's canonical project names.
    Generic,
}

/// How a package name splits into a purl namespace and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSplit {
    /// The whole name is the purl name.
    Whole,
    /// Up to the last `/` is the namespace (Go module paths, npm scopes,
    /// Composer vendors).
    LastSlash,
    /// Up to the first `:` is the namespace (Maven `group:artifact`).
    Colon,
}

/// Where an ecosystem's advisories are published, as OSV names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsvName {
    /// `Debian:N` (or `Ubuntu:N`), from the image's os-release.
    DebianRelease,
    /// `Alpine:vX.Y`, from the image's os-release.
    AlpineRelease,
    /// The rpm distribution's own (`Rocky Linux:9`, `AlmaLinux:9`,
    /// `Red Hat`, `openSUSE:Leap 15.5`, `SUSE:…`); none for distros OSV
    /// has no advisories for.
    RpmRelease,
    /// One fixed name (`PyPI`, `Go`, `crates.io`).
    Fixed(&'static str),
}

/// The facts of one ecosystem.
#[derive(Debug)]
pub struct Descriptor {
    /// The short type name shown in tables, as Syft shows it.
    pub label: &'static str,
    /// The package-url type.
    pub purl_type: &'static str,
    /// The purl namespace when the distro does not name one (`debian`).
    pub purl_namespace: Option<&'static str>,
    /// Whether packages carry an architecture, a source package and the
    /// `arch`/`distro` purl qualifiers (distribution packages do).
    pub distro_package: bool,
    /// Where advisories for it are published.
    pub osv: OsvName,
    /// What SPDX `sourceInfo` says the package information came from.
    pub spdx_origin: &'static str,
    /// Its version order and `vers:` scheme.
    pub scheme: Scheme,
    /// How names split into a purl namespace and name.
    pub name_split: NameSplit,
}

const DEB: Descriptor = Descriptor {
    label: "deb",
    purl_type: "deb",
    purl_namespace: Some("debian"),
    distro_package: true,
    osv: OsvName::DebianRelease,
    spdx_origin: "DPKG DB",
    scheme: Scheme::Deb,
    name_split: NameSplit::Whole,
};
const APK: Descriptor = Descriptor {
    label: "apk",
    purl_type: "apk",
    purl_namespace: Some("alpine"),
    distro_package: true,
    osv: OsvName::AlpineRelease,
    spdx_origin: "APK DB",
    scheme: Scheme::Apk,
    name_split: NameSplit::Whole,
};
const PYTHON: Descriptor = Descriptor {
    label: "python",
    purl_type: "pypi",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("PyPI"),
    spdx_origin: "installed Python package metadata",
    scheme: Scheme::Pypi,
    name_split: NameSplit::Whole,
};
const GO: Descriptor = Descriptor {
    label: "go-module",
    purl_type: "golang",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("Go"),
    spdx_origin: "Go build info",
    scheme: Scheme::Golang,
    name_split: NameSplit::LastSlash,
};
const CARGO: Descriptor = Descriptor {
    label: "rust-crate",
    purl_type: "cargo",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("crates.io"),
    spdx_origin: "cargo auditable data",
    scheme: Scheme::Cargo,
    name_split: NameSplit::Whole,
};
const GENERIC: Descriptor = Descriptor {
    label: "generic",
    purl_type: "generic",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("generic"),
    spdx_origin: "file contents (vendored component)",
    scheme: Scheme::Generic,
    name_split: NameSplit::Whole,
};
const RPM: Descriptor = Descriptor {
    label: "rpm",
    purl_type: "rpm",
    purl_namespace: Some("redhat"),
    distro_package: true,
    osv: OsvName::RpmRelease,
    spdx_origin: "RPM DB",
    scheme: Scheme::Rpm,
    name_split: NameSplit::Whole,
};
const NPM: Descriptor = Descriptor {
    label: "npm",
    purl_type: "npm",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("npm"),
    spdx_origin: "installed npm package metadata",
    scheme: Scheme::Npm,
    name_split: NameSplit::LastSlash,
};
const JAVA: Descriptor = Descriptor {
    label: "java-archive",
    purl_type: "maven",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("Maven"),
    spdx_origin: "Java archive metadata",
    scheme: Scheme::Maven,
    name_split: NameSplit::Colon,
};
const GEM: Descriptor = Descriptor {
    label: "gem",
    purl_type: "gem",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("RubyGems"),
    spdx_origin: "installed gemspec",
    scheme: Scheme::Gem,
    name_split: NameSplit::Whole,
};
const COMPOSER: Descriptor = Descriptor {
    label: "php-composer",
    purl_type: "composer",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("Packagist"),
    spdx_origin: "Composer metadata",
    scheme: Scheme::Composer,
    name_split: NameSplit::LastSlash,
};
const DOTNET: Descriptor = Descriptor {
    label: "dotnet",
    purl_type: "nuget",
    purl_namespace: None,
    distro_package: false,
    osv: OsvName::Fixed("NuGet"),
    spdx_origin: ".NET deps.json",
    scheme: Scheme::Nuget,
    name_split: NameSplit::Whole,
};

impl Ecosystem {
    /// Every ecosystem.
    pub const ALL: [Ecosystem; 12] = [
        Ecosystem::Deb,
        Ecosystem::Apk,
        Ecosystem::Python,
        Ecosystem::Go,
        Ecosystem::Cargo,
        Ecosystem::Rpm,
        Ecosystem::Npm,
        Ecosystem::Java,
        Ecosystem::Gem,
        Ecosystem::Composer,
        Ecosystem::Dotnet,
        Ecosystem::Generic,
    ];

    /// This ecosystem's facts.
    pub fn descriptor(self) -> &'static Descriptor {
        match self {
            Ecosystem::Deb => &DEB,
            Ecosystem::Apk => &APK,
            Ecosystem::Python => &PYTHON,
            Ecosystem::Go => &GO,
            Ecosystem::Cargo => &CARGO,
            Ecosystem::Rpm => &RPM,
            Ecosystem::Npm => &NPM,
            Ecosystem::Java => &JAVA,
            Ecosystem::Gem => &GEM,
            Ecosystem::Composer => &COMPOSER,
            Ecosystem::Dotnet => &DOTNET,
            Ecosystem::Generic => &GENERIC,
        }
    }

    /// The short type name shown in tables, as Syft shows it.
    pub fn label(self) -> &'static str {
        self.descriptor().label
    }

    /// Its version order and `vers:` scheme.
    pub fn scheme(self) -> Scheme {
        self.descriptor().scheme
    }

    /// The ecosystem whose label (or serialised name) is `s`: how the
    /// signature DB records it.
    pub fn from_label(s: &str) -> Option<Ecosystem> {
        Ecosystem::ALL
            .into_iter()
            .find(|e| e.label() == s || e.name() == s)
    }

    /// The serialised name (`deb`, `python`, `go`, …).
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Python => "python",
            Ecosystem::Go => "go",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Npm => "npm",
            Ecosystem::Java => "java",
            Ecosystem::Gem => "gem",
            Ecosystem::Composer => "composer",
            Ecosystem::Dotnet => "dotnet",
            Ecosystem::Generic => "generic",
        }
    }

    /// A package name as the ecosystem compares names (PEP 503 for Python;
    /// lower case for NuGet and Composer, whose registries ignore case;
    /// verbatim elsewhere).
    pub fn normalize_name(self, name: &str) -> String {
        match self {
            Ecosystem::Python => crate::purl::normalize_python_name(name),
            Ecosystem::Dotnet | Ecosystem::Composer => name.to_ascii_lowercase(),
            _ => name.to_string(),
        }
    }

    /// The OSV ecosystem its advisories are published under, for an image
    /// of `distro`; `None` when the distro does not say which release.
    pub fn osv_name(self, distro: Option<&Distro>) -> Option<String> {
        match self.descriptor().osv {
            OsvName::Fixed(n) => Some(n.to_string()),
            OsvName::DebianRelease => Some(match distro {
                Some(d) if d.id == "ubuntu" => format!("Ubuntu:{}", d.version_id.clone()?),
                Some(d) if d.version_id.is_some() => format!("Debian:{}", d.version_id.clone()?),
                _ => "Debian".to_string(),
            }),
            OsvName::AlpineRelease => {
                let v = distro
                    .and_then(|d| d.version_id.clone())
                    .unwrap_or_default();
                let minor: Vec<&str> = v.split('.').take(2).collect();
                Some(format!("Alpine:v{}", minor.join(".")))
            }
            OsvName::RpmRelease => rpm_osv_name(distro?),
        }
    }

    /// `vers:SCHEME/V1|V2|…`: exactly these versions, in this ecosystem's
    /// scheme.
    pub fn vers_set<'a>(self, versions: impl IntoIterator<Item = &'a str>) -> String {
        format!(
            "vers:{}/{}",
            self.scheme().vers_name(),
            versions.into_iter().collect::<Vec<_>>().join("|")
        )
    }

    /// `vers:SCHEME/>LOWER|<UPPER` with either side open; `None` without
    /// bounds.
    pub fn vers_between(self, lower: Option<&str>, upper: Option<&str>) -> Option<String> {
        let s = self.scheme().vers_name();
        match (lower, upper) {
            (Some(a), Some(b)) => Some(format!("vers:{s}/>{a}|<{b}")),
            (Some(a), None) => Some(format!("vers:{s}/>{a}")),
            (None, Some(b)) => Some(format!("vers:{s}/<{b}")),
            (None, None) => None,
        }
    }
}

/// OSV's ecosystem name for an rpm distribution release.
fn rpm_osv_name(d: &Distro) -> Option<String> {
    let v = d.version_id.as_deref()?;
    let major = v.split('.').next().unwrap_or(v);
    match d.id.as_str() {
        "rocky" => Some(format!("Rocky Linux:{major}")),
        "almalinux" => Some(format!("AlmaLinux:{major}")),
        "rhel" => Some("Red Hat".to_string()),
        "opensuse-leap" => Some(format!("openSUSE:Leap {v}")),
        "opensuse-tumbleweed" => Some("openSUSE:Tumbleweed".to_string()),
        "sles" => Some(format!(
            "SUSE:Linux Enterprise Server {}",
            v.replace('.', " SP")
        )),
        "mageia" => Some(format!("Mageia:{v}")),
        "openEuler" | "openeuler" => Some(format!("openEuler:{v}")),
        _ => None,
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian(v: &str) -> Distro {
        Distro {
            id: "debian".into(),
            version_id: Some(v.into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_ecosystem_has_distinct_names() {
        let mut labels: Vec<&str> = Ecosystem::ALL.iter().map(|e| e.label()).collect();
        let mut types: Vec<&str> = Ecosystem::ALL
            .iter()
            .map(|e| e.descriptor().purl_type)
            .collect();
        labels.sort();
        labels.dedup();
        types.sort();
        types.dedup();
        assert_eq!(labels.len(), Ecosystem::ALL.len());
        assert_eq!(types.len(), Ecosystem::ALL.len());
        for e in Ecosystem::ALL {
            assert_eq!(Ecosystem::from_label(e.label()), Some(e));
            assert_eq!(Ecosystem::from_label(e.name()), Some(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.name()));
        }
        assert_eq!(Ecosystem::from_label("rpm"), Some(Ecosystem::Rpm));
        assert_eq!(Ecosystem::from_label("nope"), None);
    }

    #[test]
    fn osv_names_follow_the_distro() {
        assert_eq!(
            Ecosystem::Deb.osv_name(Some(&debian("12"))).as_deref(),
            Some("Debian:12")
        );
        assert_eq!(Ecosystem::Deb.osv_name(None).as_deref(), Some("Debian"));
        let ubuntu = Distro {
            id: "ubuntu".into(),
            version_id: Some("22.04".into()),
            ..Default::default()
        };
        assert_eq!(
            Ecosystem::Deb.osv_name(Some(&ubuntu)).as_deref(),
            Some("Ubuntu:22.04")
        );
        let alpine = Distro {
            id: "alpine".into(),
            version_id: Some("3.19.1".into()),
            ..Default::default()
        };
        assert_eq!(
            Ecosystem::Apk.osv_name(Some(&alpine)).as_deref(),
            Some("Alpine:v3.19")
        );
        assert_eq!(Ecosystem::Python.osv_name(None).as_deref(), Some("PyPI"));
        let rocky = Distro {
            id: "rocky".into(),
            version_id: Some("9.3".into()),
            ..Default::default()
        };
        assert_eq!(
            Ecosystem::Rpm.osv_name(Some(&rocky)).as_deref(),
            Some("Rocky Linux:9")
        );
        let fedora = Distro {
            id: "fedora".into(),
            version_id: Some("39".into()),
            ..Default::default()
        };
        assert_eq!(Ecosystem::Rpm.osv_name(Some(&fedora)), None);
        assert_eq!(Ecosystem::Java.osv_name(None).as_deref(), Some("Maven"));
        assert_eq!(
            Ecosystem::Cargo.osv_name(None).as_deref(),
            Some("crates.io")
        );
    }

    #[test]
    fn vers_ranges_use_the_ecosystem_scheme() {
        assert_eq!(
            Ecosystem::Deb.vers_set(["1.0-2", "1.0-1"]),
            "vers:deb/1.0-2|1.0-1"
        );
        assert_eq!(
            Ecosystem::Python.vers_set(["2.0", "1.0"]),
            "vers:pypi/2.0|1.0"
        );
        assert_eq!(
            Ecosystem::Generic
                .vers_between(Some("3.0.17"), Some("3.0.22"))
                .as_deref(),
            Some("vers:generic/>3.0.17|<3.0.22")
        );
        assert_eq!(Ecosystem::Deb.vers_between(None, None), None);
        assert_eq!(
            Ecosystem::Deb.vers_between(None, Some("2")).as_deref(),
            Some("vers:deb/<2")
        );
    }

    #[test]
    fn python_names_are_normalised_and_others_are_not() {
        assert_eq!(
            Ecosystem::Python.normalize_name("Zope.Interface"),
            "zope-interface"
        );
        assert_eq!(Ecosystem::Deb.normalize_name("libFoo_1"), "libFoo_1");
    }
}
