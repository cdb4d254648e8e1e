//! A registry repository as a [`BlobStore`]: the OCI opener reads an
//! `index.json` that names the referenced manifest, manifests come from
//! the manifests endpoint (digest-checked, size-capped), and every other
//! blob streams from the blobs endpoint, resuming with `Range` when a
//! connection drops. Nothing is written to disk.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use kiln_http::ureq::{self, http};

use super::client::{read_limited, Access, Payload, Repository};
use super::reference::RegistryRef;
use crate::blobs::BlobStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::spec::*;

/// The largest manifest kiln accepts (the distribution spec suggests
/// registries accept at least 4 MiB; nothing legitimate is near it).
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// Manifests kiln reads, in the `Accept` header.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A fetched manifest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// Its bytes, exactly as served.
    pub bytes: Arc<[u8]>,
    /// The media type (from the body, else the `Content-Type`).
    pub media_type: String,
    /// The digest of the bytes, checked against what was asked.
    pub digest: Digest,
}

impl Repository {
    /// Fetch manifest `reference` (a tag or digest), checking its digest
    /// against the reference or the registry's `Docker-Content-Digest`.
    pub fn manifest(&self, reference: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self.send(
            http::Method::GET,
            &url,
            &[("Accept", ACCEPT.to_string())],
            Payload::Empty,
            Access::Pull,
            &[],
        )?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(self.error(format!(
                    "manifest {reference} not found (no such tag or digest)"
                )))
            }
            s => return Err(self.error(format!("manifest {reference}: HTTP {s}"))),
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let served_digest = header("docker-content-digest");
        if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok()) {
            if len > MANIFEST_LIMIT {
                return Err(self.error(format!(
                    "manifest {reference} is {len} bytes, over the {MANIFEST_LIMIT}-byte limit; refused"
                )));
            }
        }
        let bytes = read_limited(resp, MANIFEST_LIMIT)
            .map_err(|e| self.error(format!("manifest {reference}: {e}")))?;
        let digest = Digest::of(&bytes);
        let expected = match Digest::parse(reference) {
            Ok(d) => Some(d),
            Err(_) => served_digest.and_then(|d| Digest::parse(&d).ok()),
        };
        if let Some(want) = expected {
            if want != digest {
                return Err(ImageError::DigestMismatch {
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(default, rename = "mediaType")]
            media_type: String,
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|err| ImageError::Json {
            what: format!("{}: manifest {reference}", self.location()),
            err,
        })?;
        let media_type = if probe.media_type.is_empty() {
            content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        } else {
            probe.media_type
        };
        Ok(FetchedManifest {
            bytes: Arc::from(bytes),
            media_type,
            digest,
        })
    }

    /// Does the repository hold blob `digest`?
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(
            http::Method::HEAD,
            &url,
            &[],
            Payload::Empty,
            Access::Pull,
            &[],
        )?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(self.error(format!("blob {digest}: HTTP {s}"))),
        }
    }

    /// Stream blob `digest` from `offset` (the caller verifies it).
    pub(crate) fn blob_from(&self, digest: &Digest, offset: u64) -> Result<(ureq::Body, bool)> {
        let url = self.url(&format!("blobs/{digest}"));
        let headers: Vec<(&str, String)> = if offset > 0 {
            vec![("Range", format!("bytes={offset}-"))]
        } else {
            Vec::new()
        };
        let resp = self.send(
            http::Method::GET,
            &url,
            &headers,
            Payload::Empty,
            Access::Pull,
            &[],
        )?;
        match resp.status().as_u16() {
            200 => Ok((resp.into_body(), false)),
            206 => Ok((resp.into_body(), true)),
            404 => Err(ImageError::MissingBlob {
                digest: digest.to_string(),
                location: self.location(),
            }),
            s => Err(self.error(format!("blob {digest}: HTTP {s}"))),
        }
    }
}

/// A blob stream that picks up where it stopped when the connection
/// drops: it asks for the rest with `Range: bytes=N-`.
struct ResumingReader {
    repo: Arc<Repository>,
    digest: Digest,
    body: Option<ureq::BodyReader<'static>>,
    offset: u64,
    resumes_left: u32,
}

impl ResumingReader {
    fn reopen(&mut self) -> std::io::Result<()> {
        let (body, partial) = self
            .repo
            .blob_from(&self.digest, self.offset)
            .map_err(ImageError::into_io)?;
        let mut reader = body.into_with_config().limit(u64::MAX).reader();
        if self.offset > 0 && !partial {
            // The registry ignored Range: skip what was already read.
            std::io::copy(&mut (&mut reader).take(self.offset), &mut std::io::sink())?;
        }
        self.body = Some(reader);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.body.is_none() {
                self.reopen()?;
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                // A dropped connection, not an error of kiln's own.
                Err(e) if self.resumes_left > 0 && ImageError::from_io(&e).is_none() => {
                    self.resumes_left -= 1;
                    self.body = None;
                }
                Err(e) => {
                    return Err(ImageError::Registry {
                        location: self.repo.location(),
                        reason: format!(
                            "blob {}: connection failed after {} bytes: {e}",
                            self.digest, self.offset
                        ),
                    }
                    .into_io())
                }
            }
        }
    }
}

/// A repository with one manifest chosen: the store the OCI opener reads.
#[derive(Debug)]
pub struct RegistryStore {
    repo: Arc<Repository>,
    location: String,
    index_json: Vec<u8>,
    /// Manifests fetched so far, by digest hex.
    manifests: Mutex<BTreeMap<String, FetchedManifest>>,
    /// Digests that index entries say are manifests (fetched on demand).
    manifest_digests: Mutex<HashSet<String>>,
}

impl RegistryStore {
    /// Fetch `reference`'s manifest and present it as a one-entry layout.
    pub fn open(repo: Arc<Repository>, reference: &RegistryRef) -> Result<Self> {
        let top = repo.manifest(&reference.manifest_reference())?;
        Ok(Self::with_manifest(repo, reference, top))
    }

    /// The same, around a manifest already fetched.
    pub fn with_manifest(
        repo: Arc<Repository>,
        reference: &RegistryRef,
        top: FetchedManifest,
    ) -> Self {
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_REF_NAME.to_string(), reference.to_string());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": top.media_type,
                "digest": top.digest.to_string(),
                "size": top.bytes.len(),
                "annotations": annotations,
            }],
        });
        let store = RegistryStore {
            location: reference.to_string(),
            repo,
            index_json: serde_json::to_vec(&index).unwrap_or_default(),
            manifests: Mutex::new(BTreeMap::new()),
            manifest_digests: Mutex::new(HashSet::new()),
        };
        store.remember(top);
        store
    }

    /// The repository this store reads.
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repo
    }

    fn remember(&self, m: FetchedManifest) {
        if m.media_type == MEDIA_INDEX || m.media_type == MEDIA_DOCKER_LIST {
            if let Ok(index) = serde_json::from_slice::<Index>(&m.bytes) {
                let mut set = self
                    .manifest_digests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                for d in index.manifests {
                    if let Ok(dg) = Digest::parse(&d.digest) {
                        set.insert(dg.hex().to_string());
                    }
                }
            }
        }
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(m.digest.hex().to_string(), m);
    }

    fn manifest_bytes(&self, hex: &str) -> Option<Result<Arc<[u8]>>> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hex)
        {
            return Some(Ok(m.bytes.clone()));
        }
        let known = self
            .manifest_digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hex);
        if !known {
            return None;
        }
        Some(self.repo.manifest(&format!("sha256:{hex}")).map(|m| {
            let bytes = m.bytes.clone();
            self.remember(m);
            bytes
        }))
    }
}

impl BlobStore for RegistryStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>>> {
        if name == "index.json" {
            return Some(Ok(Box::new(std::io::Cursor::new(self.index_json.clone()))));
        }
        let hex = name.strip_prefix("blobs/sha256/")?;
        if let Some(m) = self.manifest_bytes(hex) {
            return Some(m.map(|b| Box::new(std::io::Cursor::new(b)) as Box<dyn Read + Send>));
        }
        let digest = match Digest::parse(&format!("sha256:{hex}")) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let mut reader = ResumingReader {
            repo: self.repo.clone(),
            digest,
            body: None,
            offset: 0,
            resumes_left: 5,
        };
        // Open now, so a missing blob is `None`/an error here rather than
        // at the first read.
        match reader.reopen() {
            Ok(()) => Some(Ok(Box::new(reader))),
            Err(e) => match ImageError::from_io(&e) {
                Some(ImageError::MissingBlob { .. }) => None,
                _ => Some(Err(ImageError::at(&self.location, e))),
            },
        }
    }

    fn contains(&self, name: &str) -> bool {
        if name == "index.json" {
            return true;
        }
        let Some(hex) = name.strip_prefix("blobs/sha256/") else {
            return false;
        };
        if self.manifest_bytes(hex).is_some() {
            return true;
        }
        Digest::parse(&format!("sha256:{hex}"))
            .ok()
            .is_some_and(|d| self.repo.has_blob(&d).unwrap_or(true))
    }
}
