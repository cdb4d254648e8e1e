//! Version order for advisories, keyed by OSV ecosystem name. The orders
//! themselves live with the ecosystems in [`kiln_catalog::version`].

use std::cmp::Ordering;

use kiln_catalog::version::Scheme;

/// Compare two versions under the rules of an OSV ecosystem name
/// (`Debian:12`, `PyPI`, `Go`, `crates.io`, `npm`, `Alpine:v3.19`, …).
/// `None` when a version does not parse under those rules.
pub fn compare(ecosystem: &str, a: &str, b: &str) -> Option<Ordering> {
    Scheme::from_osv(ecosystem).compare(a, b)
}
