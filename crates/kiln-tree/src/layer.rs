//! Reading one layer's tar stream into a list of changes, without touching
//! the disk. Layers are read in parallel; their changes are applied to the
//! tree in order afterwards.

use std::io::Read;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::build::BuildOptions;
use crate::entry::{Content, Entry, Kind};
use crate::error::{Result, TreeError};
use crate::path;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// A member that adds or replaces a path.
pub(crate) struct Change {
    pub path: String,
    pub entry: Entry,
}

/// Everything one layer does to the tree below it.
#[derive(Default)]
pub(crate) struct LayerChanges {
    /// Directories whose lower-layer contents are hidden.
    pub opaque: Vec<String>,
    /// Paths deleted from lower layers.
    pub whiteouts: Vec<String>,
    /// Added or replaced paths, in archive order.
    pub changes: Vec<Change>,
    /// Uncompressed bytes read.
    pub bytes: u64,
}

/// Read a layer stream to its end, recording its changes.
pub(crate) fn read_layer<R: Read>(
    reader: R,
    layer: usize,
    digest: &str,
    opts: &BuildOptions,
) -> Result<(LayerChanges, R)> {
    let corrupt = |e: std::io::Error| TreeError::from_layer_io(digest, e);
    let mut archive = tar::Archive::new(reader);
    let mut out = LayerChanges::default();
    let mut buf = vec![0u8; 256 * 1024];
    {
        let entries = archive.entries().map_err(corrupt)?;
        for (ordinal, entry) in entries.enumerate() {
            let mut entry = entry.map_err(corrupt)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let clean = path::clean(&raw).ok_or_else(|| TreeError::PathEscape {
                layer: digest.to_string(),
                path: raw.clone(),
            })?;
            let header = entry.header();
            let size = header.size().map_err(corrupt)?;
            out.bytes += size + 512;
            if let Some(cb) = &opts.progress {
                cb(size + 512);
            }
            if clean.is_empty() {
                continue; // the root itself
            }
            let name = path::file_name(&clean);
            if name == OPAQUE {
                out.opaque.push(path::parent(&clean).to_string());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                if !hidden.starts_with(".wh.") {
                    out.whiteouts.push(path::join(path::parent(&clean), hidden));
                }
                continue;
            }
            let etype = header.entry_type();
            let kind = match etype {
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                    Kind::File
                }
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink,
                tar::EntryType::Char => Kind::CharDevice,
                tar::EntryType::Block => Kind::BlockDevice,
                tar::EntryType::Fifo => Kind::Fifo,
                // PAX/GNU extension headers are consumed by tar-rs; anything
                // else (sparse, volume labels) carries no file for us.
                _ => continue,
            };
            let link = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let mut e = Entry {
                kind,
                mode: header.mode().unwrap_or(0o644) & 0o7777,
                uid: header.uid().unwrap_or(0),
                gid: header.gid().unwrap_or(0),
                size: if kind == Kind::File { size } else { 0 },
                mtime: header.mtime().unwrap_or(0),
                layer: Some(layer),
                link_target: None,
                hardlink_to: None,
                sha256: None,
                data: None,
                content: Content::None,
            };
            if etype == tar::EntryType::Link {
                let target = link.unwrap_or_default();
                e.hardlink_to =
                    Some(path::clean(&target).ok_or_else(|| TreeError::PathEscape {
                        layer: digest.to_string(),
                        path: format!("{raw} (hard link to {target})"),
                    })?);
            } else if kind == Kind::Symlink {
                e.link_target = link;
            } else if kind == Kind::File {
                e.content = Content::Layer {
                    layer,
                    ordinal: ordinal as u64,
                };
                let capture = (opts.capture)(&clean, size);
                if capture || opts.hash {
                    let mut hasher = opts.hash.then(Sha256::new);
                    let mut kept = if capture {
                        Vec::with_capacity(size.min(1 << 26) as usize)
                    } else {
                        Vec::new()
                    };
                    let mut seen = 0u64;
                    loop {
                        let n = entry.read(&mut buf).map_err(corrupt)?;
                        if n == 0 {
                            break;
                        }
                        seen += n as u64;
                        if let Some(h) = hasher.as_mut() {
                            h.update(&buf[..n]);
                        }
                        if capture {
                            kept.extend_from_slice(&buf[..n]);
                        }
                    }
                    if seen != size {
                        return Err(TreeError::CorruptTar {
                            layer: digest.to_string(),
                            reason: format!("truncated: {clean} has {seen} of its {size} bytes"),
                        });
                    }
                    e.sha256 = hasher.map(|h| h.finalize().into());
                    if capture {
                        e.data = Some(Arc::from(kept));
                    }
                }
            }
            out.changes.push(Change {
                path: clean,
                entry: e,
            });
        }
    }
    Ok((out, archive.into_inner()))
}
