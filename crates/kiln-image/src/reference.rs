//! Source strings with skopeo/Syft transport prefixes, and auto-detection
//! of bare paths.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// Where an image (or root filesystem) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// `oci-dir:PATH[:REF]`: an OCI image layout directory.
    OciDir {
        /// The layout directory.
        path: PathBuf,
        /// `org.opencontainers.image.ref.name` to pick, if several.
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`: a tar of an OCI image layout.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// Ref name to pick, if several.
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]`: `docker save` output.
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// `repo:tag` to pick, if several.
        reference: Option<String>,
    },
    /// `dir:PATH`: an unpacked root filesystem.
    Dir {
        /// The root directory.
        path: PathBuf,
    },
    /// `registry:HOST[:PORT]/REPO[:TAG|@DIGEST]` (or skopeo's `docker://`):
    /// an image in a registry.
    Registry(crate::registry::RegistryRef),
}

const TRANSPORTS: &[&str] = &["oci-dir", "oci", "oci-archive", "docker-archive", "dir"];

impl SourceRef {
    /// Parse a source string. A string with no known transport prefix is
    /// taken as a path and its kind is detected from its contents.
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        if let Some((transport, rest)) = input.split_once(':') {
            if TRANSPORTS.contains(&transport) {
                if rest.is_empty() {
                    return Err(ImageError::BadReference {
                        input: input.into(),
                        reason: "no path after the transport".into(),
                    });
                }
                let (path, reference) = split_reference(rest);
                return Ok(match transport {
                    "oci-dir" | "oci" => SourceRef::OciDir { path, reference },
                    "oci-archive" => SourceRef::OciArchive { path, reference },
                    "docker-archive" => SourceRef::DockerArchive { path, reference },
                    _ => SourceRef::Dir {
                        path: PathBuf::from(rest),
                    },
                });
            }
            if transport == "registry" || (transport == "docker" && rest.starts_with("//")) {
                return crate::registry::RegistryRef::parse(rest).map(SourceRef::Registry);
            }
            if matches!(transport, "docker" | "docker-daemon" | "podman") {
                return Err(ImageError::BadReference {
                    input: input.into(),
                    reason: format!(
                        "the {transport}: transport is not supported; read the image from its \
                         registry (registry:HOST/REPO:TAG) or save it with \
                         `skopeo copy {transport}:… oci-archive:image.tar`"
                    ),
                });
            }
        }
        detect(Path::new(input))
    }

    /// The local file or directory this source reads, for the transports
    /// that read one (a registry source will not).
    pub fn path(&self) -> Option<&Path> {
        match self {
            SourceRef::OciDir { path, .. }
            | SourceRef::OciArchive { path, .. }
            | SourceRef::DockerArchive { path, .. }
            | SourceRef::Dir { path } => Some(path),
            SourceRef::Registry(_) => None,
        }
    }

    /// Where the source is, as reports and errors show it.
    pub fn location(&self) -> String {
        match self {
            SourceRef::OciDir { path, .. }
            | SourceRef::OciArchive { path, .. }
            | SourceRef::DockerArchive { path, .. }
            | SourceRef::Dir { path } => path.display().to_string(),
            SourceRef::Registry(r) => r.to_string(),
        }
    }

    /// The transport name, as a user would type it.
    pub fn transport(&self) -> &'static str {
        match self {
            SourceRef::OciDir { .. } => "oci-dir",
            SourceRef::OciArchive { .. } => "oci-archive",
            SourceRef::DockerArchive { .. } => "docker-archive",
            SourceRef::Dir { .. } => "dir",
            SourceRef::Registry(_) => "registry",
        }
    }
}

/// `PATH[:REF]`: the shortest prefix (at a colon) that exists as a path is
/// the path and the rest is the reference, so both `file.tar:repo:tag`
/// and paths that contain colons work. If nothing exists, the text after
/// the last colon is taken as the reference (the open then reports the
/// missing file).
fn split_reference(rest: &str) -> (PathBuf, Option<String>) {
    if Path::new(rest).exists() {
        return (PathBuf::from(rest), None);
    }
    for (i, _) in rest.match_indices(':') {
        let (path, reference) = (&rest[..i], &rest[i + 1..]);
        if !path.is_empty() && !reference.is_empty() && Path::new(path).exists() {
            return (PathBuf::from(path), Some(reference.to_string()));
        }
    }
    match rest.rsplit_once(':') {
        Some((path, reference)) if !path.is_empty() && !reference.contains('/') => {
            (PathBuf::from(path), Some(reference.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    }
}

/// Guess the transport of a bare path from what is in it.
fn detect(path: &Path) -> Result<SourceRef, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| ImageError::io(path, e))?;
    if meta.is_dir() {
        if path.join("oci-layout").is_file() && path.join("index.json").is_file() {
            return Ok(SourceRef::OciDir {
                path: path.into(),
                reference: None,
            });
        }
        return Ok(SourceRef::Dir { path: path.into() });
    }
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let reader = crate::compression::sniff_decoder(file).map_err(|e| ImageError::io(path, e))?;
    let mut archive = tar::Archive::new(reader);
    let (mut has_layout, mut has_docker_manifest) = (false, false);
    let not_tar = |e: std::io::Error| ImageError::Malformed {
        location: path.display().to_string(),
        reason: format!("not a directory or an image archive (tar): {e}"),
    };
    let entries = archive.entries().map_err(not_tar)?;
    for entry in entries {
        let entry = entry.map_err(not_tar)?;
        let name = entry.path_bytes();
        let name = crate::archive::normalize_member(&name);
        match name.as_str() {
            "oci-layout" => has_layout = true,
            "manifest.json" => has_docker_manifest = true,
            _ => {}
        }
        // The first few members settle it; don't read a whole image.
        if has_layout && has_docker_manifest {
            break;
        }
    }
    if has_docker_manifest {
        Ok(SourceRef::DockerArchive {
            path: path.into(),
            reference: None,
        })
    } else if has_layout {
        Ok(SourceRef::OciArchive {
            path: path.into(),
            reference: None,
        })
    } else {
        Err(ImageError::Malformed {
            location: path.display().to_string(),
            reason: "not an OCI layout, an OCI archive or a docker-archive \
                     (no oci-layout or manifest.json inside); use a transport prefix \
                     such as dir: or oci-archive:"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(
            SourceRef::parse("oci-archive:/nonexistent/x.tar:latest").unwrap(),
            SourceRef::OciArchive {
                path: "/nonexistent/x.tar".into(),
                reference: Some("latest".into())
            }
        );
        assert_eq!(
            SourceRef::parse("oci-dir:/nonexistent/layout").unwrap(),
            SourceRef::OciDir {
                path: "/nonexistent/layout".into(),
                reference: None
            }
        );
        assert_eq!(
            SourceRef::parse("dir:/").unwrap(),
            SourceRef::Dir { path: "/".into() }
        );
        assert!(SourceRef::parse("registry:example/x").is_err());
        assert!(SourceRef::parse("oci-archive:").is_err());
    }

    #[test]
    fn detects_directories() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            SourceRef::parse(d.path().to_str().unwrap()).unwrap(),
            SourceRef::Dir {
                path: d.path().into()
            }
        );
        std::fs::write(d.path().join("oci-layout"), "{}").unwrap();
        std::fs::write(d.path().join("index.json"), "{}").unwrap();
        assert!(matches!(
            SourceRef::parse(d.path().to_str().unwrap()).unwrap(),
            SourceRef::OciDir { .. }
        ));
    }
}
