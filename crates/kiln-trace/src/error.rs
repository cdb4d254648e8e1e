//! Errors of `kiln-trace`, each naming the gadget or file at fault.

/// Errors while setting up or running a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Loading BPF programs needs root (CAP_BPF and CAP_PERFMON).
    #[error("kiln trace needs root to load eBPF programs; run it with sudo")]
    NotRoot,
    /// The kernel has no BTF, which CO-RE relocation needs.
    #[error("no kernel BTF at {0}: this kernel was built without CONFIG_DEBUG_INFO_BTF, which kiln trace needs")]
    NoBtf(String),
    /// tracefs is not mounted and could not be.
    #[error("cannot mount tracefs at {path} (the syscall tracepoints are found there): {err}")]
    Tracefs {
        /// Where.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// The kernel refused to load or attach a program.
    #[error("gadget {gadget}: the kernel refused {what}: {err}")]
    Kernel {
        /// The gadget.
        gadget: String,
        /// Which step or program.
        what: String,
        /// libbpf's error.
        err: libbpf_rs::Error,
    },
    /// A rule file that cannot be used.
    #[error("{path}: {why}")]
    Rules {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A container named with --container is not under the state roots.
    #[error(transparent)]
    Runtime(#[from] kiln_runtime::RuntimeError),
}

/// Result alias.
pub type Result<T, E = TraceError> = std::result::Result<T, E>;
