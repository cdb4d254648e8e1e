//! Reading one layer's tar stream into a list of changes, without touching
//! the disk. Layers are read in parallel; their changes are applied to the
//! tree in order afterwards. Within a layer, hashing and inspection of each
//! file run on the thread pool while the stream keeps decompressing.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::build::{BuildOptions, Facts};
use crate::digest::ContentDigest;
use crate::entry::{Content, Entry, Kind};
use crate::error::{Result, TreeError};
use crate::path;
use crate::pool::Pool;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Files larger than this are hashed as they stream and never buffered
/// (nor inspected), so one huge file cannot exhaust memory.
const MAX_BUFFERED_FILE: u64 = 512 << 20;
/// Bytes of file content allowed to wait for a pool thread; past this the
/// reader does the work itself, which bounds memory (to this plus the
/// largest file). A file is handed over whenever less than this waits,
/// whatever its size: a large library hashed on the reader's thread
/// stalled the inflater behind it while the pool sat idle.
const IN_FLIGHT_BUDGET: u64 = 16 << 20;

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

type Done = (usize, Option<ContentDigest>, Option<Facts>);

/// Read a layer stream to its end, recording its changes.
pub(crate) fn read_layer<R: Read>(
    reader: R,
    layer: usize,
    digest: &str,
    opts: &BuildOptions,
) -> Result<(LayerChanges, R)> {
    let mut archive = tar::Archive::new(reader);
    let mut out = LayerChanges::default();
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let in_flight = AtomicU64::new(0);
    let pool = Pool::default();
    rayon::in_place_scope(|scope| -> Result<()> {
        let corrupt = |e: std::io::Error| TreeError::from_layer_io(digest, e);
        let entries = archive.entries().map_err(corrupt)?;
        for (ordinal, entry) in entries.enumerate() {
            let mut entry = entry.map_err(corrupt)?;
            let raw = crate::member::member_path(&mut entry).map_err(corrupt)?;
            let clean = path::clean(&raw).ok_or_else(|| TreeError::PathEscape {
                layer: digest.to_string(),
                path: raw.clone(),
            })?;
            let sparse = entry.header().entry_type() == tar::EntryType::GNUSparse;
            let size = if sparse {
                crate::member::sparse_size(&entry, &clean).map_err(corrupt)?
            } else {
                entry.header().size().map_err(corrupt)?
            };
            let header = entry.header();
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
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Link
                | tar::EntryType::GNUSparse => Kind::File,
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink,
                tar::EntryType::Char => Kind::CharDevice,
                tar::EntryType::Block => Kind::BlockDevice,
                tar::EntryType::Fifo => Kind::Fifo,
                // PAX/GNU extension headers are consumed by tar-rs; anything
                // else (volume labels) carries no file for us. Sparse
                // members read expanded, as their real size.
                _ => continue,
            };
            let link = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let mut e = Entry::new(kind, header.mode().unwrap_or(0o644) & 0o7777, Some(layer));
            e.uid = header.uid().unwrap_or(0);
            e.gid = header.gid().unwrap_or(0);
            e.size = if kind == Kind::File { size } else { 0 };
            e.mtime = header.mtime().unwrap_or(0);
            let idx = out.changes.len();
            if etype == tar::EntryType::Link {
                let target = link.unwrap_or_default();
                e.hardlink_to =
                    Some(path::clean(&target).ok_or_else(|| TreeError::PathEscape {
                        layer: digest.to_string(),
                        path: format!("{raw} (hard link to {target})"),
                    })?);
            } else if kind == Kind::Symlink {
                opts.link_seen(&clean, link.as_deref());
                e.link_target = link;
            } else if kind == Kind::File {
                e.content = Content::Layer {
                    layer,
                    ordinal: ordinal as u64,
                };
                let capture = (opts.capture)(&clean, size);
                let inspect = opts.inspects(&clean, e.mode, size);
                let wanted = capture || opts.hash || inspect;
                if wanted && size > MAX_BUFFERED_FILE {
                    e.digest = Some(stream_hash(&mut entry, size, &clean, digest)?);
                    opts.file_done(&clean, e.digest.as_ref(), None);
                } else if wanted {
                    let data = pool
                        .read(&mut entry, size as usize)
                        .map_err(|e| TreeError::from_layer_io(digest, e))?;
                    if data.len() as u64 != size {
                        return Err(truncated(digest, &clean, data.len() as u64, size));
                    }
                    if capture {
                        e.data = Some(Arc::from(&*data));
                    }
                    if opts.hash || inspect {
                        let p = clean.clone();
                        let done = &done;
                        let in_flight = &in_flight;
                        let job = move || {
                            let h = opts.hash.then(|| crate::content_digest(&data));
                            let f = if inspect {
                                opts.inspect.as_ref().and_then(|i| i(&p, &data))
                            } else {
                                None
                            };
                            opts.file_done(&p, h.as_ref(), f.as_ref());
                            done.lock().expect("no panics while held").push((idx, h, f));
                        };
                        if in_flight.load(Ordering::Relaxed) < IN_FLIGHT_BUDGET {
                            in_flight.fetch_add(size, Ordering::Relaxed);
                            scope.spawn(move |_| {
                                job();
                                in_flight.fetch_sub(size, Ordering::Relaxed);
                            });
                        } else {
                            job();
                        }
                    }
                }
            }
            out.changes.push(Change {
                path: clean,
                entry: e,
            });
        }
        Ok(())
    })?;
    for (idx, hash, facts) in done.into_inner().expect("no panics while held") {
        let e = &mut out.changes[idx].entry;
        e.digest = hash;
        e.facts = facts;
    }
    Ok((out, archive.into_inner()))
}

fn truncated(digest: &str, path: &str, seen: u64, size: u64) -> TreeError {
    TreeError::CorruptTar {
        layer: digest.to_string(),
        reason: format!("truncated: {path} has {seen} of its {size} bytes"),
    }
}

fn stream_hash(r: &mut impl Read, size: u64, path: &str, digest: &str) -> Result<ContentDigest> {
    let (d, seen) =
        crate::content_digest_reader(r).map_err(|e| TreeError::from_layer_io(digest, e))?;
    if seen != size {
        return Err(truncated(digest, path, seen, size));
    }
    Ok(d)
}
