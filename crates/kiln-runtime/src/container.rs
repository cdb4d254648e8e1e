//! Containers that any runc-based runtime started, found in runc's state
//! roots (Docker, containerd and Kubernetes nodes all run runc
//! underneath), and processes named by pid.
//!
//! The state is read from `state.json` directly rather than through
//! `runc state`, so listing needs no runc binary of the same version as
//! the runtime's and costs no process per container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// Where runc keeps state for runc itself, Docker, and containerd's
/// Kubernetes and default namespaces.
pub const DEFAULT_ROOTS: &[&str] = &[
    "/run/runc",
    "/run/docker/runtime-runc/moby",
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc/default",
];

/// Annotations that name the image a container runs, most specific first.
const IMAGE_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.image-name",
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
    "org.opencontainers.image.base.name",
];

/// A container's state as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created; the entrypoint has not started.
    Created,
    /// Running.
    Running,
    /// Frozen by `runc pause`.
    Paused,
    /// Its init process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// One container.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Container id.
    pub id: String,
    /// Host pid of its init process.
    pub pid: i32,
    /// Status.
    pub status: Status,
    /// Bundle directory.
    pub bundle: Option<String>,
    /// Image, from the annotations runtimes set.
    pub image: Option<String>,
    /// Root filesystem on the host.
    pub rootfs: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// The state root it was found under.
    pub root: PathBuf,
}

#[derive(Deserialize)]
struct State {
    id: String,
    init_process_pid: i32,
    init_process_start: u64,
    #[serde(default)]
    created: String,
    config: StateConfig,
    #[serde(default)]
    cgroup_paths: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct StateConfig {
    #[serde(default)]
    rootfs: PathBuf,
    #[serde(default)]
    labels: Vec<String>,
}

/// The state roots to search: the one given, or the defaults.
pub fn roots(given: Option<&Path>) -> Vec<PathBuf> {
    match given {
        Some(r) => vec![r.to_path_buf()],
        None => DEFAULT_ROOTS.iter().map(PathBuf::from).collect(),
    }
}

/// Every container under `roots`, sorted by root and id. A root that does
/// not exist holds none; an unreadable state file is skipped.
pub fn list(roots: &[PathBuf]) -> Vec<Container> {
    let mut out = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut found: Vec<Container> = entries
            .flatten()
            .filter_map(|e| load(root, &e.path()).ok())
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        out.extend(found);
    }
    out
}

/// The container `id`, from the first root that has it.
pub fn find(roots: &[PathBuf], id: &str) -> Result<Container> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(unknown(roots, id));
    }
    for root in roots {
        let dir = root.join(id);
        if dir.join("state.json").exists() {
            return load(root, &dir);
        }
    }
    Err(unknown(roots, id))
}

fn unknown(roots: &[PathBuf], id: &str) -> RuntimeError {
    RuntimeError::UnknownContainer {
        id: id.to_string(),
        roots: roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn load(root: &Path, dir: &Path) -> Result<Container> {
    let path = dir.join("state.json");
    let text = std::fs::read(&path).map_err(|err| RuntimeError::Io {
        path: path.clone(),
        err,
    })?;
    let s: State = serde_json::from_slice(&text).map_err(|e| RuntimeError::Io {
        path: path.clone(),
        err: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let labels: BTreeMap<&str, &str> = s
        .config
        .labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .collect();
    let image = IMAGE_ANNOTATIONS
        .iter()
        .find_map(|k| labels.get(k).map(|v| v.to_string()));
    Ok(Container {
        status: status(&s, dir),
        bundle: labels.get("bundle").map(|b| b.to_string()),
        image,
        pid: s.init_process_pid,
        rootfs: s.config.rootfs,
        created: s.created,
        root: root.to_path_buf(),
        id: s.id,
    })
}

/// runc's rule: the init process gone (or a new process with its pid) is
/// stopped; a frozen cgroup is paused; an exec FIFO still waiting is
/// created.
fn status(s: &State, dir: &Path) -> Status {
    if s.init_process_pid <= 0 || start_time(s.init_process_pid) != Some(s.init_process_start) {
        return Status::Stopped;
    }
    if frozen(&s.cgroup_paths) {
        return Status::Paused;
    }
    if dir.join("exec.fifo").exists() {
        return Status::Created;
    }
    Status::Running
}

fn frozen(cgroups: &BTreeMap<String, String>) -> bool {
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    if let Some(v1) = cgroups.get("freezer") {
        if read(Path::new(v1).join("freezer.state")).trim() == "FROZEN" {
            return true;
        }
    }
    cgroups
        .get("")
        .is_some_and(|v2| read(Path::new(v2).join("cgroup.freeze")).trim() == "1")
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`
/// field 22), which tells a process from a later one with the same pid.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_field(pid, 22)
}

/// Field `n` (1-based, as `proc(5)` numbers them; `n` ≥ 3) of
/// `/proc/PID/stat`, read after the command name, which may hold spaces
/// and parentheses.
pub(crate) fn stat_field<T: std::str::FromStr>(pid: i32, n: usize) -> Option<T> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// What `kiln debug`, `cp` and `port-forward` act on.
#[derive(Debug, Clone)]
pub enum Target {
    /// A runc container.
    Container(Container),
    /// Any process.
    Pid(i32),
}

impl Target {
    /// `pid:N` or a container id under `roots`; the container must be
    /// running (or created) and the process must exist.
    pub fn resolve(spec: &str, roots: &[PathBuf]) -> Result<Target> {
        if let Some(n) = spec.strip_prefix("pid:") {
            let pid: i32 = n
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| RuntimeError::NoProcess(n.to_string()))?;
            if start_time(pid).is_none() {
                return Err(RuntimeError::NoProcess(n.to_string()));
            }
            return Ok(Target::Pid(pid));
        }
        let c = find(roots, spec)?;
        match c.status {
            Status::Running | Status::Created => Ok(Target::Container(c)),
            status => Err(RuntimeError::NotRunning { id: c.id, status }),
        }
    }

    /// The process whose namespaces and root are the target's.
    pub fn pid(&self) -> i32 {
        match self {
            Target::Container(c) => c.pid,
            Target::Pid(p) => *p,
        }
    }

    /// How to name it in messages.
    pub fn name(&self) -> String {
        match self {
            Target::Container(c) => format!("container {}", c.id),
            Target::Pid(p) => format!("process {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_start_time() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert!(start_time(i32::MAX).is_none());
    }

    #[test]
    fn unknown_ids_name_the_roots_searched() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().to_path_buf()];
        for id in ["nope", "../etc", "", ".."] {
            let e = find(&roots, id).unwrap_err().to_string();
            assert!(e.contains(&dir.path().display().to_string()), "{e}");
        }
    }

    #[test]
    fn bad_pids_are_refused() {
        for spec in ["pid:0", "pid:-3", "pid:x", "pid:2147483647"] {
            let e = Target::resolve(spec, &[]).unwrap_err();
            assert!(matches!(e, RuntimeError::NoProcess(_)), "{spec}: {e}");
        }
    }
}
