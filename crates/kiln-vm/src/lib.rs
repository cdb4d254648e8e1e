//! MicroVM storage for live migration (the `kiln migrate` issue), built
//! the way Loophole Labs' Silo moves disks that are in use:
//!
//! - [`disk::Disk`]: a VM's root disk as a file, with a per-block dirty
//!   bitmap. Every guest write marks the blocks it touches, so pre-copy
//!   rounds send only what changed since the last round, and every block
//!   can be hashed to verify a copy.
//! - [`nbd`]: an NBD server (fixed newstyle, simple replies) that serves a
//!   [`disk::Disk`] to QEMU's built-in NBD client over a unix socket.
//!   There is no kernel NBD, ublk or device-mapper on these hosts, so the
//!   disk layer has to be a userspace server of kiln's own.
//! - [`sync`]: moving a disk in use between hosts: pre-copy rounds,
//!   switchover, and stop-and-copy or post-copy with blocks fetched on
//!   demand, each block verified by its SHA-256.
//! - [`qmp`] and [`ram`]: QEMU's monitor protocol, and its RAM migration
//!   driven through it (pre-copy, pause before switchover, post-copy).

pub mod announce;
mod cpio;
pub mod disk;
pub mod error;
pub mod guest;
pub mod host;
pub mod machine;
pub mod metrics;
pub mod nbd;
pub mod qmp;
pub mod ram;
pub mod rootdisk;
pub mod sync;

pub use disk::Disk;
pub use error::{Result, VmError};
