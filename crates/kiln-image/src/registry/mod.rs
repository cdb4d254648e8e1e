//! Registries, as the OCI distribution spec defines them: images read
//! straight from `registry:HOST/REPO:TAG` (layers streamed and verified,
//! nothing written to disk), and images and artifacts pushed to them.

mod artifact;
mod auth;
mod client;
mod push;
mod reference;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

pub use artifact::{pull_artifact, push_artifact, ArtifactSpec, PulledArtifact, MEDIA_EMPTY};
pub use auth::{auth_files, parse_challenge, Challenge, Credentials};
pub use client::{Access, Repository};
pub use push::{push_layout, PushReport};
pub use reference::RegistryRef;
pub use store::{FetchedManifest, RegistryStore, MANIFEST_LIMIT};

use crate::error::Result;
use crate::image::{Image, OpenOptions};
use crate::reference::SourceRef;

/// How to reach and log in to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// TLS, timeout and retry settings.
    pub http: kiln_http::HttpOptions,
    /// `--creds`: used before any auth file.
    pub creds: Option<Credentials>,
    /// Auth files to search instead of the usual ones (tests, embedding).
    pub auth_files: Option<Vec<PathBuf>>,
}

impl RegistryOptions {
    /// The auth files to search, in order.
    pub fn auth_files(&self) -> Vec<PathBuf> {
        self.auth_files.clone().unwrap_or_else(auth::auth_files)
    }
}

/// Open the image `reference` names.
pub(crate) fn open(
    source: SourceRef,
    reference: &RegistryRef,
    opts: &OpenOptions,
) -> Result<Image> {
    let repo = Arc::new(Repository::connect(
        &reference.host,
        &reference.repository,
        &opts.registry,
    )?);
    let store = RegistryStore::open(repo, reference)?;
    let name = reference.to_string();
    crate::oci::open(source, Arc::new(store), Some(&name), opts)
}
