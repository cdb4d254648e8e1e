//! The DB's version templates, shared by the inspectors that read version
//! clues while layers stream and by the component match afterwards.
//!
//! A whole-`libs` DB holds thousands of templates; reading them took 20–35
//! ms before the first layer byte was read. [`SharedTemplates::spawn`]
//! reads them from a second reader on a helper thread instead, while the
//! layers start streaming; the first inspector to need them waits.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kiln_rainbow::vendored::Templates;
use kiln_rainbow::{Db, ReaderOpener};

use crate::{Result, ScanError};

/// Templates that are loaded, or loading.
pub struct SharedTemplates {
    cell: OnceLock<Result<Arc<Templates>, String>>,
    /// How to open the reader to load from, taken by whoever loads first.
    db: Mutex<Option<ReaderOpener>>,
}

impl SharedTemplates {
    /// Start loading `db`'s templates on a helper thread, from a second
    /// reader; their string patterns then compile on the same thread.
    /// Scans of many images share one load.
    pub fn spawn(db: &Db) -> Arc<Self> {
        let shared = Arc::new(SharedTemplates {
            cell: OnceLock::new(),
            db: Mutex::new(Some(db.reader_opener())),
        });
        let helper = Arc::clone(&shared);
        std::thread::spawn(move || {
            if let Ok(t) = helper.loaded() {
                // A failure surfaces again, as an error, when components
                // are matched.
                let _ = t.compile();
            }
        });
        shared
    }

    /// The templates, waiting for the load if it is under way; `None` when
    /// the load failed (the error comes from [`SharedTemplates::get`]).
    pub fn wait(&self) -> Option<&Arc<Templates>> {
        self.loaded().as_ref().ok()
    }

    /// The templates, or why they could not be read.
    pub fn get(&self) -> Result<&Arc<Templates>> {
        self.loaded()
            .as_ref()
            .map_err(|e| ScanError::Templates(e.clone()))
    }

    fn loaded(&self) -> &Result<Arc<Templates>, String> {
        self.cell.get_or_init(|| {
            let db = self
                .db
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            match db {
                Some(db) => db
                    .open()
                    .and_then(|db| Templates::load(&db))
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
                None => Err("no reader to load the templates from".into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_load_on_a_helper_thread_and_every_caller_sees_one_load() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("sig.db")).unwrap();
        let shared = SharedTemplates::spawn(&db);
        let first = shared.wait().expect("loaded") as *const _;
        assert!(shared.wait().unwrap().is_empty());
        assert_eq!(shared.get().unwrap() as *const _, first);
    }
}
