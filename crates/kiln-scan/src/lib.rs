//! kiln's reconcile stage: from a source to the packages a report lists.
//!
//! `kiln-scan` wires the stages below it into the two jobs users run:
//!
//! - [`catalog`]: read a source once ([`source::open_tree`]) and list what
//!   its package metadata declares (`kiln sbom`);
//! - [`scan`]: the same read with every file hashed and fingerprinted
//!   ([`inspect`]), packages identified from bytes against the signature DB
//!   ([`kiln_rainbow::identify`]), cross-checked with the metadata
//!   ([`reconcile`]), and upstream components found inside files
//!   ([`components`]) merged in (`kiln scan`, and `kiln vuln` before it
//!   matches advisories).
//!
//! The reconcile functions are pure: hand them an identification and the
//! metadata's packages and they return the report's packages, which is
//! how their tests exercise them.
#![deny(missing_docs)]

pub mod components;
pub mod inspect;
pub mod reconcile;
pub mod source;
pub mod templates;

use std::sync::Arc;

use kiln_fingerprint::ElfInfo;
use kiln_image::OpenOptions;
use kiln_rainbow::{Db, FileSender, LookAhead};
use kiln_report::Sbom;
use kiln_tree::{BuildOptions, FileDoneFn, InspectFn, LinkFn, ProgressFn};
pub use templates::SharedTemplates;

/// Why a scan failed, naming the source or DB at fault.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The source string names no source kiln can read (the error quotes
    /// it).
    #[error(transparent)]
    Reference(kiln_image::ImageError),
    /// The source could not be opened.
    #[error("cannot open {input}: {err}")]
    Open {
        /// The source as given.
        input: String,
        /// Why.
        err: kiln_image::ImageError,
    },
    /// The source's layers could not be read.
    #[error("cannot read {input}: {err}")]
    Read {
        /// The source as given.
        input: String,
        /// Why.
        err: kiln_tree::TreeError,
    },
    /// The signature DB failed.
    #[error(transparent)]
    Db(#[from] kiln_rainbow::RainbowError),
    /// The DB's version templates could not be read (on the helper thread
    /// that loads them, so only the message travels).
    #[error("{0}")]
    Templates(String),
}

impl ScanError {
    fn open(source: &str, err: kiln_image::ImageError) -> Self {
        ScanError::Open {
            input: source.to_string(),
            err,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ScanError> = std::result::Result<T, E>;

/// List what the source's package metadata declares, and the modules
/// and crates Go and Rust binaries embed.
pub fn catalog(
    source: &str,
    open: &OpenOptions,
    progress: Option<Box<ProgressFn>>,
) -> Result<Sbom> {
    let build = BuildOptions {
        capture: Box::new(kiln_catalog::wants),
        progress,
        inspect: Some(Box::new(inspect::embedded_build_data)),
        inspect_if: Some(Box::new(inspect::executables)),
        ..Default::default()
    };
    let (tree, source) = source::open_tree(source, open, &build)?;
    let catalog = kiln_catalog::catalog(&tree);
    Ok(Sbom { source, catalog })
}

/// Read the source once: catalog its metadata and, with a signature DB,
/// identify its packages from bytes, cross-check the two, and add the
/// components found inside files.
pub fn scan(
    source: &str,
    open: &OpenOptions,
    db: Option<&Db>,
    progress: Option<Box<ProgressFn>>,
) -> Result<Sbom> {
    let templates = db.map(SharedTemplates::spawn);
    let sbom = scan_with(source, open, db.zip(templates.as_ref()), progress);
    // Compiled templates take milliseconds to free.
    drop_in_background(templates);
    sbom
}

/// [`scan`] with `db`'s templates, loaded or loading
/// ([`SharedTemplates`]).
pub fn scan_with(
    source: &str,
    open: &OpenOptions,
    db: Option<(&Db, &Arc<SharedTemplates>)>,
    progress: Option<Box<ProgressFn>>,
) -> Result<Sbom> {
    let shared = db.map(|(_, t)| t);
    let db = db.map(|(d, _)| d);
    let ahead = db.map(|d| {
        let opener = d.reader_opener();
        LookAhead::start(move || opener.open())
    });
    let build = BuildOptions {
        capture: Box::new(kiln_catalog::wants),
        hash: db.is_some(),
        progress,
        inspect: Some(inspector(shared)),
        // Matching needs every ELF file's build-id; without a DB only Go
        // and Rust binaries (executables) matter.
        inspect_if: if db.is_some() {
            None
        } else {
            Some(Box::new(inspect::executables))
        },
        on_file: ahead.as_ref().map(|a| look_ahead(a.sender())),
        on_link: ahead.as_ref().map(|a| {
            let to = a.sender();
            Box::new(move |path: &str, target: &str| to.link(path, target)) as Box<LinkFn>
        }),
    };
    let (tree, source) = source::open_tree(source, open, &build)?;
    let mut catalog = kiln_catalog::catalog(&tree);
    let Some(ahead) = ahead else {
        return Ok(Sbom { source, catalog });
    };
    // The look-ahead's reader has the pages the rest needs in its cache.
    let (known, db) = ahead.finish()?;
    let db = &db;
    let templates = shared.map(|s| s.get()).transpose()?;
    // Clues are read against the templates while identification runs.
    let (found, reads) = std::thread::scope(|s| {
        let reads = templates.map(|t| s.spawn(|| components::read(&tree, t)));
        let found = kiln_rainbow::identify_with(db, &tree, Some(&known));
        (found, reads.map(join_reads).transpose())
    });
    let (mut found, reads) = (found?, reads?);
    let claimed = std::mem::take(&mut catalog.packages);
    let distro = catalog.distro.clone();
    let mut packages = reconcile::reconcile(&found, claimed, distro.as_ref());
    if let (Some(t), Some(reads)) = (templates, reads) {
        let vendored = components::vendored(reads, &found, t, &packages, distro.as_ref());
        packages.extend(vendored);
    }
    for f in components::by_functions(db, &tree, &found)? {
        reconcile::merge_component(&mut packages, f);
    }
    reconcile::sort(&mut packages);
    catalog.packages = packages;
    catalog.unexplained_files = std::mem::take(&mut found.unexplained);
    drop_in_background((tree, found, known));
    Ok(Sbom { source, catalog })
}

/// Freeing a large image's tree (every entry, its ELF facts and captured
/// files) took about 30 ms of a 1 s scan, on the critical path, and the
/// identification and look-up answers about 8 ms more; nobody needs to
/// wait for it.
fn drop_in_background<T: Send + 'static>(value: T) {
    std::thread::spawn(move || drop(value));
}

/// The clue-reading thread's result; a panic there is a bug, reported
/// with its message rather than taking the scan down with it.
fn join_reads<'t>(
    h: std::thread::ScopedJoinHandle<'_, Result<components::Reads<'t>>>,
) -> Result<components::Reads<'t>> {
    h.join().unwrap_or_else(|panic| {
        Err(kiln_rainbow::RainbowError::panicked("version-clue reading", &*panic).into())
    })
}

/// Report each hashed file to the look-ahead, with its build-id.
fn look_ahead(to: FileSender) -> Box<FileDoneFn> {
    Box::new(move |path, digest, facts| {
        let elf = facts.and_then(|f| f.downcast_ref::<ElfInfo>());
        to.file(path, digest, elf.and_then(|e| e.build_id.as_deref()));
    })
}

/// ELF facts, with version clues when the DB has templates to read them
/// (the first ELF file waits for them if they are still loading).
fn inspector(shared: Option<&Arc<SharedTemplates>>) -> Box<InspectFn> {
    match shared {
        Some(s) => {
            let s = Arc::clone(s);
            Box::new(move |path, data| match s.wait() {
                Some(t) if !t.is_empty() => inspect::elf_facts_with_clues(data, t),
                _ => inspect::elf_facts(path, data),
            })
        }
        None => Box::new(inspect::elf_facts),
    }
}
