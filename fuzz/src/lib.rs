//! What the fuzz targets share: an in-memory blob store, and images made
//! around fuzz input.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use kiln_image::{BlobStore, Image, ImageError, Limits, OpenOptions, SourceRef};
use sha2::{Digest as _, Sha256};

/// Members by name.
#[derive(Debug, Default)]
pub struct MemStore(pub HashMap<String, Vec<u8>>);

impl BlobStore for MemStore {
    fn location(&self) -> &str {
        "memory"
    }
    fn open(&self, name: &str) -> Option<Result<Box<dyn Read + Send>, ImageError>> {
        self.0
            .get(name)
            .map(|b| Ok(Box::new(std::io::Cursor::new(b.clone())) as Box<dyn Read + Send>))
    }
}

impl MemStore {
    /// Store `bytes` as a blob; its `sha256:…` digest.
    pub fn blob(&mut self, bytes: &[u8]) -> String {
        let hex = hex::encode(Sha256::digest(bytes));
        self.0.insert(format!("blobs/sha256/{hex}"), bytes.to_vec());
        format!("sha256:{hex}")
    }
}

/// Small limits, so a bomb is found in milliseconds.
pub fn limits() -> Limits {
    Limits {
        max_layer_size: 64 << 20,
        max_expansion_ratio: 100,
        ratio_grace: 1 << 20,
    }
}

/// An OCI image of one layer (`media_type`) whose blob is `layer`.
pub fn image_of_layer(layer: &[u8], media_type: &str) -> Result<Image, ImageError> {
    let mut s = MemStore::default();
    let l = s.blob(layer);
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = s.blob(cfg);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{media_type}","digest":"{l}","size":{}}}]}}"#,
        cfg.len(),
        layer.len()
    );
    let m = s.blob(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m}","size":{}}}]}}"#,
        manifest.len()
    );
    s.0.insert("index.json".into(), index.into_bytes());
    open(s)
}

/// Open whatever image a store holds.
pub fn open(store: MemStore) -> Result<Image, ImageError> {
    let opts = OpenOptions {
        limits: limits(),
        ..Default::default()
    };
    let source = SourceRef::Dir {
        path: "memory".into(),
    };
    Image::from_store(source, Arc::new(store), None, &opts)
}

/// A path as the tree keeps it: relative, no empty, `.` or `..` parts.
pub fn is_clean(path: &str) -> bool {
    path.is_empty()
        || (!path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// Write `data` to a temporary file for parsers that take paths.
pub fn temp_file(data: &[u8], suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(suffix).tempfile().expect("temp file");
    std::io::Write::write_all(&mut f, data).expect("write temp file");
    f
}
