//! Which container a mount namespace belongs to.
//!
//! runc writes a container's `state.json` before its entrypoint runs but
//! after its init has started working in the new mount namespace, so an
//! event from a namespace not seen before is held while the state roots
//! are read again (see `session`); a namespace that is still no
//! container's after a grace period (or is a container not asked for) is
//! remembered, and the kernel is told to drop its events from then on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A traced container.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Info {
    /// Container id.
    pub id: String,
    /// Host pid of its init process.
    pub init_pid: i32,
}

/// A namespace inode, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A mount namespace (processes).
    Mnt(u32),
    /// A network namespace (sockets).
    Net(u32),
}

/// Namespaces to containers. Containers are found by namespace inode (as
/// `/proc/PID/ns` shows it), from a scan of the state roots repeated when
/// an unknown namespace shows up and every second (so a deleted
/// container's inode, once reused, is not taken for it). Namespaces ruled
/// out are remembered by the kernel's never-reused namespace id.
pub struct Resolver {
    roots: Vec<PathBuf>,
    want: Option<BTreeSet<String>>,
    containers: HashMap<Namespace, Option<Arc<Info>>>,
    unwanted: HashSet<(bool, u64)>,
    /// The kernel id first seen for each container namespace: an event
    /// with the same inode and another id is a new namespace that reuses
    /// the inode of a container's, not that container.
    ids: HashMap<Namespace, (String, u64)>,
    /// Init pids of every listed container (running or not) to ids.
    inits: HashMap<i32, String>,
    scanned: Instant,
}

/// A namespace inode of a process (`kind` is `mnt` or `net`).
fn ns_of(pid: i32, kind: &str) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino() as u32)
}

/// The mount namespace inode of a process.
pub fn mntns_of(pid: i32) -> Option<u32> {
    ns_of(pid, "mnt")
}

/// The network namespace inode of a process.
pub fn netns_of(pid: i32) -> Option<u32> {
    ns_of(pid, "net")
}

impl Resolver {
    /// Containers under `roots`: those named in `want`, or all.
    pub fn new(roots: Vec<PathBuf>, want: Option<BTreeSet<String>>) -> Resolver {
        let mut r = Resolver {
            roots,
            want,
            containers: HashMap::new(),
            unwanted: HashSet::new(),
            ids: HashMap::new(),
            inits: HashMap::new(),
            scanned: Instant::now(),
        };
        r.scan();
        r
    }

    /// The containers traced now.
    pub fn traced(&self) -> Vec<Arc<Info>> {
        let mut v: Vec<_> = self.containers.values().flatten().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v.dedup();
        v
    }

    /// Read the state roots again. A container sharing the host's network
    /// namespace is attributed by mount namespace only.
    pub fn scan(&mut self) {
        let host_net = netns_of(std::process::id() as i32);
        let mut fresh = HashMap::new();
        let listed = kiln_runtime::container::list(&self.roots);
        self.inits = listed.iter().map(|c| (c.pid, c.id.clone())).collect();
        for c in listed {
            // A stopped container's pid may belong to another process now:
            // keep what was learned while it ran (its last events may still
            // be on their way), learn nothing new.
            if c.status == kiln_runtime::container::Status::Stopped {
                for (ns, info) in &self.containers {
                    if info.as_ref().is_some_and(|i| i.id == c.id) {
                        fresh.insert(*ns, info.clone());
                    }
                }
                continue;
            }
            let Some(mnt) = mntns_of(c.pid) else { continue };
            let wanted = self.want.as_ref().is_none_or(|w| w.contains(&c.id));
            let info = wanted.then(|| {
                Arc::new(Info {
                    id: c.id.clone(),
                    init_pid: c.pid,
                })
            });
            if let Some(net) = netns_of(c.pid).filter(|n| Some(*n) != host_net) {
                fresh.insert(Namespace::Net(net), info.clone());
            }
            fresh.insert(Namespace::Mnt(mnt), info);
        }
        self.ids.retain(|ns, (id, _)| {
            fresh
                .get(ns)
                .is_some_and(|c| c.as_ref().is_some_and(|c| &c.id == id))
        });
        self.containers = fresh;
        self.scanned = Instant::now();
    }

    /// Scan again if the last scan is older than `age`.
    pub fn refresh(&mut self, age: Duration) {
        if self.scanned.elapsed() >= age {
            self.scan();
        }
    }

    /// The container of namespace `ns`: Some(None) for a container not
    /// traced, None for no container known.
    pub fn lookup(&self, ns: Namespace) -> Option<Option<Arc<Info>>> {
        self.containers.get(&ns).cloned()
    }

    /// The traced container of namespace `ns` whose kernel id is `id`; None
    /// when the id shows another namespace reusing the container's inode.
    pub fn confirm(&mut self, ns: Namespace, id: u64) -> Option<Arc<Info>> {
        let info = self.containers.get(&ns).cloned().flatten()?;
        let (owner, first) = self.ids.entry(ns).or_insert_with(|| (info.id.clone(), id));
        (*owner == info.id && *first == id).then_some(info)
    }

    /// A container whose init is one of `pids`, for events from a
    /// namespace no scan saw alive (a container that ran and exited
    /// between two scans): the namespace is taken as that container's.
    pub fn adopt(&mut self, ns: Namespace, pids: &[u32]) -> Option<Arc<Info>> {
        let (pid, id) = pids.iter().find_map(|p| {
            self.inits
                .get(&(*p as i32))
                .map(|id| (*p as i32, id.clone()))
        })?;
        if self.want.as_ref().is_some_and(|w| !w.contains(&id)) {
            return None;
        }
        let info = Arc::new(Info { id, init_pid: pid });
        self.containers.insert(ns, Some(info.clone()));
        Some(info)
    }

    /// Has the namespace with this id been ruled out?
    pub fn is_unwanted(&self, ns: Namespace, id: u64) -> bool {
        self.unwanted.contains(&(ns.is_net(), id))
    }

    /// Rule out the namespace with this id.
    pub fn mark_unwanted(&mut self, ns: Namespace, id: u64) {
        self.unwanted.insert((ns.is_net(), id));
    }
}

impl Namespace {
    fn is_net(self) -> bool {
        matches!(self, Namespace::Net(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruled_out_ids_are_per_kind() {
        let dir = std::env::temp_dir().join("kiln-trace-no-roots");
        let mut r = Resolver::new(vec![dir], None);
        assert!(r.lookup(Namespace::Mnt(1)).is_none());
        r.mark_unwanted(Namespace::Mnt(1), 77);
        assert!(r.is_unwanted(Namespace::Mnt(5), 77));
        assert!(!r.is_unwanted(Namespace::Net(5), 77));
        assert!(
            !r.is_unwanted(Namespace::Mnt(1), 78),
            "a reused inode is a new namespace"
        );
        assert!(mntns_of(std::process::id() as i32).is_some());
    }
}
