//! The rainbow table: package signatures learned from real packages, and
//! identification of packages and exact versions from file bytes.
//!
//! `kiln-rainbow` is the fourth stage of kiln's pipeline. [`Db`] is an
//! embedded SQLite database built from real `.deb` archives and Python
//! wheels (read in parallel by [`deb::read_deb`] and [`wheel`]): every
//! file's path, mode, size and content digest (BLAKE3), symlink targets, conffiles, and for
//! ELF files the build-id, `.note.package`, SONAME, `DT_NEEDED`, defined
//! symbol versions and code identity (function set, digest of the loaded
//! sections). Paths and contents are stored once and shared across
//! versions. While Debian packages are ingested, [`learn`] generalises how
//! each upstream project shows its version into templates, and
//! [`funcmatch`] keeps each project's distinctive function hashes.
//!
//! [`identify`] takes a squashed [`kiln_tree::Tree`] whose files were hashed
//! and fingerprinted, asks a [`SignatureLookup`] (the DB, or another
//! store) about every hash, build-id and path in batches, and resolves
//! each package to the version that best explains the observed bytes —
//! reporting a set of versions when the bytes fit several, and "version
//! not in DB" (with the nearest known version and a `vers:` range) rather
//! than ever inventing one. [`vendored`] and [`funcmatch`] find upstream
//! components inside files.
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
pub mod bulk;
mod db;
pub mod deb;
mod error;
pub mod funcmatch;
mod identify;
pub mod learn;
pub mod npm;
mod patterns;
pub mod project;
mod range;
mod templates;
pub mod vendored;
pub mod wheel;
mod writer;

pub use db::{
    require_blake3_keys, Db, Derive, IngestReport, ReaderOpener, Stats, SCHEMA_VERSION, TABLES,
};
pub use error::{RainbowError, Result};
pub use identify::{
    identify, identify_with, Answers, Build, BuildId, ContentId, FileSender, Identification,
    Identified, KeyHit, LookAhead, Match, PathHit, SignatureLookup, StoredCode,
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
