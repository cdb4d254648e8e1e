//! One node of the squashed tree.

use std::path::PathBuf;
use std::sync::Arc;

/// What kind of file a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file (hard links resolve to this too).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

/// Where a file's bytes can be read again later.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Nothing to read (directories, links, devices).
    None,
    /// The `ordinal`-th member of layer `layer`'s tar stream.
    Layer { layer: usize, ordinal: u64 },
    /// A host file, for `dir:` sources.
    Disk(PathBuf),
}

/// A file in the squashed tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// File kind.
    pub kind: Kind,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size in bytes (regular files).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// The layer that last wrote this path; `None` for `dir:` sources.
    pub layer: Option<usize>,
    /// Symlink target, exactly as stored.
    pub link_target: Option<String>,
    /// For a hard link, the path it was linked to in its layer.
    pub hardlink_to: Option<String>,
    /// The content's digest ([`crate::content_digest`]), when the tree
    /// was built with hashing on.
    pub digest: Option<crate::ContentDigest>,
    /// Content kept in memory because the build asked to capture it.
    pub data: Option<Arc<[u8]>>,
    /// What the build's inspector learned from the content.
    pub facts: Option<crate::Facts>,
    pub(crate) content: Content,
}

impl Entry {
    /// The inspector's facts, if they are of type `T`.
    pub fn facts<T: 'static>(&self) -> Option<&T> {
        self.facts.as_ref().and_then(|f| f.downcast_ref::<T>())
    }

    pub(crate) fn dir(layer: Option<usize>) -> Self {
        Entry::new(Kind::Dir, 0o755, layer)
    }

    /// A bare entry of `kind`; callers fill in what they know.
    pub(crate) fn new(kind: Kind, mode: u32, layer: Option<usize>) -> Self {
        Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            layer,
            link_target: None,
            hardlink_to: None,
            digest: None,
            data: None,
            facts: None,
            content: Content::None,
        }
    }

    /// Is this a regular file?
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    /// Is this a directory?
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// Is this a symbolic link?
    pub fn is_symlink(&self) -> bool {
        self.kind == Kind::Symlink
    }

    /// The content digest as lower-case hex, if computed.
    pub fn digest_hex(&self) -> Option<String> {
        self.digest.map(hex::encode)
    }
}
