//! `dir:` sources: a tree from an unpacked root filesystem on disk.
//! Symlinks are recorded, never followed on the host, so resolution stays
//! inside the directory just as it does for images.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::build::{file_entry, BuildOptions};
use crate::entry::{Content, Entry, Kind};
use crate::error::{Result, TreeError};
use crate::tree::{Origin, Tree, Warning};

/// Kernel pseudo-filesystems skipped when the root is `/`, as Syft does.
const HOST_PSEUDO: &[&str] = &["proc", "sys", "dev"];

pub(crate) fn from_dir(root: &Path, opts: &BuildOptions) -> Result<Tree> {
    let io = |p: &Path, e: std::io::Error| TreeError::Io {
        path: p.to_path_buf(),
        err: e,
    };
    let is_host_root = root.canonicalize().map_err(|e| io(root, e))? == Path::new("/");
    let mut entries = BTreeMap::new();
    let mut warnings = Vec::new();
    entries.insert(String::new(), Entry::dir(None));
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            !(is_host_root
                && e.depth() == 1
                && HOST_PSEUDO.contains(&e.file_name().to_string_lossy().as_ref()))
        });
    for item in walker {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                warnings.push(Warning {
                    path: e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let rel = item
            .path()
            .strip_prefix(root)
            .unwrap_or(item.path())
            .to_string_lossy()
            .into_owned();
        let meta = match item.metadata() {
            Ok(m) => m,
            Err(e) => {
                warnings.push(Warning {
                    path: rel,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let ft = meta.file_type();
        let mut entry = if ft.is_file() {
            file_entry(
                meta.len(),
                meta.mode() & 0o7777,
                Content::Disk(item.path().to_path_buf()),
            )
        } else {
            let mut e = Entry::dir(None);
            e.kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_char_device() {
                Kind::CharDevice
            } else if ft.is_block_device() {
                Kind::BlockDevice
            } else {
                Kind::Fifo
            };
            e.mode = meta.mode() & 0o7777;
            if ft.is_symlink() {
                e.link_target = std::fs::read_link(item.path())
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned());
                opts.link_seen(&rel, e.link_target.as_deref());
            }
            e
        };
        entry.uid = meta.uid() as u64;
        entry.gid = meta.gid() as u64;
        entry.mtime = meta.mtime().max(0) as u64;
        entries.insert(rel, entry);
    }
    // Hash and capture in parallel: on a real root the walk is cheap and
    // the reads dominate.
    let work: Vec<(&String, &Entry)> = entries
        .iter()
        .filter(|(p, e)| {
            e.is_file()
                && (opts.hash || opts.inspects(p, e.mode, e.size) || captures(opts, p, e.size))
        })
        .collect();
    let results: Vec<(String, std::io::Result<Read2>)> = work
        .par_iter()
        .map(|(p, e)| {
            let result = match &e.content {
                Content::Disk(host) => read_file(
                    host,
                    p,
                    e.size,
                    captures(opts, p, e.size),
                    opts.inspects(p, e.mode, e.size),
                    opts,
                ),
                _ => Ok((None, None, None)),
            };
            if let Ok((hash, _, facts)) = &result {
                opts.file_done(p, hash.as_ref(), facts.as_ref());
            }
            ((*p).clone(), result)
        })
        .collect();
    for (p, result) in results {
        match result {
            Ok((hash, data, facts)) => {
                if let Some(e) = entries.get_mut(&p) {
                    e.digest = hash;
                    e.data = data;
                    e.facts = facts;
                }
            }
            Err(err) => warnings.push(Warning {
                path: p,
                message: err.to_string(),
            }),
        }
    }
    Ok(Tree {
        entries,
        layers: Vec::new(),
        warnings,
        origin: Origin::Dir(root.to_path_buf()),
    })
}

/// Inspect a file through a private read-only mapping, so an inspector
/// that needs a few pages (ELF headers, one section) reads only those,
/// not the whole file: how `kiln sbom dir:/` finds Go and Rust binaries
/// without reading every executable.
fn inspect_mapped(
    f: &std::fs::File,
    rel: &str,
    size: u64,
    opts: &BuildOptions,
) -> Option<crate::Facts> {
    if size == 0 {
        return None;
    }
    // SAFETY: the mapping is private and read-only; the file is one kiln
    // opened from the source directory, and the slice does not outlive
    // this call.
    let map = unsafe { memmap2::Mmap::map(f) }.ok()?;
    if let Some(cb) = &opts.progress {
        cb(size);
    }
    opts.inspect.as_ref().and_then(|i| i(rel, &map))
}

type Read2 = (
    Option<crate::ContentDigest>,
    Option<Arc<[u8]>>,
    Option<crate::Facts>,
);

/// Largest file a `dir:` tree keeps in memory for the catalogers. A
/// larger one (a jar, a big rpmdb) is read from disk when a cataloger
/// asks, and dropped after, instead of being held for the whole run:
/// unlike a layer, the directory can be read again at no cost.
const MAX_CAPTURED_FILE: u64 = 1 << 20;

fn captures(opts: &BuildOptions, path: &str, size: u64) -> bool {
    size <= MAX_CAPTURED_FILE && (opts.capture)(path, size)
}

/// Largest file read whole (for capture or inspection); larger ones are
/// only hashed as they stream.
const MAX_BUFFERED_FILE: u64 = 512 << 20;

fn read_file(
    path: &Path,
    rel: &str,
    size: u64,
    capture: bool,
    inspect: bool,
    opts: &BuildOptions,
) -> std::io::Result<Read2> {
    let mut f = std::fs::File::open(path)?;
    if inspect && !capture && !opts.hash {
        return Ok((None, None, inspect_mapped(&f, rel, size, opts)));
    }
    if (capture || inspect) && size <= MAX_BUFFERED_FILE {
        let mut data = Vec::with_capacity(size as usize);
        f.read_to_end(&mut data)?;
        if let Some(cb) = &opts.progress {
            cb(data.len() as u64);
        }
        let hash = opts.hash.then(|| crate::content_digest(&data));
        let facts = if inspect {
            opts.inspect.as_ref().and_then(|i| i(rel, &data))
        } else {
            None
        };
        return Ok((hash, capture.then(|| Arc::from(data)), facts));
    }
    if !opts.hash {
        // Nothing wants these bytes: a large captured file is read from
        // disk later, when a cataloger asks.
        if let Some(cb) = &opts.progress {
            cb(size);
        }
        return Ok((None, None, None));
    }
    let (hash, n) = crate::content_digest_reader(&mut f)?;
    if let Some(cb) = &opts.progress {
        cb(n);
    }
    Ok((Some(hash), None, None))
}
