//! Random access to the members of an outer image archive (`oci-archive`,
//! `docker-archive`) without extracting it: one pass records where each
//! member's bytes sit, then blobs are read with a seek. Each reader opens its
//! own file handle, so layers can be streamed in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::ImageError;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
}

/// An index of a tar file's members by normalised name.
#[derive(Debug)]
pub struct ArchiveIndex {
    path: PathBuf,
    /// Keeps a spooled, decompressed copy alive when the archive was compressed.
    _spool: Option<tempfile::NamedTempFile>,
    members: HashMap<String, Member>,
}

/// Normalise a member name the way GNU tar and container runtimes treat
/// it: drop `./` and leading `/`, collapse repeated and trailing slashes.
/// `..` components are kept, so such names never match a blob path.
pub fn normalize_member(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl ArchiveIndex {
    /// Index `path`. A gzip- or zstd-compressed archive is first decompressed
    /// to a temporary file, since members of a compressed stream cannot be
    /// reached by seeking.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let mut head = [0u8; 4];
        let n = File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| ImageError::io(path, e))?;
        let spool = match crate::compression::Compression::sniff(&head[..n]) {
            crate::compression::Compression::None => None,
            _ => {
                let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
                let mut dec =
                    crate::compression::sniff_decoder(file).map_err(|e| ImageError::io(path, e))?;
                let mut tmp =
                    tempfile::NamedTempFile::new().map_err(|e| ImageError::io(path, e))?;
                io::copy(&mut dec, tmp.as_file_mut()).map_err(|e| ImageError::io(path, e))?;
                Some(tmp)
            }
        };
        let data_path = spool.as_ref().map_or(path, |t| t.path()).to_path_buf();
        let file = File::open(&data_path).map_err(|e| ImageError::io(path, e))?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut members = HashMap::new();
        let entries = archive.entries().map_err(|e| ImageError::io(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| malformed(path, format!("corrupt tar: {e}")))?;
            let name = normalize_member(&entry.path_bytes());
            let kind = entry.header().entry_type();
            let member = if kind.is_file() {
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                if kind.is_hard_link() {
                    // Hard-link targets are archive-relative names.
                    Member::Symlink(format!("/{}", normalize_member(target.as_bytes())))
                } else {
                    Member::Symlink(target)
                }
            } else {
                continue;
            };
            members.insert(name, member);
        }
        // A tar's last member may be cut short; tar-rs only notices when
        // reading its data, so check the sizes against the file length.
        let len = std::fs::metadata(&data_path)
            .map_err(|e| ImageError::io(path, e))?
            .len();
        for (name, m) in &members {
            if let Member::File { offset, size } = m {
                if offset + size > len {
                    return Err(malformed(
                        path,
                        format!("truncated archive: member {name} runs past the end of the file"),
                    ));
                }
            }
        }
        Ok(ArchiveIndex {
            path: data_path,
            _spool: spool,
            members,
        })
    }

    /// Does the archive hold a member of this name (after following links)?
    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize_member(name.as_bytes());
        for _ in 0..16 {
            match self.members.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Symlink(target) => {
                    name = if let Some(abs) = target.strip_prefix('/') {
                        normalize_member(abs.as_bytes())
                    } else {
                        let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                        resolve_relative(parent, target)?
                    };
                }
            }
        }
        None
    }

    /// Open a member for reading.
    pub fn open_member(&self, name: &str) -> Option<io::Result<io::Take<File>>> {
        let (offset, size) = self.locate(name)?;
        Some(File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            Ok(f.take(size))
        }))
    }
}

/// Clean a member path the way container runtimes read layer members:
/// `./` and absolute names are root-relative, `.` and empty components
/// vanish, `..` pops a component. `None` when `..` would climb above the
/// root.
pub fn clean_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Join a relative link target onto a directory, refusing to climb above
/// the archive root.
fn resolve_relative(dir: &str, target: &str) -> Option<String> {
    clean_path(&format!("{dir}/{target}"))
}

fn malformed(path: &Path, reason: String) -> ImageError {
    ImageError::Malformed {
        location: path.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize_member(b"./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize_member(b"/index.json"), "index.json");
        assert_eq!(normalize_member(b"a//b/"), "a/b");
        assert_eq!(normalize_member(b"../x"), "../x");
    }

    #[test]
    fn relative_links_stay_inside() {
        assert_eq!(
            resolve_relative("a", "../b/layer.tar").unwrap(),
            "b/layer.tar"
        );
        assert!(resolve_relative("a", "../../etc/passwd").is_none());
    }
}
