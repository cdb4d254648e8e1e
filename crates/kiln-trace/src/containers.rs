//! Which container a mount namespace belongs to.
//!
//! runc writes a container's `state.json` before its entrypoint runs but
//! after its init has started working in the new mount namespace, so an
//! event from a namespace not seen before is held while the state roots
//! are read again (see `session`); a namespace that is still no
//! container's after a grace period (or is a container not asked for) is
//! remembered, and the kernel is told to drop its events from then on.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// A traced container.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Info {
    /// Container id.
    pub id: String,
    /// Host pid of its init process.
    pub init_pid: i32,
}

/// Mount namespaces to containers.
pub struct Resolver {
    roots: Vec<PathBuf>,
    want: Option<BTreeSet<String>>,
    known: HashMap<u32, Option<Arc<Info>>>,
}

/// The mount namespace inode of a process.
pub fn mntns_of(pid: i32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|m| m.ino() as u32)
}

impl Resolver {
    /// Containers under `roots`: those named in `want`, or all.
    pub fn new(roots: Vec<PathBuf>, want: Option<BTreeSet<String>>) -> Resolver {
        let mut r = Resolver {
            roots,
            want,
            known: HashMap::new(),
        };
        r.scan();
        r
    }

    /// The containers traced now.
    pub fn traced(&self) -> Vec<Arc<Info>> {
        let mut v: Vec<_> = self.known.values().flatten().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v.dedup();
        v
    }

    /// Read the state roots again.
    pub fn scan(&mut self) {
        for c in kiln_runtime::container::list(&self.roots) {
            let Some(ns) = mntns_of(c.pid) else { continue };
            let wanted = self.want.as_ref().is_none_or(|w| w.contains(&c.id));
            let info = wanted.then(|| {
                Arc::new(Info {
                    id: c.id.clone(),
                    init_pid: c.pid,
                })
            });
            self.known.insert(ns, info);
        }
    }

    /// What `mntns` is, if known: a traced container, or None for a
    /// namespace not traced.
    pub fn lookup(&self, mntns: u32) -> Option<Option<Arc<Info>>> {
        self.known.get(&mntns).cloned()
    }

    /// Remember a namespace as not traced.
    pub fn mark_unwanted(&mut self, mntns: u32) {
        self.known.insert(mntns, None);
    }

    /// Namespaces already known to be unwanted (to tell the kernel at start).
    pub fn unwanted(&self) -> Vec<u32> {
        self.known
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespaces_stay_unknown_until_marked() {
        let dir = std::env::temp_dir().join("kiln-trace-no-roots");
        let mut r = Resolver::new(vec![dir], None);
        assert!(r.lookup(1).is_none());
        r.mark_unwanted(1);
        assert_eq!(r.lookup(1), Some(None));
        assert_eq!(r.unwanted(), vec![1]);
        assert!(mntns_of(std::process::id() as i32).is_some());
    }
}
