//! Running image root filesystems without a container engine.
//!
//! `kiln-runtime` is what kiln's runtime features (`slim` today; `debug`
//! and `trace` next) share:
//!
//! - [`rootfs`]: a squashed image tree unpacked onto the host, and paths
//!   resolved inside a root as a chroot would (symlinks never leave it);
//! - [`tmpfs`]: a private tmpfs to unpack onto, unmounted on drop;
//! - [`runc`]: OCI bundles (private PID, IPC, UTS, mount and network
//!   namespaces; loopback only) run with `runc`, one container per run,
//!   always deleted afterwards, with timeouts and Ctrl-C handling; and
//!   detached servers reached through their network namespace;
//! - [`fanotify`]: every open and exec on a tmpfs root, from any mount
//!   namespace;
//! - [`seccomp`]: what fanotify cannot see (`stat`, `access`, `readlink`,
//!   failed opens), through runc's seccomp user-notification listener.
//!
//! Everything here needs Linux; mounting, fanotify and runc need root
//! ([`runc::is_root`]).
#![deny(missing_docs)]

pub mod attach;
pub mod container;
pub mod copy;
mod error;
mod exec;
pub mod fanotify;
pub mod forward;
pub mod metrics;
mod pty;
mod reap;
pub mod rootfs;
pub mod runc;
pub mod seccomp;
mod sys;
pub mod tmpfs;
pub mod toolbox;

pub use error::{Result, RuntimeError};
