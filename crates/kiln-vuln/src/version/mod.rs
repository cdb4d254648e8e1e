//! Version order per ecosystem, as advisories need it: an advisory range
//! is only as right as the comparison behind it.
//!
//! - Debian: `dpkg --compare-versions` ([`kiln_catalog::version::dpkg_cmp`]);
//! - PyPI: PEP 440 ([`pep440`]);
//! - Go, crates.io, npm: semantic versioning ([`semver`]);
//! - Alpine: apk's version rules ([`apk`]);
//! - everything else, including OpenSSL-style letter releases (`1.1.1w`):
//!   [`generic`].

pub mod apk;
pub mod generic;
pub mod pep440;
pub mod semver;

use std::cmp::Ordering;

/// Compare two versions under the rules of an OSV ecosystem name
/// (`Debian:12`, `PyPI`, `Go`, `crates.io`, `npm`, `Alpine:v3.19`, …).
/// `None` when a version does not parse under those rules.
pub fn compare(ecosystem: &str, a: &str, b: &str) -> Option<Ordering> {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    match base {
        "Debian" | "Ubuntu" => Some(kiln_catalog::version::dpkg_cmp(a, b)),
        "PyPI" => Some(pep440::Version::parse(a)?.cmp(&pep440::Version::parse(b)?)),
        "Go" | "crates.io" | "npm" => {
            Some(semver::Version::parse(a)?.cmp(&semver::Version::parse(b)?))
        }
        "Alpine" => Some(apk::compare(a, b)),
        _ => Some(generic::compare(a, b)),
    }
}
