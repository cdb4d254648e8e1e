//! Opening an image from an OCI layout (directory or tar) or a
//! `docker save` archive, selecting a manifest by reference and platform,
//! and streaming its layers with verification.

use std::path::PathBuf;
use std::sync::Arc;

use crate::blobs::{ArchiveStore, BlobStore, DirStore};
use crate::compression::{Compression, LayerReader, Limits};
use crate::digest::{Digest, PrefetchVerifier, VerifyingReader};
use crate::error::{ImageError, Result};
use crate::platform::Platform;
use crate::reference::SourceRef;
use crate::spec::*;

/// How to open a source.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Platform to pick from an index; the host's when `None`. When set
    /// explicitly it is also checked against a single-platform image.
    pub platform: Option<Platform>,
    /// Decompression limits.
    pub limits: Limits,
    /// How to reach registries (`registry:` sources).
    pub registry: crate::registry::RegistryOptions,
}

/// An opened source: an image, or a plain root filesystem directory.
#[derive(Debug)]
pub enum Source {
    /// A container image with layers.
    Image(Box<Image>),
    /// An unpacked root filesystem (`dir:`).
    Dir(PathBuf),
}

impl Source {
    /// Open what `reference` names.
    pub fn open(reference: &SourceRef, opts: &OpenOptions) -> Result<Self> {
        match reference {
            SourceRef::Dir { path } => {
                let meta = std::fs::metadata(path).map_err(|e| ImageError::io(path, e))?;
                if !meta.is_dir() {
                    return Err(ImageError::Malformed {
                        location: path.display().to_string(),
                        reason: "dir: source is not a directory".into(),
                    });
                }
                Ok(Source::Dir(path.clone()))
            }
            _ => Image::open(reference, opts).map(|i| Source::Image(Box::new(i))),
        }
    }
}

/// What the layer's bytes are checked against.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// The blob as stored hashes to this (OCI).
    Blob(Digest),
    /// The uncompressed tar hashes to this (legacy docker-archive).
    DiffId(Digest),
}

/// One layer of an image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Position, 0 = bottom.
    pub index: usize,
    /// The blob digest (for legacy docker archives, the diff ID).
    pub digest: Digest,
    /// The uncompressed digest from the config, when known.
    pub diff_id: Option<Digest>,
    /// Media type as declared (empty for legacy docker archives).
    pub media_type: String,
    /// Stored size in bytes, when the descriptor gives it.
    pub size: Option<u64>,
    pub(crate) compression: Option<Compression>,
    pub(crate) name: String,
    pub(crate) check: Check,
}

/// An opened image.
#[derive(Debug, Clone)]
pub struct Image {
    /// How it was named.
    pub source: SourceRef,
    /// A display name: the ref name or tag when there is one, else the file name.
    pub name: String,
    /// Digest of the manifest, when the image has an OCI manifest.
    pub manifest_digest: Option<Digest>,
    /// Digest of the config blob (the image ID).
    pub config_digest: Digest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config bytes as stored, for writers that preserve them.
    pub raw_config: Vec<u8>,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) limits: Limits,
}

impl Image {
    /// Open an OCI layout, OCI archive or docker archive.
    pub fn open(reference: &SourceRef, opts: &OpenOptions) -> Result<Self> {
        match reference {
            SourceRef::OciDir { path, reference: r } => {
                let store = DirStore::new(path);
                if !path.join("oci-layout").is_file() {
                    return Err(malformed(
                        &store,
                        "not an OCI image layout (no oci-layout file)",
                    ));
                }
                crate::oci::open(reference.clone(), Arc::new(store), r.as_deref(), opts)
            }
            SourceRef::OciArchive { path, reference: r } => {
                let store = ArchiveStore::open(path)?;
                if !store.contains("oci-layout") || !store.contains("index.json") {
                    return Err(malformed(
                        &store,
                        "not an OCI archive (no oci-layout and index.json members)",
                    ));
                }
                crate::oci::open(reference.clone(), Arc::new(store), r.as_deref(), opts)
            }
            SourceRef::DockerArchive { path, reference: r } => {
                let store = Arc::new(ArchiveStore::open(path)?);
                crate::docker::open(reference.clone(), store, r.as_deref(), opts)
            }
            SourceRef::Registry(r) => crate::registry::open(reference.clone(), r, opts),
            SourceRef::Dir { path } => Err(ImageError::Malformed {
                location: path.display().to_string(),
                reason: "a dir: source is a root filesystem, not an image".into(),
            }),
        }
    }

    /// Open an image from any [`BlobStore`] (an embedding's own storage,
    /// an in-memory store for fuzzing): an OCI layout when the store has
    /// `index.json`, else a `docker save` archive's members.
    pub fn from_store(
        source: SourceRef,
        store: Arc<dyn BlobStore>,
        reference: Option<&str>,
        opts: &OpenOptions,
    ) -> Result<Self> {
        if store.contains("index.json") {
            crate::oci::open(source, store, reference, opts)
        } else {
            crate::docker::open(source, store, reference, opts)
        }
    }

    /// Where the image is read from, as errors name it.
    pub fn location(&self) -> &str {
        self.store.location()
    }

    /// Stream layer `i` as an uncompressed tar. The stream is verified as it
    /// is read; call [`LayerReader::finish`] after the tar ends so the
    /// digest check sees every byte.
    pub fn open_layer(&self, i: usize) -> Result<LayerReader> {
        let store = self.store.as_ref();
        let layer = self
            .layers
            .get(i)
            .ok_or_else(|| malformed(store, &format!("no layer {i}")))?;
        let raw = store
            .open(&layer.name)
            .ok_or_else(|| ImageError::MissingBlob {
                digest: layer.digest.to_string(),
                location: store.location().to_string(),
            })??;
        let io_err = |e| ImageError::at(store.location(), e);
        match &layer.check {
            Check::Blob(d) => {
                let raw = PrefetchVerifier::spawn(raw, d.clone(), layer.size);
                LayerReader::buffered(raw, d.to_string(), layer.compression, self.limits)
                    .map_err(io_err)
            }
            Check::DiffId(d) => {
                let inner = LayerReader::new(raw, d.to_string(), layer.compression, self.limits)
                    .map_err(io_err)?;
                let verified = VerifyingReader::new(inner, d.clone(), None);
                LayerReader::new(
                    verified,
                    d.to_string(),
                    Some(Compression::None),
                    self.limits,
                )
                .map_err(io_err)
            }
        }
    }
}

/// A malformed-source error at the store.
pub(crate) fn malformed(store: &dyn BlobStore, reason: &str) -> ImageError {
    ImageError::Malformed {
        location: store.location().to_string(),
        reason: reason.to_string(),
    }
}

/// Read a small member that must exist, or fail with `missing`.
pub(crate) fn read_required(store: &dyn BlobStore, name: &str, missing: &str) -> Result<Vec<u8>> {
    store
        .read_small(name)
        .ok_or_else(|| malformed(store, missing))?
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| ImageError::Json {
        what: what.to_string(),
        err,
    })
}

/// Parse a document the specs define as a JSON object (index, manifest,
/// config). serde would also fill a struct from an array, field by field,
/// which no other reader accepts.
pub(crate) fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ImageError::Malformed {
            location: what.to_string(),
            reason: "not a JSON object".into(),
        });
    }
    parse_json(bytes, what)
}

/// Read a blob by digest, checking size and digest.
pub(crate) fn read_blob(
    store: &dyn BlobStore,
    desc_digest: &str,
    size: Option<u64>,
) -> Result<(Digest, Vec<u8>)> {
    let digest = Digest::parse(desc_digest)?;
    let name = format!("blobs/sha256/{}", digest.hex());
    let bytes = store
        .read_small(&name)
        .ok_or_else(|| ImageError::MissingBlob {
            digest: digest.to_string(),
            location: store.location().to_string(),
        })??;
    if let Some(size) = size {
        if size != bytes.len() as u64 {
            return Err(ImageError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
    }
    digest.verify(&bytes)?;
    Ok((digest, bytes))
}

/// An explicitly asked platform must be the image's, even for a
/// single-platform image.
pub(crate) fn check_explicit_platform(
    config: &ImageConfig,
    opts: &OpenOptions,
    store: &dyn BlobStore,
) -> Result<()> {
    if let Some(want) = &opts.platform {
        if !config.os.is_empty()
            && !want.matches(&config.os, &config.architecture, config.variant.as_deref())
        {
            let have = match &config.variant {
                Some(v) => format!("{}/{}/{}", config.os, config.architecture, v),
                None => format!("{}/{}", config.os, config.architecture),
            };
            return Err(ImageError::NoMatchingPlatform {
                location: store.location().to_string(),
                wanted: want.to_string(),
                available: have,
            });
        }
    }
    Ok(())
}

/// The name of an image nothing names: the last part of where it is.
pub(crate) fn display_name(store: &dyn BlobStore) -> String {
    let location = store.location();
    std::path::Path::new(location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| location.to_string())
}
