//! Pushing an OCI layout's image to a registry: blobs the registry has are
//! skipped (HEAD), blobs another repository of the same registry has are
//! mounted, the rest are uploaded in one piece or in chunks, and the
//! manifest goes last, so a failed push never leaves a tag pointing at
//! missing blobs.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use kiln_http::ureq::http;

use super::client::{Access, Payload, Repository};
use super::reference::RegistryRef;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::spec::*;

/// Blobs up to this size go up in one `PUT`; larger ones in chunks of it.
/// `$KILN_PUSH_CHUNK` (bytes) changes it, for registries behind proxies
/// that cap request bodies.
const CHUNK: u64 = 16 << 20;

fn chunk_size() -> u64 {
    std::env::var("KILN_PUSH_CHUNK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(CHUNK)
}

/// What a push did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    /// The pushed manifest's digest.
    pub manifest_digest: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs the repository already had.
    pub present: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
}

/// Push the image `index.json` of the layout at `layout` lists (exactly
/// one) to `dest`; `mount_from` is a repository on the same registry that
/// may hold some blobs already (the source image's).
pub fn push_layout(
    repo: &Repository,
    layout: &Path,
    dest: &RegistryRef,
    mount_from: Option<&str>,
) -> Result<PushReport> {
    let index_path = layout.join("index.json");
    let index: Index = read_json(&index_path)?;
    let [desc] = index.manifests.as_slice() else {
        return Err(ImageError::Malformed {
            location: index_path.display().to_string(),
            reason: format!("lists {} images; a push takes one", index.manifests.len()),
        });
    };
    let mut report = PushReport::default();
    let digest = push_manifest_tree(repo, layout, desc, mount_from, &mut report, 0)?;
    let bytes = blob_bytes(layout, &digest)?;
    put_manifest(repo, &dest.manifest_reference(), &desc.media_type, &bytes)?;
    report.manifest_digest = digest.to_string();
    Ok(report)
}

/// Push everything a manifest (or index) refers to, and child manifests by
/// digest; the top one is left for the caller to tag.
fn push_manifest_tree(
    repo: &Repository,
    layout: &Path,
    desc: &Descriptor,
    mount_from: Option<&str>,
    report: &mut PushReport,
    depth: usize,
) -> Result<Digest> {
    let digest = Digest::parse(&desc.digest)?;
    let bytes = blob_bytes(layout, &digest)?;
    if depth > 4 {
        return Err(ImageError::Malformed {
            location: layout.display().to_string(),
            reason: "image indexes nested too deeply".into(),
        });
    }
    if desc.media_type == MEDIA_INDEX || desc.media_type == MEDIA_DOCKER_LIST {
        let index: Index = parse(&bytes, &digest)?;
        for child in &index.manifests {
            let d = push_manifest_tree(repo, layout, child, mount_from, report, depth + 1)?;
            let child_bytes = blob_bytes(layout, &d)?;
            put_manifest(repo, &d.to_string(), &child.media_type, &child_bytes)?;
        }
        return Ok(digest);
    }
    let manifest: Manifest = parse(&bytes, &digest)?;
    let mut blobs = vec![manifest.config.clone()];
    blobs.extend(manifest.layers.iter().cloned());
    push_blobs(repo, layout, &blobs, mount_from, report)?;
    Ok(digest)
}

/// Blobs pushed at once: enough to overlap round trips, few enough not to
/// flood the registry with connections.
const PARALLEL: usize = 4;

/// What happened to one blob.
enum Outcome {
    Present,
    Mounted,
    Uploaded(u64),
}

/// Push `blobs`, [`PARALLEL`] at a time.
fn push_blobs(
    repo: &Repository,
    layout: &Path,
    blobs: &[Descriptor],
    mount_from: Option<&str>,
    report: &mut PushReport,
) -> Result<()> {
    for group in blobs.chunks(PARALLEL) {
        let outcomes: Vec<Result<Outcome>> = std::thread::scope(|s| {
            let running: Vec<_> = group
                .iter()
                .map(|b| s.spawn(move || push_blob(repo, layout, b, mount_from)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(repo.error("a push thread panicked")))
                })
                .collect()
        });
        for outcome in outcomes {
            match outcome? {
                Outcome::Present => report.present += 1,
                Outcome::Mounted => report.mounted += 1,
                Outcome::Uploaded(n) => {
                    report.uploaded += 1;
                    report.uploaded_bytes += n;
                }
            }
        }
    }
    Ok(())
}

fn push_blob(
    repo: &Repository,
    layout: &Path,
    desc: &Descriptor,
    mount_from: Option<&str>,
) -> Result<Outcome> {
    let digest = Digest::parse(&desc.digest)?;
    if repo.has_blob(&digest)? {
        return Ok(Outcome::Present);
    }
    let location = match mount_from.filter(|m| *m != repo.name()) {
        Some(from) => match mount(repo, &digest, from)? {
            None => return Ok(Outcome::Mounted),
            Some(upload) => upload,
        },
        None => start_upload(repo)?,
    };
    let path = blob_path(layout, &digest);
    let size = std::fs::metadata(&path)
        .map_err(|e| ImageError::io(&path, e))?
        .len();
    upload(repo, &location, &path, &digest, size)?;
    Ok(Outcome::Uploaded(size))
}

/// Ask the registry to mount `digest` from repository `from`: `None` when
/// it did, else the upload session it opened instead.
fn mount(repo: &Repository, digest: &Digest, from: &str) -> Result<Option<String>> {
    let resp = post_upload(
        repo,
        &format!("?mount={digest}&from={from}"),
        &[from.to_string()],
    )?;
    match resp.status().as_u16() {
        201 => Ok(None),
        202 => location_of(repo, &resp).map(Some),
        s => Err(repo.error(format!("mount of {digest} from {from}: HTTP {s}"))),
    }
}

fn start_upload(repo: &Repository) -> Result<String> {
    let resp = post_upload(repo, "", &[])?;
    match resp.status().as_u16() {
        202 => location_of(repo, &resp),
        s => Err(repo.error(format!("starting an upload: HTTP {s}"))),
    }
}

/// `POST /v2/REPO/blobs/uploads/QUERY`, with pull rights on `mount_from`.
fn post_upload(
    repo: &Repository,
    query: &str,
    mount_from: &[String],
) -> Result<http::Response<kiln_http::ureq::Body>> {
    let url = format!("{}{query}", repo.url("blobs/uploads/"));
    repo.send(
        http::Method::POST,
        &url,
        &[("Content-Length", "0".into())],
        Payload::Empty,
        Access::Push,
        mount_from,
    )
}

fn location_of(repo: &Repository, resp: &http::Response<kiln_http::ureq::Body>) -> Result<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| repo.absolute(l))
        .ok_or_else(|| repo.error("upload answer without a Location header"))
}

fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

/// Upload one blob: one `PUT` when small, else `PATCH` chunks and a
/// closing `PUT`.
fn upload(
    repo: &Repository,
    location: &str,
    path: &Path,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut buf = Vec::new();
    let chunk = chunk_size();
    let location = if size > chunk {
        send_chunks(repo, location, &mut file, path, digest, chunk)?
    } else {
        file.read_to_end(&mut buf)
            .map_err(|e| ImageError::io(path, e))?;
        location.to_string()
    };
    let url = with_query(&location, &format!("digest={digest}"));
    let resp = put_bytes(repo, http::Method::PUT, &url, &buf, None)?;
    match resp.status().as_u16() {
        201 | 204 => Ok(()),
        400 => Err(repo.error(format!(
            "blob {digest}: the registry refused the upload (HTTP 400: digest or size did not match)"
        ))),
        s => Err(repo.error(format!("blob {digest}: upload: HTTP {s}"))),
    }
}

/// `PATCH` the file up in chunks; the session's location after the last.
fn send_chunks(
    repo: &Repository,
    location: &str,
    file: &mut File,
    path: &Path,
    digest: &Digest,
    chunk: u64,
) -> Result<String> {
    let mut location = location.to_string();
    let mut sent = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        file.take(chunk)
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(path, e))?;
        if buf.is_empty() {
            return Ok(location);
        }
        let end = sent + buf.len() as u64 - 1;
        let range = format!("{sent}-{end}");
        let resp = put_bytes(repo, http::Method::PATCH, &location, &buf, Some(range))?;
        if resp.status() != 202 {
            return Err(repo.error(format!(
                "blob {digest}: chunk at {sent}: HTTP {}",
                resp.status().as_u16()
            )));
        }
        location = location_of(repo, &resp)?;
        sent = end + 1;
    }
}

/// Send `bytes` as an octet stream (with a `Content-Range` for a chunk).
fn put_bytes(
    repo: &Repository,
    method: http::Method,
    url: &str,
    bytes: &[u8],
    range: Option<String>,
) -> Result<http::Response<kiln_http::ureq::Body>> {
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Content-Length", bytes.len().to_string()),
    ];
    if let Some(r) = range {
        headers.push(("Content-Range", r));
    }
    repo.send(
        method,
        url,
        &headers,
        Payload::Bytes(bytes),
        Access::Push,
        &[],
    )
}

fn put_manifest(repo: &Repository, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
    let url = repo.url(&format!("manifests/{reference}"));
    let media_type = if media_type.is_empty() {
        MEDIA_MANIFEST
    } else {
        media_type
    };
    let headers = [
        ("Content-Type", media_type.to_string()),
        ("Content-Length", bytes.len().to_string()),
    ];
    let resp = repo.send(
        http::Method::PUT,
        &url,
        &headers,
        Payload::Bytes(bytes),
        Access::Push,
        &[],
    )?;
    match resp.status().as_u16() {
        201 | 200 | 204 => Ok(()),
        s => Err(repo.error(format!("manifest {reference}: HTTP {s}"))),
    }
}

fn blob_path(layout: &Path, digest: &Digest) -> std::path::PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

fn blob_bytes(layout: &Path, digest: &Digest) -> Result<Vec<u8>> {
    let path = blob_path(layout, digest);
    let bytes = std::fs::read(&path).map_err(|e| ImageError::io(&path, e))?;
    digest.verify(&bytes)?;
    Ok(bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| ImageError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|err| ImageError::Json {
        what: path.display().to_string(),
        err,
    })
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], digest: &Digest) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| ImageError::Json {
        what: format!("blob {digest}"),
        err,
    })
}
