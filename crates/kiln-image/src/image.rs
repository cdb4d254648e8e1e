//! Opening an image from an OCI layout (directory or tar) or a
//! `docker save` archive, selecting a manifest by reference and platform,
//! and streaming its layers with verification.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::ArchiveIndex;
use crate::compression::{Compression, LayerReader, Limits};
use crate::digest::{Digest, PrefetchVerifier, VerifyingReader};
use crate::error::{ImageError, Result};
use crate::platform::Platform;
use crate::reference::SourceRef;
use crate::spec::*;

/// Largest manifest, index or config kiln will read into memory.
const METADATA_LIMIT: u64 = 16 << 20;

/// How to open a source.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Platform to pick from an index; the host's when `None`. When set
    /// explicitly it is also checked against a single-platform image.
    pub platform: Option<Platform>,
    /// Decompression limits.
    pub limits: Limits,
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
                        location: path.clone(),
                        reason: "dir: source is not a directory".into(),
                    });
                }
                Ok(Source::Dir(path.clone()))
            }
            _ => Image::open(reference, opts).map(|i| Source::Image(Box::new(i))),
        }
    }
}

#[derive(Debug, Clone)]
enum Store {
    Dir(PathBuf),
    Archive(Arc<ArchiveIndex>),
}

impl Store {
    fn location(&self, origin: &Path) -> PathBuf {
        match self {
            Store::Dir(p) => p.clone(),
            Store::Archive(_) => origin.to_path_buf(),
        }
    }

    fn open(&self, name: &str, origin: &Path) -> Option<Result<Box<dyn Read + Send>>> {
        match self {
            Store::Dir(root) => {
                let path = root.join(name);
                match File::open(&path) {
                    Ok(f) => Some(Ok(Box::new(f))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => Some(Err(ImageError::io(path, e))),
                }
            }
            Store::Archive(idx) => idx.open_member(name).map(|r| {
                r.map(|t| Box::new(t) as Box<dyn Read + Send>)
                    .map_err(|e| ImageError::io(origin, e))
            }),
        }
    }

    fn read_small(&self, name: &str, origin: &Path) -> Option<Result<Vec<u8>>> {
        let reader = self.open(name, origin)?;
        Some(reader.and_then(|r| {
            let mut buf = Vec::new();
            r.take(METADATA_LIMIT + 1)
                .read_to_end(&mut buf)
                .map_err(|e| ImageError::io(origin, e))?;
            if buf.len() as u64 > METADATA_LIMIT {
                return Err(ImageError::Malformed {
                    location: origin.into(),
                    reason: format!("{name} is larger than {METADATA_LIMIT} bytes"),
                });
            }
            Ok(buf)
        }))
    }
}

/// What the layer's bytes are checked against.
#[derive(Debug, Clone)]
enum Check {
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
    compression: Option<Compression>,
    name: String,
    check: Check,
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
    store: Store,
    limits: Limits,
}

impl Image {
    /// Open an OCI layout, OCI archive or docker archive.
    pub fn open(reference: &SourceRef, opts: &OpenOptions) -> Result<Self> {
        match reference {
            SourceRef::OciDir { path, reference: r } => {
                if !path.join("oci-layout").is_file() {
                    return Err(ImageError::Malformed {
                        location: path.clone(),
                        reason: "not an OCI image layout (no oci-layout file)".into(),
                    });
                }
                open_oci(
                    reference.clone(),
                    path,
                    Store::Dir(path.clone()),
                    r.as_deref(),
                    opts,
                )
            }
            SourceRef::OciArchive { path, reference: r } => {
                let idx = Arc::new(ArchiveIndex::open(path)?);
                if !idx.contains("oci-layout") || !idx.contains("index.json") {
                    return Err(ImageError::Malformed {
                        location: path.clone(),
                        reason: "not an OCI archive (no oci-layout and index.json members)".into(),
                    });
                }
                open_oci(
                    reference.clone(),
                    path,
                    Store::Archive(idx),
                    r.as_deref(),
                    opts,
                )
            }
            SourceRef::DockerArchive { path, reference: r } => {
                let idx = Arc::new(ArchiveIndex::open(path)?);
                open_docker(reference.clone(), path, idx, r.as_deref(), opts)
            }
            SourceRef::Dir { path } => Err(ImageError::Malformed {
                location: path.clone(),
                reason: "a dir: source is a root filesystem, not an image".into(),
            }),
        }
    }

    /// Stream layer `i` as an uncompressed tar. The stream is verified as it
    /// is read; call [`LayerReader::finish`] after the tar ends so the
    /// digest check sees every byte.
    pub fn open_layer(&self, i: usize) -> Result<LayerReader> {
        let layer = self.layers.get(i).ok_or_else(|| ImageError::Malformed {
            location: self.source.path().into(),
            reason: format!("no layer {i}"),
        })?;
        let origin = self.source.path();
        let raw =
            self.store
                .open(&layer.name, origin)
                .ok_or_else(|| ImageError::MissingBlob {
                    digest: layer.digest.to_string(),
                    location: self.store.location(origin),
                })??;
        let io_err = |e| ImageError::io(origin, e);
        match &layer.check {
            Check::Blob(d) => {
                let raw = PrefetchVerifier::spawn(raw, d.clone(), layer.size);
                LayerReader::new(raw, d.to_string(), layer.compression, self.limits).map_err(io_err)
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

/// Read a small member that must exist, or fail with `missing`.
fn read_required(store: &Store, name: &str, origin: &Path, missing: &str) -> Result<Vec<u8>> {
    store
        .read_small(name, origin)
        .ok_or_else(|| ImageError::Malformed {
            location: origin.into(),
            reason: missing.into(),
        })?
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| ImageError::Json {
        what: what.to_string(),
        err,
    })
}

fn read_blob(
    store: &Store,
    origin: &Path,
    desc_digest: &str,
    size: Option<u64>,
) -> Result<(Digest, Vec<u8>)> {
    let digest = Digest::parse(desc_digest)?;
    let name = format!("blobs/sha256/{}", digest.hex());
    let bytes = store
        .read_small(&name, origin)
        .ok_or_else(|| ImageError::MissingBlob {
            digest: digest.to_string(),
            location: store.location(origin),
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

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_INDEX || media_type == MEDIA_DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

fn open_oci(
    source: SourceRef,
    origin: &Path,
    store: Store,
    reference: Option<&str>,
    opts: &OpenOptions,
) -> Result<Image> {
    let index_bytes = read_required(&store, "index.json", origin, "no index.json")?;
    let index: Index = parse_json(&index_bytes, &format!("{}: index.json", origin.display()))?;
    let mut candidates: Vec<Descriptor> = index.manifests.clone();
    let mut name = None;
    if let Some(r) = reference {
        let available = ref_names(&index);
        candidates.retain(|d| {
            d.annotations
                .get(ANNOTATION_REF_NAME)
                .is_some_and(|n| n == r || n.rsplit_once(':').is_some_and(|(_, t)| t == r))
        });
        if candidates.is_empty() {
            return Err(ImageError::NoSuchReference {
                location: origin.display().to_string(),
                reference: r.to_string(),
                available,
            });
        }
        name = Some(r.to_string());
    }
    let location = format!("{}: index.json", origin.display());
    let manifest_desc = select(&store, origin, candidates, &location, opts, 0)?;
    if name.is_none() {
        name = manifest_desc.annotations.get(ANNOTATION_REF_NAME).cloned();
    }
    let (manifest_digest, manifest_bytes) = read_blob(
        &store,
        origin,
        &manifest_desc.digest,
        Some(manifest_desc.size),
    )?;
    let manifest: Manifest = parse_json(
        &manifest_bytes,
        &format!("blob {manifest_digest} (image manifest)"),
    )?;
    if !manifest.media_type.is_empty() && !is_manifest(&manifest.media_type) {
        return Err(ImageError::UnknownMediaType {
            digest: manifest_digest.to_string(),
            media_type: manifest.media_type,
        });
    }
    let cfg = &manifest.config;
    if !cfg.media_type.is_empty()
        && cfg.media_type != MEDIA_CONFIG
        && cfg.media_type != MEDIA_DOCKER_CONFIG
    {
        return Err(ImageError::UnknownMediaType {
            digest: cfg.digest.clone(),
            media_type: format!("{} (not a container image config)", cfg.media_type),
        });
    }
    let (config_digest, raw_config) = read_blob(&store, origin, &cfg.digest, Some(cfg.size))?;
    let config: ImageConfig =
        parse_json(&raw_config, &format!("blob {config_digest} (image config)"))?;
    check_explicit_platform(&config, opts, origin)?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (i, l) in manifest.layers.iter().enumerate() {
        let digest = Digest::parse(&l.digest)?;
        let compression = Compression::from_media_type(&l.media_type).map_err(|mt| {
            ImageError::UnknownMediaType {
                digest: digest.to_string(),
                media_type: mt,
            }
        })?;
        let name = format!("blobs/sha256/{}", digest.hex());
        if store.open(&name, origin).is_none() {
            return Err(ImageError::MissingBlob {
                digest: digest.to_string(),
                location: store.location(origin),
            });
        }
        layers.push(Layer {
            index: i,
            diff_id: config
                .rootfs
                .diff_ids
                .get(i)
                .and_then(|d| Digest::parse(d).ok()),
            check: Check::Blob(digest.clone()),
            digest,
            media_type: l.media_type.clone(),
            size: Some(l.size),
            compression,
            name,
        });
    }
    let name = name.unwrap_or_else(|| display_name(origin));
    Ok(Image {
        source,
        name,
        manifest_digest: Some(manifest_digest),
        config_digest,
        config,
        raw_config,
        layers,
        store,
        limits: opts.limits,
    })
}

fn ref_names(index: &Index) -> String {
    let names: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str))
        .collect();
    if names.is_empty() {
        "no named images".into()
    } else {
        names.join(", ")
    }
}

/// Pick one image manifest from index entries, descending into nested
/// indexes and choosing by platform where entries carry one.
fn select(
    store: &Store,
    origin: &Path,
    candidates: Vec<Descriptor>,
    location: &str,
    opts: &OpenOptions,
    depth: usize,
) -> Result<Descriptor> {
    if depth > 4 {
        return Err(ImageError::Malformed {
            location: origin.into(),
            reason: "image indexes nested too deeply".into(),
        });
    }
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    let platformed = candidates.iter().any(|d| d.platform.is_some());
    let chosen: Vec<Descriptor> = if platformed {
        let matching: Vec<Descriptor> = candidates
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| want.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .cloned()
            .collect();
        if matching.is_empty() {
            let available: Vec<String> = candidates
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            return Err(ImageError::NoMatchingPlatform {
                location: location.to_string(),
                wanted: want.to_string(),
                available: available.join(", "),
            });
        }
        matching
    } else {
        candidates
    };
    match chosen.len() {
        0 => Err(ImageError::Malformed {
            location: origin.into(),
            reason: format!("{location} lists no manifests"),
        }),
        1 => {
            let d = chosen.into_iter().next().expect("one element");
            if is_index(&d.media_type) {
                let (digest, bytes) = read_blob(store, origin, &d.digest, Some(d.size))?;
                let nested: Index = parse_json(&bytes, &format!("blob {digest} (image index)"))?;
                let inner = select(
                    store,
                    origin,
                    nested.manifests,
                    &format!("blob {digest} (image index)"),
                    opts,
                    depth + 1,
                )?;
                // Keep the outer entry's name for display.
                let mut inner = inner;
                for (k, v) in d.annotations {
                    inner.annotations.entry(k).or_insert(v);
                }
                Ok(inner)
            } else if d.media_type.is_empty() || is_manifest(&d.media_type) {
                Ok(d)
            } else {
                Err(ImageError::UnknownMediaType {
                    digest: d.digest,
                    media_type: d.media_type,
                })
            }
        }
        n => Err(ImageError::AmbiguousImage {
            location: location.to_string(),
            count: n,
            hint: "a reference, e.g. oci-archive:FILE:REF, or --platform".into(),
        }),
    }
}

fn check_explicit_platform(config: &ImageConfig, opts: &OpenOptions, origin: &Path) -> Result<()> {
    if let Some(want) = &opts.platform {
        if !config.os.is_empty()
            && !want.matches(&config.os, &config.architecture, config.variant.as_deref())
        {
            let have = match &config.variant {
                Some(v) => format!("{}/{}/{}", config.os, config.architecture, v),
                None => format!("{}/{}", config.os, config.architecture),
            };
            return Err(ImageError::NoMatchingPlatform {
                location: origin.display().to_string(),
                wanted: want.to_string(),
                available: have,
            });
        }
    }
    Ok(())
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The hex digest a docker-archive member name carries, if any:
/// `blobs/sha256/<hex>` (Docker 25+) or `<hex>.json` (legacy config).
fn digest_in_name(name: &str) -> Option<Digest> {
    let n = crate::archive::normalize_member(name.as_bytes());
    let hex = n
        .strip_prefix("blobs/sha256/")
        .or_else(|| n.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Does the archive tag `tag` answer to what the user typed? Docker
/// records fully qualified names (`HOST/repo:tag`); users type `repo:tag`,
/// or just the tag. Following Docker's reference grammar, a first
/// component with a `.` or `:` (or `localhost`) is a registry domain and
/// may be left out, as may the implicit `library/` namespace and `:latest`.
fn tag_matches(tag: &str, wanted: &str) -> bool {
    fn short(t: &str) -> String {
        let t = match t.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
            _ => t,
        };
        let t = t.strip_prefix("library/").unwrap_or(t);
        let name_part = t.rsplit('/').next().unwrap_or(t);
        if name_part.contains(':') {
            t.to_string()
        } else {
            format!("{t}:latest")
        }
    }
    tag == wanted
        || short(tag) == short(wanted)
        || tag.rsplit_once(':').is_some_and(|(_, t)| t == wanted)
}

fn open_docker(
    source: SourceRef,
    origin: &Path,
    idx: Arc<ArchiveIndex>,
    reference: Option<&str>,
    opts: &OpenOptions,
) -> Result<Image> {
    let store = Store::Archive(idx);
    let bytes = read_required(
        &store,
        "manifest.json",
        origin,
        "not a docker-archive (no manifest.json member)",
    )?;
    let entries: Vec<DockerManifestEntry> =
        parse_json(&bytes, &format!("{}: manifest.json", origin.display()))?;
    let tags = |e: &DockerManifestEntry| e.repo_tags.clone().unwrap_or_default();
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| tags(e).iter().any(|t| tag_matches(t, r)))
            .ok_or_else(|| ImageError::NoSuchReference {
                location: origin.display().to_string(),
                reference: r.to_string(),
                available: entries.iter().flat_map(tags).collect::<Vec<_>>().join(", "),
            })?,
        None => match entries.as_slice() {
            [one] => one,
            [] => {
                return Err(ImageError::Malformed {
                    location: origin.into(),
                    reason: "manifest.json lists no images".into(),
                })
            }
            many => {
                return Err(ImageError::AmbiguousImage {
                    location: origin.display().to_string(),
                    count: many.len(),
                    hint: "a tag, e.g. docker-archive:FILE:repo:tag".into(),
                })
            }
        },
    };
    let config_name = crate::archive::normalize_member(entry.config.as_bytes());
    let raw_config = read_required(
        &store,
        &config_name,
        origin,
        &format!("config {config_name} named by manifest.json is missing"),
    )?;
    let config_digest = match digest_in_name(&config_name) {
        Some(d) => {
            d.verify(&raw_config)?;
            d
        }
        None => Digest::of(&raw_config),
    };
    let config: ImageConfig = parse_json(&raw_config, &format!("{config_name} (image config)"))?;
    check_explicit_platform(&config, opts, origin)?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(ImageError::Malformed {
            location: origin.into(),
            reason: format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (i, (name, diff_id)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let name = crate::archive::normalize_member(name.as_bytes());
        let diff_id = Digest::parse(diff_id)?;
        if store.open(&name, origin).is_none() {
            return Err(ImageError::MissingBlob {
                digest: format!("{diff_id} ({name})"),
                location: origin.into(),
            });
        }
        let (digest, check) = match digest_in_name(&name) {
            Some(d) => (d.clone(), Check::Blob(d)),
            None => (diff_id.clone(), Check::DiffId(diff_id.clone())),
        };
        layers.push(Layer {
            index: i,
            digest,
            diff_id: Some(diff_id),
            media_type: String::new(),
            size: None,
            compression: None,
            name,
            check,
        });
    }
    let name = entry
        .repo_tags
        .as_ref()
        .and_then(|t| t.first().cloned())
        .unwrap_or_else(|| display_name(origin));
    Ok(Image {
        source,
        name,
        manifest_digest: None,
        config_digest,
        config,
        raw_config,
        layers,
        store,
        limits: opts.limits,
    })
}

#[cfg(test)]
mod tests {
    use super::tag_matches;

    #[test]
    fn docker_tags_match_like_docker() {
        assert!(tag_matches(
            "registry.example:5000/kiln/fixture:1",
            "kiln/fixture:1"
        ));
        assert!(tag_matches("example.org/library/debian:latest", "debian"));
        assert!(tag_matches("kiln/fixture:1", "1"));
        assert!(!tag_matches("kiln/fixture:1", "kiln/other:1"));
    }
}
