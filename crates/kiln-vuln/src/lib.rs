//! Vulnerability matching for kiln.
//!
//! `kiln-vuln` is the stage after identification: it stores advisories
//! (OSV records of any ecosystem, the Debian security tracker's JSON) in
//! kiln's embedded database, and matches identified packages — found by
//! metadata or from bytes — against them with each ecosystem's own version
//! order ([`version`], which maps OSV ecosystem names to the orders in
//! [`kiln_catalog::version`]): dpkg for Debian (by source package, so backports
//! are never flagged by upstream ranges), PEP 440 for PyPI, semver for Go,
//! crates.io and npm, apk rules for Alpine, and a generic order that
//! understands OpenSSL's letter releases for vendored components.
//!
//! ```
//! use kiln_vuln::version::compare;
//! use std::cmp::Ordering;
//! assert_eq!(compare("Debian:12", "7.88.1-10+deb12u5", "7.88.1-10+deb12u15"), Some(Ordering::Less));
//! assert_eq!(compare("PyPI", "1.0rc1", "1.0"), Some(Ordering::Less));
//! assert_eq!(compare("generic", "1.1.1w", "1.1.1v"), Some(Ordering::Greater));
//! ```
#![deny(missing_docs)]

pub mod cvss;
pub mod debian;
pub mod fetch;
pub mod ignore;
pub mod load;
pub mod matcher;
pub mod nvd;
pub mod osv;
pub mod store;
pub mod version;

pub use cvss::Severity;
pub use matcher::{find, Finding, FoundBy};
pub use store::Store;
