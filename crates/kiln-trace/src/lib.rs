//! eBPF gadgets for runc containers, on the kernel's stable tracepoints
//! only (no kprobes, which this kernel refuses and other kernels rename).
//!
//! - [`gadget`]: what can be traced (a closed set);
//! - [`containers`]: mount namespaces mapped to the containers of runc's
//!   state roots, found again when a new namespace shows up, so a container
//!   started while tracing is covered from its entrypoint's first exec;
//! - [`event`]: the kernel's records decoded;
//! - [`session`]: loading, attaching, polling, and the counts of events
//!   and of events lost (never silently).
#![deny(missing_docs)]

pub mod alert;
pub mod containers;
mod error;
pub mod event;
pub mod gadget;
pub mod metrics;
pub mod rtt;
pub mod session;
mod tracefs;
pub mod traceloop;

pub use error::{Result, TraceError};

mod skel {
    #![allow(clippy::all, clippy::pedantic, missing_docs, unused)]
    include!(concat!(env!("OUT_DIR"), "/trace.skel.rs"));
}
