//! traceloop: a flight recorder of each container's system calls. Every
//! call entered and returned in a traced container goes into that
//! container's ring of the last N calls (older calls are overwritten); the
//! ring is dumped on demand (SIGUSR1) or when the container's init exits
//! with a non-zero status.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::event::{error, text};
use crate::skel::types;

include!(concat!(env!("OUT_DIR"), "/syscalls.rs"));

/// Set (by a SIGUSR1 handler) to dump every container's ring.
pub static DUMP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_dump(_: libc::c_int) {
    DUMP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Dump every ring when SIGUSR1 arrives (`kill -USR1 PID`).
pub fn dump_on_sigusr1() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            request_dump as *const () as libc::sighandler_t,
        );
    }
}

/// A system call's name (x86-64), or `syscall_N`.
pub fn syscall_name(nr: i64) -> String {
    match SYSCALLS.binary_search_by_key(&nr, |(n, _)| *n) {
        Ok(i) => SYSCALLS[i].1.to_string(),
        Err(_) => format!("syscall_{nr}"),
    }
}

/// One recorded call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Call {
    /// Process id (host).
    pub pid: u32,
    /// Thread id (host).
    pub tid: u32,
    /// Command name.
    pub comm: String,
    /// The call's name.
    pub syscall: String,
    /// Arguments: a path read from the caller for calls that take one
    /// (quoted), others as numbers.
    pub args: Vec<String>,
    /// Return value; absent while the call has not returned (or never
    /// does, as `exit_group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// The error, for a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time since boot, nanoseconds.
    pub time_ns: u64,
    #[serde(skip)]
    nr: i64,
}

/// A dump of one container's ring.
#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    /// Container id.
    pub container: String,
    /// Why it was dumped.
    pub reason: String,
    /// The calls, oldest first.
    pub calls: Vec<Call>,
}

/// The rings of every container.
pub struct Recorder {
    capacity: usize,
    rings: HashMap<String, VecDeque<Call>>,
}

/// A raw argument: small numbers and negative ones (64- or 32-bit, as
/// `AT_FDCWD` often arrives) in decimal, anything else (pointers) in hex.
fn arg(v: u64) -> String {
    let (s64, s32) = (v as i64, v as u32 as i32);
    if v < 1 << 20 || (-4096..0).contains(&s64) {
        s64.to_string()
    } else if v >> 32 == 0 && (-4096..0).contains(&s32) {
        s32.to_string()
    } else {
        format!("{v:#x}")
    }
}

impl Recorder {
    /// Rings of the last `capacity` calls.
    pub fn new(capacity: usize) -> Recorder {
        Recorder {
            capacity: capacity.max(1),
            rings: HashMap::new(),
        }
    }

    /// Record an entry or a return in `container`'s ring.
    pub(crate) fn record(&mut self, container: &str, e: &types::sys_event) {
        let ring = self.rings.entry(container.to_string()).or_default();
        let h = &e.h;
        if h.kind == 5 {
            // The return of this thread's most recent call.
            if let Some(c) = ring
                .iter_mut()
                .rev()
                .find(|c| c.tid == h.tid && c.ret.is_none())
            {
                if c.nr == e.nr {
                    c.ret = Some(e.ret);
                    c.error = error(e.ret);
                }
            }
            return;
        }
        let mut args: Vec<String> = e.args.iter().map(|a| arg(*a)).collect();
        if let Some(slot) = (e.path_arg as usize)
            .checked_sub(1)
            .and_then(|i| args.get_mut(i))
        {
            *slot = format!("{:?}", text(&e.path));
        }
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(Call {
            pid: h.pid,
            tid: h.tid,
            comm: text(&h.comm),
            syscall: syscall_name(e.nr),
            args,
            ret: None,
            error: None,
            time_ns: h.ts_ns,
            nr: e.nr,
        });
    }

    /// `container`'s ring, oldest first.
    pub fn dump(&self, container: &str, reason: &str) -> Dump {
        Dump {
            container: container.to_string(),
            reason: reason.to_string(),
            calls: self
                .rings
                .get(container)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Every container with a ring.
    pub fn containers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rings.keys().cloned().collect();
        v.sort();
        v
    }
}

/// A wait status as a reason: "exited with status N" or "killed by
/// signal N"; None for a clean exit.
pub fn failure(code: i32) -> Option<String> {
    let sig = code & 0x7f;
    let status = (code >> 8) & 0xff;
    match (sig, status) {
        (0, 0) => None,
        (0, s) => Some(format!("init exited with status {s}")),
        (s, _) => Some(format!("init was killed by signal {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses() {
        assert_eq!(syscall_name(0), "read");
        assert_eq!(syscall_name(257), "openat");
        assert_eq!(syscall_name(100_000), "syscall_100000");
        assert_eq!(failure(0), None);
        assert_eq!(
            failure(3 << 8).as_deref(),
            Some("init exited with status 3")
        );
        assert_eq!(failure(9).as_deref(), Some("init was killed by signal 9"));
        assert_eq!(error(-2).as_deref(), Some("No such file or directory"));
        assert_eq!(arg((-2i64) as u64), "-2");
        assert_eq!(arg(0x7ffd_0000_1000), "0x7ffd00001000");
        assert_eq!(arg(0xffff_ff9c), "-100");
    }
}
