//! Opening an OCI image layout (a directory or a tar of one): the index,
//! a manifest chosen by reference name and platform (through nested
//! indexes), the config, and the layer descriptors.

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::image::{
    check_explicit_platform, display_name, malformed, parse_object, read_blob, read_required,
    Check, Image, Layer, OpenOptions,
};
use crate::platform::Platform;
use crate::reference::SourceRef;
use crate::spec::*;

fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_INDEX || media_type == MEDIA_DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

pub(crate) fn open(
    source: SourceRef,
    store: Arc<dyn BlobStore>,
    reference: Option<&str>,
    opts: &OpenOptions,
) -> Result<Image> {
    let s = store.as_ref();
    let index_bytes = read_required(s, "index.json", "no index.json")?;
    let index: Index = parse_object(&index_bytes, &format!("{}: index.json", s.location()))?;
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
                location: s.location().to_string(),
                reference: r.to_string(),
                available,
            });
        }
        name = Some(r.to_string());
    }
    let location = format!("{}: index.json", s.location());
    let manifest_desc = select(s, candidates, &location, opts, 0)?;
    if name.is_none() {
        name = manifest_desc.annotations.get(ANNOTATION_REF_NAME).cloned();
    }
    let (manifest_digest, manifest_bytes) =
        read_blob(s, &manifest_desc.digest, Some(manifest_desc.size))?;
    let manifest: Manifest = parse_object(
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
    let (config_digest, raw_config) = read_blob(s, &cfg.digest, Some(cfg.size))?;
    let config: ImageConfig =
        parse_object(&raw_config, &format!("blob {config_digest} (image config)"))?;
    check_explicit_platform(&config, opts, s)?;
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
        if !s.contains(&name) {
            return Err(ImageError::MissingBlob {
                digest: digest.to_string(),
                location: s.location().to_string(),
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
    let name = name.unwrap_or_else(|| display_name(s));
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
    store: &dyn BlobStore,
    candidates: Vec<Descriptor>,
    location: &str,
    opts: &OpenOptions,
    depth: usize,
) -> Result<Descriptor> {
    if depth > 4 {
        return Err(malformed(store, "image indexes nested too deeply"));
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
        0 => Err(malformed(store, &format!("{location} lists no manifests"))),
        1 => {
            let d = chosen.into_iter().next().expect("one element");
            if is_index(&d.media_type) {
                let (digest, bytes) = read_blob(store, &d.digest, Some(d.size))?;
                let nested: Index = parse_object(&bytes, &format!("blob {digest} (image index)"))?;
                let inner = select(
                    store,
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
