//! The gadgets and the BPF programs each one needs.

use serde::Serialize;

/// A gadget: one kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gadget {
    /// Every `execve`/`execveat` in a container, with argv and result.
    Exec,
    /// Every `open`/`openat`/`openat2` in a container, with path, flags and
    /// result.
    Open,
    /// Alerts: a process entering a container from outside its process
    /// tree, and execs that break a rule file's rules.
    #[serde(rename = "exec-alert")]
    ExecAlert,
    /// TCP connects, accepts, closes and state changes, IPv4 and IPv6.
    Tcp,
    /// A log2 histogram of smoothed TCP round-trip times per container.
    Tcprtt,
    /// A flight recorder of each container's system calls.
    Traceloop,
}

impl Gadget {
    /// Every gadget.
    pub const ALL: &'static [Gadget] = &[
        Gadget::Exec,
        Gadget::Open,
        Gadget::ExecAlert,
        Gadget::Tcp,
        Gadget::Tcprtt,
        Gadget::Traceloop,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Gadget::Exec => "exec",
            Gadget::Open => "open",
            Gadget::ExecAlert => "exec-alert",
            Gadget::Tcp => "tcp",
            Gadget::Tcprtt => "tcprtt",
            Gadget::Traceloop => "traceloop",
        }
    }

    /// The BPF programs (skeleton names) it attaches.
    pub(crate) fn programs(self) -> &'static [&'static str] {
        match self {
            Gadget::Exec | Gadget::ExecAlert => &[
                "enter_execve",
                "enter_execveat",
                "exit_execve",
                "exit_execveat",
            ],
            Gadget::Tcp => &["on_tcp_state", "exit_accept4", "exit_accept"],
            Gadget::Tcprtt => &["on_tcp_probe"],
            Gadget::Traceloop => &["loop_enter", "loop_exit", "loop_proc_exit"],
            Gadget::Open => &[
                "enter_open",
                "enter_openat",
                "enter_openat2",
                "exit_open",
                "exit_openat",
                "exit_openat2",
            ],
        }
    }

    /// Its slot in the kernel's lost-event counters (`enum lost_slot`).
    pub(crate) fn lost_slot(self) -> u32 {
        match self {
            Gadget::Exec | Gadget::ExecAlert => 0,
            Gadget::Open => 1,
            Gadget::Tcp => 2,
            Gadget::Tcprtt => 3,
            Gadget::Traceloop => 4,
        }
    }
}

impl std::fmt::Display for Gadget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Gadget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Gadget::ALL
            .iter()
            .copied()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Gadget::ALL.iter().map(|g| g.name()).collect();
                format!("unknown gadget '{s}' (gadgets: {})", names.join(", "))
            })
    }
}
