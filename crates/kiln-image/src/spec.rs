//! The JSON documents of the OCI image spec and Docker's `docker save`
//! format, as far as kiln reads them. Unknown fields are ignored, so newer
//! documents still parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// OCI image index media type.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type (the pre-OCI index).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest media type.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker schema 2 manifest media type.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image config media type.
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The annotation that names an image in a layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:…` digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    /// Annotations, e.g. the ref name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform object of an index entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PlatformSpec {
    /// GOARCH.
    pub architecture: String,
    /// GOOS.
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (`index.json`, or an index blob).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    /// Media type, if stated.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    /// Media type, if stated.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The image config blob.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImageConfig {
    /// GOARCH.
    #[serde(default)]
    pub architecture: String,
    /// GOOS.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Runtime configuration.
    #[serde(default)]
    pub config: RuntimeConfig,
    /// Layer diff IDs.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default)]
    pub history: Vec<History>,
}

/// The `config` object of an image config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// Default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports, as `{"80/tcp": {}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `KEY=value` environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Digests of the uncompressed layers.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One history entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct History {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// True for entries that added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// One entry of a `docker save` `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    /// Archive path of the config blob.
    pub config: String,
    /// Tags, e.g. `debian:12`.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Archive paths of the layer tars, bottom first.
    pub layers: Vec<String>,
}

/// The time an image kiln writes records as its creation (config and
/// history): `$SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else
/// the source image's own `created`, else the Unix epoch. Never the clock,
/// so the same input and flags give the same digest on every run.
pub fn creation_time(source: Option<&ImageConfig>) -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    if let Some(t) = epoch {
        return t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| EPOCH.into());
    }
    source
        .and_then(|c| c.created.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| EPOCH.into())
}

const EPOCH: &str = "1970-01-01T00:00:00Z";
