//! Container image sources for kiln.
//!
//! This crate is the first stage of kiln's pipeline: it turns a source
//! string such as `oci-archive:image.tar` into an [`Image`] whose layers can
//! be streamed as uncompressed tar, verified against their digests while
//! they stream, and bounded against decompression bombs. It never unpacks
//! an image to disk: archive members are reached by seeking, and each layer
//! stream opens its own file handle so layers can be read in parallel.
//!
//! The next stage, `kiln-tree`, squashes the layer streams into one file
//! tree.
//!
//! Supported transports follow skopeo and Syft: `oci-dir:`, `oci-archive:`,
//! `docker-archive:` (legacy and OCI-in-docker-save forms) and `dir:`.
//! Images are read through a [`BlobStore`] (a layout directory, an
//! archive), so every opener and error works the same whatever holds the
//! blobs; errors name the store's location.
//!
//! ```
//! use kiln_image::{SourceRef, Platform};
//! let r = SourceRef::parse("oci-archive:/images/app.tar:v1").unwrap();
//! assert_eq!(r.transport(), "oci-archive");
//! assert_eq!(Platform::parse("linux/arm64/v8").unwrap().to_string(), "linux/arm64/v8");
//! ```
#![deny(missing_docs)]

pub mod archive;
mod blobs;
mod compression;
mod digest;
mod docker;
mod error;
mod image;
#[cfg(feature = "isal")]
mod isal;
mod oci;
mod platform;
mod reference;
pub mod registry;
pub mod sched;
pub mod spec;
pub mod write;

pub use blobs::{ArchiveStore, BlobStore, DirStore, METADATA_LIMIT};
pub use compression::{Compression, LayerReader, Limits};
pub use digest::{Digest, Prefetch, PrefetchVerifier, VerifyingReader};
pub use error::{ImageError, Result};
pub use image::{Image, Layer, OpenOptions, Source};
pub use platform::Platform;
pub use reference::SourceRef;
