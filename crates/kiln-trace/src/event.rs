//! The kernel's records (`src/bpf/trace.h`, as the skeleton generates
//! them) decoded into events.

use std::mem::size_of;

use serde::Serialize;

use crate::containers::Namespace;
use crate::gadget::Gadget;
use crate::skel::types;

/// One event, attributed to a container.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The gadget that saw it.
    pub gadget: Gadget,
    /// Container id.
    pub container: String,
    /// Process id (host).
    pub pid: u32,
    /// Thread id (host).
    pub tid: u32,
    /// Parent process id (host).
    pub ppid: u32,
    /// User id (host).
    pub uid: u32,
    /// Command name (after an exec, the new program's).
    pub comm: String,
    /// The task's cgroup (v2) id: with the namespace, which part of the
    /// container it ran in. For TCP state changes in softirq context it is
    /// whatever task the kernel interrupted.
    pub cgroup: u64,
    /// Time since boot, nanoseconds.
    pub time_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub detail: Detail,
    /// For `exec-alert`: why this exec raised an alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<crate::alert::Alert>,
}

/// Per-gadget fields.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Detail {
    /// An exec.
    Exec {
        /// The file run, then argv\[1..\].
        args: Vec<String>,
        /// The system call's result (0, or -errno).
        ret: i32,
        /// The error, when it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The process entered the container from outside its process tree
        /// (`runc exec`, `docker exec`, `kubectl exec`).
        entered: bool,
    },
    /// A TCP connect, accept, close or state change.
    Tcp {
        /// connect, accept, close or state.
        event: &'static str,
        /// ipv4 or ipv6.
        family: &'static str,
        /// Local address.
        saddr: String,
        /// Local port.
        sport: u16,
        /// Remote address.
        daddr: String,
        /// Remote port.
        dport: u16,
        /// State before (state changes).
        #[serde(skip_serializing_if = "Option::is_none")]
        oldstate: Option<&'static str>,
        /// State after.
        newstate: &'static str,
    },
    /// An open.
    Open {
        /// The path as given.
        path: String,
        /// Open flags, by name.
        flags: Vec<&'static str>,
        /// The file descriptor, on success.
        #[serde(skip_serializing_if = "Option::is_none")]
        fd: Option<i32>,
        /// The error, on failure.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A record as the kernel sent it.
pub(crate) enum Raw {
    Exec(Box<types::exec_event>),
    Open(Box<types::open_event>),
    Tcp(Box<types::tcp_event>),
    Sys(Box<types::sys_event>),
}

impl Raw {
    pub(crate) fn head(&self) -> &types::head {
        match self {
            Raw::Exec(e) => &e.h,
            Raw::Open(e) => &e.h,
            Raw::Tcp(e) => &e.h,
            Raw::Sys(e) => &e.h,
        }
    }

    /// The namespace that attributes it: the socket's network namespace
    /// for TCP, the task's mount namespace otherwise.
    pub(crate) fn namespace(&self) -> Namespace {
        match self {
            Raw::Tcp(e) => Namespace::Net(e.netns),
            other => Namespace::Mnt(other.head().mntns),
        }
    }
}

/// Decode one ring-buffer record; None for one too short for its kind.
pub(crate) fn decode(data: &[u8]) -> Option<Raw> {
    let kind = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
    match kind {
        1 if data.len() >= size_of::<types::exec_event>() => {
            // SAFETY: length checked; the type is plain old data.
            Some(Raw::Exec(Box::new(unsafe {
                std::ptr::read_unaligned(data.as_ptr().cast())
            })))
        }
        2 if data.len() >= size_of::<types::open_event>() => {
            // SAFETY: as above.
            Some(Raw::Open(Box::new(unsafe {
                std::ptr::read_unaligned(data.as_ptr().cast())
            })))
        }
        4..=6 if data.len() >= size_of::<types::sys_event>() => {
            // SAFETY: as above.
            Some(Raw::Sys(Box::new(unsafe {
                std::ptr::read_unaligned(data.as_ptr().cast())
            })))
        }
        3 if data.len() >= size_of::<types::tcp_event>() => {
            // SAFETY: as above.
            Some(Raw::Tcp(Box::new(unsafe {
                std::ptr::read_unaligned(data.as_ptr().cast())
            })))
        }
        _ => None,
    }
}

/// A NUL-terminated C string from a kernel record.
pub(crate) fn text(bytes: &[i8]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .map(|c| *c as u8)
        .take_while(|c| *c != 0)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

/// The message of a system call's `-errno` result; None for a success.
pub(crate) fn error(ret: i64) -> Option<String> {
    (-4095..0).contains(&ret).then(|| {
        let e = std::io::Error::from_raw_os_error(-ret as i32).to_string();
        e.split(" (os error").next().unwrap_or(&e).to_string()
    })
}

/// The event for `raw`, in `container`; `init_pid` tells the container's
/// own init from a process that entered it. None for traceloop's records,
/// which go to the flight recorder instead.
pub(crate) fn event(raw: &Raw, container: &str, init_pid: i32) -> Option<Event> {
    let h = raw.head();
    let detail = match raw {
        Raw::Sys(_) => return None,
        Raw::Exec(e) => {
            let size = (e.args_size as usize).min(e.args.len());
            let args = e.args[..size]
                .split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(text)
                .collect();
            Detail::Exec {
                args,
                ret: h.ret,
                error: error(h.ret.into()),
                entered: h.parent_mntns != h.mntns && h.pid as i32 != init_pid,
            }
        }
        Raw::Tcp(t) => tcp(t),
        Raw::Open(o) => Detail::Open {
            path: text(&o.path),
            flags: open_flags(o.flags),
            fd: (h.ret >= 0).then_some(h.ret),
            error: error(h.ret.into()),
        },
    };
    Some(Event {
        gadget: match raw {
            Raw::Exec(_) => Gadget::Exec,
            Raw::Open(_) => Gadget::Open,
            Raw::Tcp(_) => Gadget::Tcp,
            Raw::Sys(_) => Gadget::Traceloop,
        },
        container: container.to_string(),
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        comm: text(&h.comm),
        cgroup: h.cgroup,
        time_ns: h.ts_ns,
        detail,
        alert: None,
    })
}

fn tcp(t: &types::tcp_event) -> Detail {
    let v6 = t.family == 10;
    Detail::Tcp {
        event: match t.r#type {
            1 => "connect",
            2 => "accept",
            3 => "close",
            _ => "state",
        },
        family: if v6 { "ipv6" } else { "ipv4" },
        saddr: address(&t.saddr, v6).to_string(),
        sport: t.sport,
        daddr: address(&t.daddr, v6).to_string(),
        dport: t.dport,
        oldstate: (t.r#type != 2).then(|| tcp_state(t.oldstate)),
        newstate: tcp_state(t.newstate),
    }
}

/// An address as the kernel stores it (network order).
pub fn address(raw: &[u8; 16], v6: bool) -> std::net::IpAddr {
    if v6 {
        std::net::IpAddr::from(*raw)
    } else {
        std::net::IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    }
}

/// The kernel's TCP states (`include/net/tcp_states.h`).
pub fn tcp_state(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// `open(2)` flags by name.
pub fn open_flags(flags: i32) -> Vec<&'static str> {
    let mut out = vec![match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }];
    let named = [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
    ];
    for (bit, name) in named {
        if flags & bit == bit {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_by_name() {
        assert_eq!(
            open_flags(libc::O_RDONLY | libc::O_CLOEXEC),
            ["O_RDONLY", "O_CLOEXEC"]
        );
        assert_eq!(
            open_flags(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC),
            ["O_WRONLY", "O_CREAT", "O_TRUNC"]
        );
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[1, 0, 0, 0, 0]).is_none());
        assert!(decode(&[9; 4096]).is_none());
    }

    #[test]
    fn errors_read_as_messages() {
        assert_eq!(error(-2).as_deref(), Some("No such file or directory"));
        assert_eq!(error(3), None);
    }
}
