//! Where an image's members are read from, behind one seam: a layout
//! directory, a tar archive (plain or compressed) and, next, a registry all
//! answer the same two questions — open this member, and what do errors
//! call you.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::ArchiveIndex;
use crate::error::{ImageError, Result};

/// Largest manifest, index or config kiln will read into memory.
pub const METADATA_LIMIT: u64 = 16 << 20;

/// A source of image members: `index.json`, `blobs/sha256/HEX`, or a
/// `docker save` archive's own member names.
pub trait BlobStore: std::fmt::Debug + Send + Sync {
    /// The store as errors and reports name it: a directory, an archive
    /// file, a registry reference.
    fn location(&self) -> &str;

    /// Open member `name` for streaming; `None` when the store has no such
    /// member. Each call gives an independent reader, so layers can be
    /// read in parallel.
    fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>>>;

    /// Does the store have member `name`?
    fn contains(&self, name: &str) -> bool {
        self.open(name).is_some()
    }

    /// Read a small member (a manifest, index or config) whole, refusing
    /// one larger than [`METADATA_LIMIT`].
    fn read_small(&self, name: &str) -> Option<Result<Vec<u8>>> {
        let reader = self.open(name)?;
        Some(reader.and_then(|r| {
            let mut buf = Vec::new();
            r.take(METADATA_LIMIT + 1)
                .read_to_end(&mut buf)
                .map_err(|err| ImageError::at(self.location(), err))?;
            if buf.len() as u64 > METADATA_LIMIT {
                return Err(ImageError::Malformed {
                    location: self.location().to_string(),
                    reason: format!("{name} is larger than {METADATA_LIMIT} bytes"),
                });
            }
            Ok(buf)
        }))
    }
}

/// An OCI image layout directory.
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
    location: String,
}

impl DirStore {
    /// The layout at `root`.
    pub fn new(root: &Path) -> Self {
        DirStore {
            root: root.to_path_buf(),
            location: root.display().to_string(),
        }
    }
}

impl BlobStore for DirStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>>> {
        let path = self.root.join(name);
        // A FIFO or device in a layout would block or never end: only
        // regular files are members.
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => {
                return Some(Err(ImageError::Malformed {
                    location: path.display().to_string(),
                    reason: "not a regular file".into(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            _ => {}
        }
        match File::open(&path) {
            Ok(f) => Some(Ok(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(ImageError::io(path, e))),
        }
    }
}

/// A tar of an image (OCI layout or `docker save`), members reached by
/// seeking.
#[derive(Debug)]
pub struct ArchiveStore {
    index: Arc<ArchiveIndex>,
    location: String,
}

impl ArchiveStore {
    /// Index the archive at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(ArchiveStore {
            index: Arc::new(ArchiveIndex::open(path)?),
            location: path.display().to_string(),
        })
    }
}

impl BlobStore for ArchiveStore {
    fn location(&self) -> &str {
        &self.location
    }

    fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>>> {
        self.index.open_member(name).map(|r| {
            r.map(|t| Box::new(t) as Box<dyn Read + Send>)
                .map_err(|e| ImageError::at(&self.location, e))
        })
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Cursor;

    use super::*;
    use crate::{Digest, OpenOptions, SourceRef};

    /// A store that is not a path: members in memory, as a registry's
    /// blobs would arrive.
    #[derive(Debug, Default)]
    struct MemStore(HashMap<String, Vec<u8>>);

    impl BlobStore for MemStore {
        fn location(&self) -> &str {
            "memory"
        }
        fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>>> {
            let data = self.0.get(name)?.clone();
            Some(Ok(Box::new(Cursor::new(data))))
        }
    }

    impl MemStore {
        fn blob(&mut self, data: Vec<u8>) -> (String, usize) {
            let d = Digest::of(&data);
            let n = data.len();
            self.0.insert(format!("blobs/sha256/{}", d.hex()), data);
            (d.to_string(), n)
        }
    }

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "etc/hello", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn image(layer: Vec<u8>) -> MemStore {
        let mut s = MemStore::default();
        let (ld, ls) = s.blob(layer);
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [ld] },
        });
        let (cd, cs) = s.blob(config.to_string().into_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls }],
        });
        let (md, ms) = s.blob(manifest.to_string().into_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms }],
        });
        s.0.insert("index.json".into(), index.to_string().into_bytes());
        s
    }

    fn open(store: MemStore) -> Result<crate::Image> {
        let source = SourceRef::OciDir {
            path: "memory".into(),
            reference: None,
        };
        crate::oci::open(source, Arc::new(store), None, &OpenOptions::default())
    }

    #[test]
    fn an_image_opens_and_streams_from_any_store() {
        let img = open(image(layer_tar())).unwrap();
        assert_eq!(img.location(), "memory");
        assert_eq!(img.name, "memory");
        let mut r = img.open_layer(0).unwrap();
        let mut tar = Vec::new();
        r.read_to_end(&mut tar).unwrap();
        assert_eq!(tar, layer_tar());
        r.finish().unwrap();
    }

    #[test]
    fn store_errors_name_the_store() {
        let mut s = image(layer_tar());
        s.0.retain(|k, _| k == "index.json");
        let err = open(s).unwrap_err().to_string();
        assert!(err.contains("missing from memory"), "{err}");
        let mut s = image(layer_tar());
        s.0.remove("index.json");
        assert_eq!(open(s).unwrap_err().to_string(), "memory: no index.json");
    }

    #[test]
    fn a_fifo_in_a_layout_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("index.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let store = DirStore::new(dir.path());
        let err = store.read_small("index.json").unwrap().unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
