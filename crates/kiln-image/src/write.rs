//! Writing OCI image layouts (and `oci-archive` tars of them). kiln's own
//! image-producing commands and its tests use this; the result is checked
//! with `skopeo inspect` and `umoci unpack`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::spec::{
    Descriptor, ImageConfig, Index, Manifest, ANNOTATION_REF_NAME, MEDIA_CONFIG, MEDIA_INDEX,
    MEDIA_MANIFEST,
};

/// Builds an OCI image layout directory blob by blob.
#[derive(Debug)]
pub struct LayoutWriter {
    root: PathBuf,
    manifests: Vec<Descriptor>,
}

impl LayoutWriter {
    /// Create (or add to) a layout at `root`.
    pub fn create(root: &Path) -> Result<Self> {
        let io = |e| ImageError::io(root, e);
        fs::create_dir_all(root.join("blobs/sha256")).map_err(io)?;
        fs::write(
            root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .map_err(io)?;
        Ok(LayoutWriter {
            root: root.to_path_buf(),
            manifests: Vec::new(),
        })
    }

    /// Store `bytes` as a blob; returns its descriptor (without media type).
    /// The write goes to a temporary name first, so a blob's path never
    /// holds partial content.
    pub fn add_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let digest = Digest::of(bytes);
        let path = self.root.join("blobs/sha256").join(digest.hex());
        let tmp = path.with_extension("partial");
        let io = |e| ImageError::io(&path, e);
        fs::write(&tmp, bytes).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        Ok(Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        })
    }

    /// Compress an uncompressed layer tar and store it. Returns the layer
    /// descriptor and the diff ID (digest of the uncompressed tar).
    pub fn add_layer(&self, tar: &[u8], compression: Compression) -> Result<(Descriptor, Digest)> {
        let mut sink = self.layer_sink(compression)?;
        sink.write_all(tar)
            .map_err(|e| ImageError::io(&self.root, e))?;
        sink.finish()
    }

    /// A writer that takes an uncompressed layer tar as it is produced,
    /// compresses and hashes it on the way to disk, and stores it as a blob
    /// on [`LayerSink::finish`]. Nothing is held in memory.
    pub fn layer_sink(&self, compression: Compression) -> Result<LayerSink> {
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| ImageError::io(&dir, e))?;
        let file = tmp.reopen().map_err(|e| ImageError::io(&dir, e))?;
        let out = HashWriter {
            inner: io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
        };
        let (media_type, enc) = match compression {
            Compression::None => ("application/vnd.oci.image.layer.v1.tar", Enc::Plain(out)),
            Compression::Gzip => (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Enc::Gzip(flate2::write::GzEncoder::new(
                    out,
                    flate2::Compression::fast(),
                )),
            ),
            Compression::Zstd => (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Enc::Zstd(
                    zstd::stream::write::Encoder::new(out, 3)
                        .map_err(|e| ImageError::io(&dir, e))?,
                ),
            ),
        };
        Ok(LayerSink {
            diff: Sha256::new(),
            enc,
            tmp,
            dir,
            media_type,
        })
    }

    /// Write the config and manifest for an image made of `layers`
    /// (descriptor, diff ID), and list it in the index under `ref_name`.
    /// The config's `rootfs.diff_ids` are set from the layers.
    pub fn add_image(
        &mut self,
        mut config: ImageConfig,
        layers: &[(Descriptor, Digest)],
        ref_name: Option<&str>,
    ) -> Result<Digest> {
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = layers.iter().map(|(_, d)| d.to_string()).collect();
        let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Json {
            what: "image config".into(),
            err: e,
        })?;
        let config_desc = self.add_blob(MEDIA_CONFIG, &config_bytes)?;
        self.add_manifest(
            config_desc,
            layers.iter().map(|(d, _)| d.clone()).collect(),
            ref_name,
            Some(&config),
        )
    }

    /// Write a manifest for an already-stored config and layers.
    pub fn add_manifest(
        &mut self,
        config: Descriptor,
        layers: Vec<Descriptor>,
        ref_name: Option<&str>,
        platform_from: Option<&ImageConfig>,
    ) -> Result<Digest> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_MANIFEST.into(),
            config,
            layers,
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Json {
            what: "image manifest".into(),
            err: e,
        })?;
        let mut desc = self.add_blob(MEDIA_MANIFEST, &bytes)?;
        if let Some(name) = ref_name {
            desc.annotations
                .insert(ANNOTATION_REF_NAME.into(), name.to_string());
        }
        if let Some(c) = platform_from.filter(|c| !c.os.is_empty()) {
            desc.platform = Some(crate::spec::PlatformSpec {
                architecture: c.architecture.clone(),
                os: c.os.clone(),
                variant: c.variant.clone(),
            });
        }
        let digest = Digest::parse(&desc.digest)?;
        self.manifests.push(desc);
        Ok(digest)
    }

    /// Write `index.json` listing every image added. Entries already in
    /// an existing index are kept unless a new entry reuses their ref name.
    pub fn finish(self) -> Result<PathBuf> {
        let index_path = self.root.join("index.json");
        let mut manifests: Vec<Descriptor> = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes)
                .map(|i| i.manifests)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let new_names: Vec<&String> = self
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME))
            .collect();
        manifests.retain(|d| {
            d.annotations
                .get(ANNOTATION_REF_NAME)
                .is_none_or(|n| !new_names.contains(&n))
        });
        manifests.extend(self.manifests.iter().cloned());
        let index = Index {
            schema_version: 2,
            media_type: MEDIA_INDEX.into(),
            manifests,
        };
        let bytes = serde_json::to_vec(&index).map_err(|e| ImageError::Json {
            what: "index.json".into(),
            err: e,
        })?;
        let tmp = self.root.join("index.json.partial");
        fs::write(&tmp, bytes).map_err(|e| ImageError::io(&tmp, e))?;
        fs::rename(&tmp, &index_path).map_err(|e| ImageError::io(&index_path, e))?;
        Ok(self.root)
    }
}

struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Enc {
    Plain(HashWriter<io::BufWriter<fs::File>>),
    Gzip(flate2::write::GzEncoder<HashWriter<io::BufWriter<fs::File>>>),
    Zstd(zstd::stream::write::Encoder<'static, HashWriter<io::BufWriter<fs::File>>>),
}

/// An in-progress layer blob; see [`LayoutWriter::layer_sink`].
pub struct LayerSink {
    diff: Sha256,
    enc: Enc,
    tmp: tempfile::NamedTempFile,
    dir: PathBuf,
    media_type: &'static str,
}

impl std::fmt::Debug for LayerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerSink")
            .field("media_type", &self.media_type)
            .finish()
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.enc {
            Enc::Plain(w) => w.write(buf)?,
            Enc::Gzip(w) => w.write(buf)?,
            Enc::Zstd(w) => w.write(buf)?,
        };
        self.diff.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.enc {
            Enc::Plain(w) => w.flush(),
            Enc::Gzip(w) => w.flush(),
            Enc::Zstd(w) => w.flush(),
        }
    }
}

impl LayerSink {
    /// Finish compression and store the blob under its digest. Returns the
    /// layer descriptor and the diff ID.
    pub fn finish(self) -> Result<(Descriptor, Digest)> {
        let dir = self.dir.clone();
        let io_err = |e| ImageError::io(&dir, e);
        let mut out = match self.enc {
            Enc::Plain(w) => w,
            Enc::Gzip(w) => w.finish().map_err(io_err)?,
            Enc::Zstd(w) => w.finish().map_err(io_err)?,
        };
        out.flush().map_err(io_err)?;
        let digest = Digest::parse(&format!("sha256:{}", hex::encode(out.hasher.finalize())))?;
        let diff_id = Digest::parse(&format!("sha256:{}", hex::encode(self.diff.finalize())))?;
        let path = dir.join(digest.hex());
        self.tmp.persist(&path).map_err(|e| io_err(e.error))?;
        Ok((
            Descriptor {
                media_type: self.media_type.to_string(),
                digest: digest.to_string(),
                size: out.size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            diff_id,
        ))
    }
}

/// Tar a layout directory into an `oci-archive` file, written atomically.
pub fn archive_layout(layout: &Path, out: &Path) -> Result<()> {
    let io = |e| ImageError::io(out, e);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable as a plain create would leave it (umask 022), not 0600.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-")
        .permissions(mode)
        .tempfile_in(dir)
        .map_err(io)?;
    {
        let mut builder = tar::Builder::new(io::BufWriter::new(tmp.as_file()));
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        // Members are named as skopeo names them (no `./` prefix): some
        // readers, Syft 1.18 among them, refuse a `./` member.
        let mut paths = vec![layout.join("oci-layout"), layout.join("index.json")];
        let blobs = layout.join("blobs");
        paths.push(blobs.clone());
        let mut algs: Vec<PathBuf> = fs::read_dir(&blobs)
            .map_err(|e| ImageError::io(&blobs, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        algs.sort();
        for alg in algs {
            paths.push(alg.clone());
            let mut files: Vec<PathBuf> = fs::read_dir(&alg)
                .map_err(|e| ImageError::io(&alg, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            paths.extend(files);
        }
        for p in paths {
            let name = p.strip_prefix(layout).unwrap_or(&p).to_path_buf();
            builder.append_path_with_name(&p, &name).map_err(io)?;
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io)?;
    }
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

/// A destination image being written: an OCI layout directory
/// (`oci-dir:`) or an OCI archive (`oci-archive:`, assembled in a temporary
/// layout beside the destination and renamed into place when finished, so
/// a failed write leaves no partial archive).
#[derive(Debug)]
pub struct ImageOutput {
    dest: crate::SourceRef,
    layout: PathBuf,
    writer: LayoutWriter,
    _tmp: Option<tempfile::TempDir>,
}

impl ImageOutput {
    /// Start writing to `dest` (`oci-dir:` or `oci-archive:`).
    pub fn create(dest: &crate::SourceRef) -> Result<Self> {
        let (layout, tmp) = match dest {
            crate::SourceRef::OciDir { path, .. } => (path.clone(), None),
            crate::SourceRef::OciArchive { path, .. } => {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = tempfile::Builder::new()
                    .prefix(".kiln-layout-")
                    .tempdir_in(dir)
                    .map_err(|e| ImageError::io(dir, e))?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
            other => {
                return Err(ImageError::BadReference {
                    input: format!("{}:{}", other.transport(), other.location()),
                    reason: "images can be written to oci-dir: or oci-archive: destinations".into(),
                })
            }
        };
        let writer = LayoutWriter::create(&layout)?;
        Ok(ImageOutput {
            dest: dest.clone(),
            layout,
            writer,
            _tmp: tmp,
        })
    }

    /// A sink for one layer; see [`LayoutWriter::layer_sink`].
    pub fn layer_sink(&self, compression: Compression) -> Result<LayerSink> {
        self.writer.layer_sink(compression)
    }

    /// Write config, manifest and index, and move an archive into place.
    pub fn finish(
        mut self,
        config: ImageConfig,
        layers: &[(Descriptor, Digest)],
    ) -> Result<Digest> {
        let ref_name = match &self.dest {
            crate::SourceRef::OciDir { reference, .. }
            | crate::SourceRef::OciArchive { reference, .. } => {
                reference.clone().unwrap_or_else(|| "latest".into())
            }
            _ => "latest".into(),
        };
        let digest = self.writer.add_image(config, layers, Some(&ref_name))?;
        self.writer.finish()?;
        if let crate::SourceRef::OciArchive { path, .. } = &self.dest {
            archive_layout(&self.layout, path)?;
        }
        Ok(digest)
    }
}
