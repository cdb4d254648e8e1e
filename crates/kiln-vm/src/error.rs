//! Errors name the disk or the peer and what went wrong.

use std::path::PathBuf;

/// What can go wrong serving or copying a VM disk.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The disk file could not be opened, read or written.
    #[error("disk {path}: {source}")]
    Disk {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A block size that is zero or not a power of two.
    #[error("block size {0} is not a power of two of at least 512 bytes")]
    BlockSize(u64),
    /// A received block whose SHA-256 is not the one the sender announced.
    #[error("disk {path}: block {block} arrived corrupted (its SHA-256 does not match)")]
    BlockDigest { path: PathBuf, block: u64 },
    /// A block index past the end of the disk.
    #[error("disk {path}: block {block} is past the end ({blocks} blocks)")]
    BlockRange {
        path: PathBuf,
        block: u64,
        blocks: u64,
    },
    /// An NBD peer broke the protocol.
    #[error("NBD client {peer}: {reason}")]
    Protocol { peer: String, reason: String },
    /// The guest's kernel or initramfs could not be made.
    #[error("guest: {0}")]
    Guest(String),
    /// QEMU's monitor refused a command, or could not be reached.
    #[error("QEMU monitor {socket}: {reason}")]
    Qmp { socket: PathBuf, reason: String },
    /// A migration QEMU reported as failed, with its reason.
    #[error("migration failed: {0}")]
    Migration(String),
    /// An image could not be made into a root disk.
    #[error("root disk {path}: {reason}")]
    RootDisk { path: PathBuf, reason: String },
    /// A host agent could not be reached, or the connection failed.
    #[error("host agent {host}: {reason}")]
    Agent { host: String, reason: String },
    /// A host agent answered, refusing the request.
    #[error("host agent {host}: {reason}")]
    Refused { host: String, reason: String },
    /// The connection to an NBD peer failed.
    #[error("NBD client {peer}: {source}")]
    Io {
        peer: String,
        source: std::io::Error,
    },
}

impl VmError {
    /// An I/O failure on the disk file at `path`.
    pub(crate) fn disk(path: &std::path::Path, source: std::io::Error) -> VmError {
        VmError::Disk {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failure making the root disk at `path`.
    pub(crate) fn root_disk(path: &std::path::Path, reason: impl ToString) -> VmError {
        VmError::RootDisk {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A failure talking to the agent at `host`.
    pub fn agent(host: impl ToString, reason: impl ToString) -> VmError {
        VmError::Agent {
            host: host.to_string(),
            reason: reason.to_string(),
        }
    }

    /// An agent's refusal, as it gave it.
    pub fn refused(host: impl ToString, reason: impl ToString) -> VmError {
        VmError::Refused {
            host: host.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A QMP failure on `socket`.
    pub(crate) fn qmp(socket: &std::path::Path, reason: impl Into<String>) -> VmError {
        VmError::Qmp {
            socket: socket.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, VmError>;
