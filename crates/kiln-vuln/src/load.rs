//! Reading advisory sources: OSV as a directory of JSON files, a single
//! JSON file, or a zip export (as OSV publishes per ecosystem); the Debian
//! tracker's JSON.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::osv::Advisory;

/// A source that could not be read (or stored).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is unreadable or not in the expected format.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Storing a record failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn fail(path: &Path, reason: impl std::fmt::Display) -> LoadError {
    LoadError::Bad {
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// Parse one OSV record; records that are not OSV (no `id`) are errors.
fn parse_record(bytes: &[u8], path: &Path, name: &str) -> Result<Advisory, LoadError> {
    serde_json::from_slice(bytes).map_err(|e| fail(path, format!("{name}: not an OSV record: {e}")))
}

/// Load OSV records from a directory (recursively), a `.json` file or a
/// `.zip` export, all at once.
pub fn osv(path: &Path) -> Result<Vec<Advisory>, LoadError> {
    let mut out = Vec::new();
    osv_each(path, &mut |a| {
        out.push(a);
        Ok(())
    })?;
    Ok(out)
}

/// Hand OSV records to `each` one at a time, as they are read.
pub fn osv_each(
    path: &Path,
    each: &mut dyn FnMut(Advisory) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| fail(path, e))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(|e| fail(&dir, e))? {
                let p = e.map_err(|e| fail(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| fail(&f, e))?;
            each(parse_record(&bytes, &f, "record")?)?;
        }
        return Ok(());
    }
    let file = std::fs::File::open(path).map_err(|e| fail(path, e))?;
    if path.extension().is_some_and(|x| x == "zip") {
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| fail(path, format!("not a zip archive: {e}")))?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| fail(path, e))?;
            if !entry.name().ends_with(".json") {
                continue;
            }
            // Bound each record: OSV records are kilobytes, not gigabytes.
            let name = entry.name().to_string();
            let mut bytes = Vec::new();
            (&mut entry)
                .take(64 << 20)
                .read_to_end(&mut bytes)
                .map_err(|e| fail(path, format!("{name}: {e}")))?;
            each(parse_record(&bytes, path, &name)?)?;
        }
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| fail(path, e))?;
    // A single record, or an array of them.
    match serde_json::from_slice::<Vec<Advisory>>(&bytes) {
        Ok(v) => v.into_iter().try_for_each(each),
        Err(_) => each(parse_record(&bytes, path, "record")?),
    }
}

/// Load the Debian security tracker JSON.
pub fn debian_tracker(path: &Path) -> Result<Vec<Advisory>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, e))?;
    crate::debian::parse(&bytes)
        .map_err(|e| fail(path, format!("not Debian security tracker JSON: {e}")))
}

/// Load an NVD CVE JSON 2.0 document (an API page or a feed file).
pub fn nvd(path: &Path) -> Result<Vec<Advisory>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, e))?;
    crate::nvd::parse(&bytes).map_err(|e| fail(path, format!("not NVD CVE JSON 2.0: {e}")))
}
