//! The squashed file tree of a container image.
//!
//! `kiln-tree` is the second stage of kiln's pipeline. It takes the layer
//! streams that `kiln-image` opens and applies them bottom-up with OCI
//! semantics — whiteouts (`.wh.NAME`), opaque directories
//! (`.wh..wh..opq`), hard links and symlinks — into one [`Tree`] of what a
//! container would see. Each path keeps its metadata and the layer that last
//! wrote it. Layers stream in parallel and nothing is extracted to disk:
//! content that callers will need (catalogers' metadata files) is captured
//! in memory on the way past, file hashes are computed on the way past, and
//! anything else can be read back later from its layer with
//! [`Tree::read`].
//!
//! Symlink resolution behaves as inside a chroot: absolute targets start
//! at the image root and `..` stops there, so a hostile link cannot reach
//! the host.
//!
//! ```no_run
//! use kiln_image::{OpenOptions, Source, SourceRef};
//! use kiln_tree::{BuildOptions, Tree};
//!
//! let source = Source::open(&SourceRef::parse("oci-archive:image.tar")?, &OpenOptions::default())?;
//! let opts = BuildOptions { hash: true, ..Default::default() };
//! let tree = Tree::build(source, &opts)?;
//! let os_release = tree.read("etc/os-release", 1 << 20)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod build;
mod digest;
mod dir;
mod entry;
mod error;
mod export;
mod layer;
mod member;
pub mod path;
mod pool;
mod tree;

pub use build::{
    BuildOptions, CaptureFn, Facts, FileDoneFn, InspectFn, InspectIfFn, LinkFn, ProgressFn,
};
pub use digest::{content_digest, content_digest_reader, ContentDigest};
pub use entry::{Entry, Kind};
pub use error::{Result, TreeError};
pub use export::Export;
pub use member::{member_path, sparse_size, MAX_SPARSE_SIZE};
pub use tree::{LayerInfo, Tree, Warning};
