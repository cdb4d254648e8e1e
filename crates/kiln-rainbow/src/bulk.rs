//! Learning from many Debian packages at once: a selection from the
//! machine's apt indexes (sections, name patterns) is downloaded by
//! several `apt-get` processes while earlier batches are ingested, each
//! batch in its own transaction. An interrupted build keeps every batch
//! it finished, and the next build skips what the DB already holds, so it
//! fetches nothing twice. The derived tables (templates, function
//! commonness) are refreshed once, at the end, in one transaction.

use std::path::Path;

use crate::apt::{self, Available};
use crate::db::{Db, Derive, IngestReport};
use crate::error::Result;

/// What to take from the apt indexes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Archive sections (`libs`, `libdevel`).
    pub sections: Vec<String>,
    /// Package-name globs (`libxml2*`).
    pub patterns: Vec<String>,
    /// Every version the indexes offer, not only the newest.
    pub all_versions: bool,
}

/// What a bulk build did, beyond the ingest itself.
#[derive(Debug, Default, Clone)]
pub struct BulkReport {
    /// The ingest, summed over batches.
    pub ingest: IngestReport,
    /// Packages the selection named.
    pub selected: usize,
    /// Of those, already in the DB (not fetched).
    pub present: usize,
    /// Bytes downloaded (as the indexes give the sizes).
    pub downloaded: u64,
}

/// How the work is split.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// `apt-get download` processes at a time.
    pub jobs: usize,
    /// Packages per batch (per download and per transaction).
    pub batch: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan { jobs: 4, batch: 64 }
    }
}

/// The packages of `sel` the DB does not hold yet.
pub fn pending(db: &Db, sel: &Selection) -> Result<(Vec<Available>, usize)> {
    let available = apt::available()?;
    let picked = apt::select(&available, &sel.sections, &sel.patterns, sel.all_versions)?;
    let known = db.known_packages()?;
    let total = picked.len();
    let todo: Vec<Available> = picked
        .into_iter()
        .filter(|a| !known.contains(&(a.name.clone(), a.version.clone(), a.arch.clone())))
        .collect();
    let present = total - todo.len();
    Ok((todo, present))
}

/// Download and ingest `todo` batch by batch under `scratch` (each batch's
/// files are deleted once ingested); `progress` is called per archive.
pub fn ingest(
    db: &mut Db,
    todo: &[Available],
    scratch: &Path,
    plan: Plan,
    progress: &(dyn Fn(&Path) + Sync),
) -> Result<BulkReport> {
    let mut report = BulkReport {
        selected: todo.len(),
        downloaded: todo.iter().map(|a| a.size).sum(),
        ..Default::default()
    };
    let specs: Vec<String> = todo.iter().map(Available::spec).collect();
    apt::download_batches(&specs, scratch, plan.jobs, plan.batch, &mut |(
        files,
        failed,
    )| {
        if !files.is_empty() {
            report
                .ingest
                .absorb(db.ingest(&files, progress, Derive::Later)?);
        }
        for (spec, why) in failed {
            report
                .ingest
                .failed
                .push((spec.into(), format!("apt-get download: {why}")));
        }
        // The batch's directory, whatever it holds.
        for f in files.iter().take(1) {
            if let Some(dir) = f.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    })?;
    // Once, over everything (and whatever an interrupted build left).
    if report.ingest.added > 0 || db.derive_pending()? {
        db.derive()?;
    }
    Ok(report)
}
