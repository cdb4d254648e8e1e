//! Version order per ecosystem. Which order applies is a fact of the
//! package's ecosystem ([`crate::Ecosystem::scheme`]): identification sorts
//! candidate builds with it, `vers:` ranges name it, and advisory ranges
//! are only as right as the comparison behind them.
//!
//! - Debian: `dpkg --compare-versions` ([`dpkg_cmp`]);
//! - PyPI: PEP 440 ([`pep440`]);
//! - Go, crates.io, npm: semantic versioning ([`semver`]);
//! - Alpine: apk's version rules ([`apk`]);
//! - rpm: `rpmvercmp` after the epoch ([`rpm`]);
//! - Maven: `ComparableVersion` ([`maven`]); RubyGems: `Gem::Version`
//!   ([`gem`]); NuGet and Composer: dotted numbers with a pre-release tail
//!   ([`dotted`]);
//! - everything else, including OpenSSL-style letter releases (`1.1.1w`):
//!   [`generic`].

pub mod apk;
pub mod dotted;
mod dpkg;
pub mod gem;
pub mod generic;
pub mod maven;
pub mod pep440;
pub mod rpm;
pub mod semver;

use std::cmp::Ordering;

pub use dpkg::dpkg_cmp;

/// A piece of a version: a run of digits, or a run of anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Num(u128),
    Word(String),
}

/// Split `v` at `seps` and at every change between digits and other
/// characters (`1.0rc2` → 1, 0, rc, 2), as Maven and RubyGems read versions.
pub(crate) fn tokens(v: &str, seps: &[char]) -> Vec<Token> {
    let mut out = Vec::new();
    for seg in v.trim().split(seps) {
        let mut rest = seg;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n = if digits > 0 {
                digits
            } else {
                rest.bytes().take_while(|c| !c.is_ascii_digit()).count()
            };
            let (tok, tail) = rest.split_at(n);
            out.push(match tok.parse() {
                Ok(x) => Token::Num(x),
                Err(_) => Token::Word(tok.to_string()),
            });
            rest = tail;
        }
    }
    out
}

/// A version order, named as `vers:` names its schemes (package-url
/// types, plus `generic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Debian's order (dpkg).
    Deb,
    /// Alpine's order (apk).
    Apk,
    /// PEP 440.
    Pypi,
    /// Semantic versioning, as Go modules use it.
    Golang,
    /// Semantic versioning, as crates.io uses it.
    Cargo,
    /// Semantic versioning, as npm uses it.
    Npm,
    /// rpm's order (epoch, `rpmvercmp` of version and release).
    Rpm,
    /// Maven's `ComparableVersion`.
    Maven,
    /// RubyGems' `Gem::Version`.
    Gem,
    /// NuGet's versions.
    Nuget,
    /// Composer's versions.
    Composer,
    /// Dotted numbers with letter suffixes, for upstream projects.
    Generic,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Scheme; 12] = [
        Scheme::Deb,
        Scheme::Apk,
        Scheme::Pypi,
        Scheme::Golang,
        Scheme::Cargo,
        Scheme::Npm,
        Scheme::Rpm,
        Scheme::Maven,
        Scheme::Gem,
        Scheme::Nuget,
        Scheme::Composer,
        Scheme::Generic,
    ];

    /// The scheme's name in a `vers:` URI (`vers:deb/…`).
    pub fn vers_name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Apk => "apk",
            Scheme::Pypi => "pypi",
            Scheme::Golang => "golang",
            Scheme::Cargo => "cargo",
            Scheme::Npm => "npm",
            Scheme::Rpm => "rpm",
            Scheme::Maven => "maven",
            Scheme::Gem => "gem",
            Scheme::Nuget => "nuget",
            Scheme::Composer => "composer",
            Scheme::Generic => "generic",
        }
    }

    /// Compare two versions under this scheme; `None` when one does not
    /// parse under its rules (PEP 440 and semver are strict).
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Scheme::Deb => Some(dpkg_cmp(a, b)),
            Scheme::Apk => Some(apk::compare(a, b)),
            Scheme::Pypi => Some(pep440::Version::parse(a)?.cmp(&pep440::Version::parse(b)?)),
            Scheme::Golang | Scheme::Cargo | Scheme::Npm => {
                Some(semver::Version::parse(a)?.cmp(&semver::Version::parse(b)?))
            }
            Scheme::Rpm => Some(rpm::compare(a, b)),
            Scheme::Maven => Some(maven::compare(a, b)),
            Scheme::Gem => Some(gem::compare(a, b)),
            Scheme::Nuget => dotted::nuget(a, b),
            Scheme::Composer => dotted::composer(a, b),
            Scheme::Generic => Some(generic::compare(a, b)),
        }
    }

    /// A total order for sorting: versions this scheme reads come first,
    /// in its order; strings it cannot read follow, in the generic order.
    /// (Falling back to the generic order only for the pairs that do not
    /// parse was not transitive: the fuzzer found `1.0.0-*rc.1` ≤ `1.0.0`
    /// ≤ `1.0.00.0-rc0ld.5.0` but `1.0.0-*rc.1` > `1.0.00.0-rc0ld.5.0`.)
    pub fn cmp(self, a: &str, b: &str) -> Ordering {
        match (self.reads(a), self.reads(b)) {
            (true, true) => self.compare(a, b).unwrap_or(Ordering::Equal),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => generic::compare(a, b),
        }
    }

    /// Does this scheme read `v` (the strict ones: PEP 440, semver)?
    fn reads(self, v: &str) -> bool {
        match self {
            Scheme::Pypi => pep440::Version::parse(v).is_some(),
            Scheme::Golang | Scheme::Cargo | Scheme::Npm => semver::Version::parse(v).is_some(),
            Scheme::Nuget => dotted::nuget(v, v).is_some(),
            Scheme::Composer => dotted::composer(v, v).is_some(),
            Scheme::Deb
            | Scheme::Apk
            | Scheme::Rpm
            | Scheme::Maven
            | Scheme::Gem
            | Scheme::Generic => true,
        }
    }

    /// The scheme of an OSV ecosystem name (`Debian:12`, `PyPI`, `Go`,
    /// `crates.io`, `npm`, `Alpine:v3.19`, …); `generic` for the rest.
    pub fn from_osv(ecosystem: &str) -> Scheme {
        match ecosystem.split(':').next().unwrap_or(ecosystem) {
            "Debian" | "Ubuntu" => Scheme::Deb,
            "PyPI" => Scheme::Pypi,
            "Go" => Scheme::Golang,
            "crates.io" => Scheme::Cargo,
            "npm" => Scheme::Npm,
            "Alpine" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" => Scheme::Rpm,
            "Maven" => Scheme::Maven,
            "RubyGems" => Scheme::Gem,
            "NuGet" => Scheme::Nuget,
            "Packagist" => Scheme::Composer,
            _ => Scheme::Generic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scheme_orders_its_own_versions() {
        assert_eq!(Scheme::Deb.cmp("1.0~rc1-1", "1.0-1"), Ordering::Less);
        assert_eq!(Scheme::Pypi.cmp("1.0rc1", "1.0"), Ordering::Less);
        assert_eq!(Scheme::Pypi.cmp("1.0.post1", "1.0"), Ordering::Greater);
        assert_eq!(Scheme::Golang.cmp("v1.2.3-beta", "v1.2.3"), Ordering::Less);
        assert_eq!(Scheme::Apk.cmp("1.2.3-r1", "1.2.3-r10"), Ordering::Less);
        assert_eq!(Scheme::Generic.cmp("1.1.1w", "1.1.1"), Ordering::Greater);
        assert_eq!(
            Scheme::Rpm.cmp("1:1.0-1.el9", "2.0-1.el9"),
            Ordering::Greater
        );
        assert_eq!(Scheme::Maven.cmp("1.0-rc1", "1.0"), Ordering::Less);
        assert_eq!(Scheme::Gem.cmp("2.2.4", "2.2.10"), Ordering::Less);
        assert_eq!(Scheme::Nuget.cmp("6.0.0-preview", "6.0.0"), Ordering::Less);
        assert_eq!(
            Scheme::Composer.cmp("v2.0.0-beta1", "2.0.0"),
            Ordering::Less
        );
    }

    #[test]
    fn unparsable_versions_still_sort() {
        assert_eq!(Scheme::Pypi.compare("not a version", "1.0"), None);
        assert_eq!(Scheme::Pypi.cmp("1.0", "1.0"), Ordering::Equal);
        let _ = Scheme::Cargo.cmp("x", "y");
    }

    #[test]
    fn osv_names() {
        assert_eq!(Scheme::from_osv("Debian:12"), Scheme::Deb);
        assert_eq!(Scheme::from_osv("Alpine:v3.19"), Scheme::Apk);
        assert_eq!(Scheme::from_osv("crates.io"), Scheme::Cargo);
        assert_eq!(Scheme::from_osv("NVD-CPE"), Scheme::Generic);
        assert_eq!(Scheme::from_osv("Rocky Linux:9"), Scheme::Rpm);
        assert_eq!(
            Scheme::from_osv("Red Hat:enterprise_linux:9::appstream"),
            Scheme::Rpm
        );
        assert_eq!(Scheme::from_osv("Packagist"), Scheme::Composer);
    }
}
