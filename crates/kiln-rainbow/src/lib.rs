//! The rainbow table: package signatures learned from real packages, and
//! identification of packages and exact versions from file bytes.
//!
//! `kiln-rainbow` is the fourth stage of kiln's pipeline. [`Db`] is an
//! embedded SQLite database built from real `.deb` archives (read in
//! parallel by [`deb::read_deb`]): every file's path, mode, size and
//! SHA-256, symlink targets, conffiles, and for ELF files the build-id,
//! `.note.package`, SONAME, `DT_NEEDED` and defined symbol versions. Paths
//! and contents are stored once and shared across versions.
//!
//! [`identify`] takes a squashed [`kiln_tree::Tree`] whose files were hashed
//! and fingerprinted, looks every hash and build-id up in batches, and
//! resolves each package to the version that best explains the observed
//! bytes — reporting a set of versions when the bytes fit several, and
//! "version not in DB" (with the nearest known version) rather than ever
//! inventing one.
//!
//! ```no_run
//! use kiln_rainbow::Db;
//! let mut db = Db::open(std::path::Path::new("kiln.db"))?;
//! let report = db.ingest_debs(&[ "curl_7.88.1-10+deb12u5_amd64.deb".into() ], &|_| {})?;
//! println!("added {} packages", report.added);
//! # Ok::<(), kiln_rainbow::RainbowError>(())
//! ```
#![deny(missing_docs)]

pub mod apt;
mod db;
pub mod deb;
mod error;
pub mod funcmatch;
mod identify;
pub mod learn;
mod patterns;
pub mod project;
mod range;
mod templates;
pub mod vendored;
pub mod wheel;

pub use db::{Db, IngestReport, Stats, SCHEMA_VERSION};
pub use error::{RainbowError, Result};
pub use identify::{
    identify, Build, BuildId, ContentId, Identification, Identified, KeyHit, Match, PathHit,
    SignatureLookup, StoredCode,
};

/// The default database path: `$XDG_DATA_HOME/kiln/kiln.db`, falling back
/// to `~/.local/share/kiln/kiln.db`.
pub fn default_db_path() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    base.join("kiln").join("kiln.db")
}
