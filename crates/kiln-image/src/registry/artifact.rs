//! OCI artifacts of one file (the signature DB): pushed as an image
//! manifest with an `artifactType`, the empty config and one layer, as the
//! OCI image spec's artifact guidance describes; pulled with the layer's
//! digest verified as it streams.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use super::client::Repository;
use super::push::{push_layout, PushReport};
use super::reference::RegistryRef;
use super::store::RegistryStore;
use crate::blobs::BlobStore;
use crate::digest::{Digest, VerifyingReader};
use crate::error::{ImageError, Result};
use crate::spec::*;

/// The empty config every artifact without one carries.
pub const MEDIA_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// What an artifact is.
#[derive(Debug, Clone)]
pub struct ArtifactSpec {
    /// The manifest's `artifactType`.
    pub artifact_type: String,
    /// The one layer's media type.
    pub layer_media_type: String,
    /// `org.opencontainers.image.title` of the layer (its file name).
    pub title: String,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Push `file` as an artifact to `dest`.
pub fn push_artifact(
    repo: &Repository,
    dest: &RegistryRef,
    file: &Path,
    spec: &ArtifactSpec,
) -> Result<PushReport> {
    let tmp = tempfile::Builder::new()
        .prefix("kiln-artifact-")
        .tempdir()
        .map_err(|e| ImageError::io(std::env::temp_dir(), e))?;
    let layout = tmp.path();
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
    let put = |bytes: &[u8]| -> Result<Digest> {
        let d = Digest::of(bytes);
        let p = blobs.join(d.hex());
        std::fs::write(&p, bytes).map_err(|e| ImageError::io(&p, e))?;
        Ok(d)
    };
    let config = put(b"{}")?;
    let (layer, size) = copy_hashed(file, &blobs)?;
    let mut layer_annotations = BTreeMap::new();
    layer_annotations.insert(
        "org.opencontainers.image.title".to_string(),
        spec.title.clone(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": spec.artifact_type,
        "config": {"mediaType": MEDIA_EMPTY, "digest": config.to_string(), "size": 2, "data": "e30="},
        "layers": [{
            "mediaType": spec.layer_media_type,
            "digest": layer.to_string(),
            "size": size,
            "annotations": layer_annotations,
        }],
        "annotations": spec.annotations,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|err| ImageError::Json {
        what: "artifact manifest".into(),
        err,
    })?;
    let m = put(&bytes)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": MEDIA_MANIFEST, "digest": m.to_string(), "size": bytes.len()}],
    });
    let index_path = layout.join("index.json");
    std::fs::write(&index_path, index.to_string()).map_err(|e| ImageError::io(&index_path, e))?;
    push_layout(repo, layout, dest, None)
}

/// Copy `file` into `blobs/` under its digest.
fn copy_hashed(file: &Path, blobs: &Path) -> Result<(Digest, u64)> {
    let part = blobs.join("upload.partial");
    let mut out = std::fs::File::create(&part).map_err(|e| ImageError::io(&part, e))?;
    let mut input = std::fs::File::open(file).map_err(|e| ImageError::io(file, e))?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| ImageError::io(file, e))?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| ImageError::io(&part, e))?;
        size += n as u64;
    }
    let digest = Digest::parse(&format!(
        "sha256:{}",
        hex::encode(sha2::Digest::finalize(hasher))
    ))?;
    let dest = blobs.join(digest.hex());
    std::fs::rename(&part, &dest).map_err(|e| ImageError::io(&dest, e))?;
    Ok((digest, size))
}

/// A pulled artifact: its manifest annotations, and its layer as a
/// reader that fails at the end unless every byte matched the digest.
pub struct PulledArtifact {
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer's size.
    pub size: u64,
    /// The layer, verified as it is read.
    pub layer: Box<dyn Read + Send>,
}

/// Fetch `reference`, check it is an artifact of `artifact_type`, and open
/// its one layer.
pub fn pull_artifact(
    repo: Arc<Repository>,
    reference: &RegistryRef,
    artifact_type: &str,
) -> Result<PulledArtifact> {
    let fetched = repo.manifest(&reference.manifest_reference())?;
    #[derive(serde::Deserialize)]
    struct ArtifactManifest {
        #[serde(default, rename = "artifactType")]
        artifact_type: String,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let m: ArtifactManifest =
        serde_json::from_slice(&fetched.bytes).map_err(|err| ImageError::Json {
            what: format!("{}: manifest", reference),
            err,
        })?;
    if m.artifact_type != artifact_type {
        return Err(repo.error(format!(
            "{reference} is not a {artifact_type} artifact (artifactType {:?})",
            m.artifact_type
        )));
    }
    let [layer] = m.layers.as_slice() else {
        return Err(repo.error(format!(
            "{reference}: expected one layer, found {}",
            m.layers.len()
        )));
    };
    let digest = Digest::parse(&layer.digest)?;
    let manifest_digest = fetched.digest.clone();
    let store = RegistryStore::with_manifest(repo.clone(), reference, fetched);
    let raw = store
        .open(&format!("blobs/sha256/{}", digest.hex()))
        .ok_or_else(|| ImageError::MissingBlob {
            digest: digest.to_string(),
            location: repo.location(),
        })??;
    Ok(PulledArtifact {
        manifest_digest,
        annotations: m.annotations,
        size: layer.size,
        layer: Box::new(VerifyingReader::new(raw, digest, Some(layer.size))),
    })
}
