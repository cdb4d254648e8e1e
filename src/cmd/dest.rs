//! Where `kiln strip` and `kiln slim` write: a local layout or archive as
//! given, or a registry. A registry destination is written as an OCI
//! layout in a temporary directory first (the same bytes an `oci-archive:`
//! gets) and then pushed, manifest last.

use anyhow::{Context, Result};
use kiln_image::registry::{push_layout, PushReport, Repository};
use kiln_image::SourceRef;

use super::net::NetArgs;

/// A parsed destination.
#[derive(Debug)]
pub struct Destination {
    /// What the image writers write to.
    pub target: SourceRef,
    push: Option<(kiln_image::registry::RegistryRef, tempfile::TempDir)>,
}

impl Destination {
    /// Parse `DEST`; a registry reference gets a temporary layout.
    pub fn parse(text: &str) -> Result<Self> {
        let parsed = SourceRef::parse(text).with_context(|| format!("bad destination {text}"))?;
        match parsed {
            SourceRef::Registry(r) => {
                if r.digest.is_some() {
                    anyhow::bail!("bad destination {text}: push to a tag, not a digest");
                }
                let tmp = tempfile::Builder::new()
                    .prefix("kiln-push-")
                    .tempdir()
                    .context("cannot make a temporary layout for the push")?;
                let target = SourceRef::OciDir {
                    path: tmp.path().to_path_buf(),
                    reference: r.tag.clone(),
                };
                Ok(Destination {
                    target,
                    push: Some((r, tmp)),
                })
            }
            other => Ok(Destination {
                target: other,
                push: None,
            }),
        }
    }

    /// After the image is written: push it when the destination is a
    /// registry. `source` lets blobs be mounted from the source repository
    /// on the same registry instead of uploaded.
    pub fn finish(self, net: &NetArgs, source: &SourceRef) -> Result<Option<PushReport>> {
        let Some((dest, tmp)) = self.push else {
            return Ok(None);
        };
        let repo = Repository::connect(&dest.host, &dest.repository, &net.registry()?)?;
        let mount_from = match source {
            SourceRef::Registry(s) if s.host == dest.host => Some(s.repository.as_str()),
            _ => None,
        };
        let report = push_layout(&repo, tmp.path(), &dest, mount_from)
            .with_context(|| format!("cannot push to {dest}"))?;
        Ok(Some(report))
    }
}
