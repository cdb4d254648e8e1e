//! The squashed tree: look-ups, symlink resolution that never leaves the
//! image root, and reading content back without extracting the image.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use kiln_image::Image;

use crate::entry::{Content, Entry, Kind};
use crate::error::{Result, TreeError};
use crate::path;

/// The kernel's limit on symlink hops in one resolution.
const MAX_SYMLINK_HOPS: usize = 40;

/// Facts about one layer, for attribution in reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInfo {
    /// Position, 0 = bottom.
    pub index: usize,
    /// Blob digest.
    pub digest: String,
    /// Uncompressed digest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Declared media type.
    pub media_type: String,
    /// Stored size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Bytes of tar read.
    pub uncompressed: u64,
}

/// Something odd but survivable found while squashing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Warning {
    /// The path concerned.
    pub path: String,
    /// What was odd.
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Image(Arc<Image>),
    Dir(PathBuf),
}

/// A squashed file tree: every path visible in the final image, with its
/// metadata and the layer that last wrote it.
///
/// Paths are root-relative without a leading slash (`etc/os-release`);
/// the root itself is `""`.
#[derive(Debug, Clone)]
pub struct Tree {
    pub(crate) entries: BTreeMap<String, Entry>,
    pub(crate) layers: Vec<LayerInfo>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) origin: Origin,
}

impl Tree {
    /// The entry at exactly `path` (no symlinks followed).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        let p = path::clean(path)?;
        self.entries.get(&p)
    }

    /// All entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Entries below `dir` (recursively), in path order.
    pub fn iter_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        let prefix = match path::clean(dir) {
            Some(d) if d.is_empty() => String::new(),
            Some(d) => format!("{d}/"),
            None => "\0".to_string(),
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Number of paths (excluding the root).
    pub fn len(&self) -> usize {
        self.entries.len().saturating_sub(1)
    }

    /// True when the tree holds nothing but its root.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Layers, bottom first (empty for `dir:` sources).
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Oddities found while squashing (dangling hard links and the like).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The image this tree came from, if it came from one.
    pub fn image(&self) -> Option<&Image> {
        match &self.origin {
            Origin::Image(i) => Some(i),
            Origin::Dir(_) => None,
        }
    }

    /// The root directory this tree came from, for `dir:` sources.
    pub fn source_dir(&self) -> Option<&std::path::Path> {
        match &self.origin {
            Origin::Image(_) => None,
            Origin::Dir(p) => Some(p),
        }
    }

    /// Resolve `path`, following every symlink, including the last
    /// component. Resolution happens as if chrooted: absolute targets start
    /// at the image root and `..` at the root stays there, so no link can
    /// lead outside the image.
    pub fn resolve(&self, path: &str) -> Result<String> {
        self.resolve_inner(path, true)
    }

    /// Resolve symlinks in the parent directories only, not the last
    /// component (like `lstat`).
    pub fn resolve_parent(&self, path: &str) -> Result<String> {
        self.resolve_inner(path, false)
    }

    fn resolve_inner(&self, input: &str, follow_last: bool) -> Result<String> {
        let mut pending: Vec<String> = input
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let is_last = pending.is_empty();
            let cur = done.join("/");
            let Some(entry) = self.entries.get(&cur) else {
                continue; // a missing component: the caller sees NotFound later
            };
            if entry.kind != Kind::Symlink || (is_last && !follow_last) {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(TreeError::SymlinkLoop {
                    path: input.to_string(),
                });
            }
            let target = entry.link_target.clone().unwrap_or_default();
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            pending.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                    .map(str::to_string),
            );
        }
        Ok(done.join("/"))
    }

    /// The entry `path` leads to after following symlinks.
    pub fn lookup(&self, path: &str) -> Result<(String, &Entry)> {
        let resolved = self.resolve(path)?;
        match self.entries.get(&resolved) {
            Some(e) => Ok((resolved, e)),
            None => Err(TreeError::NotFound { path: resolved }),
        }
    }

    /// Read a regular file's content, following symlinks. Captured files
    /// come from memory; others are re-read from their layer (or disk for a
    /// `dir:` source), never extracted.
    pub fn read(&self, path: &str, limit: u64) -> Result<Arc<[u8]>> {
        let (resolved, entry) = self.lookup(path)?;
        if !entry.is_file() {
            return Err(TreeError::NotAFile { path: resolved });
        }
        if entry.size > limit {
            return Err(TreeError::TooLarge {
                path: resolved,
                size: entry.size,
                limit,
            });
        }
        if let Some(data) = &entry.data {
            return Ok(data.clone());
        }
        match (&entry.content, &self.origin) {
            (Content::Disk(p), _) => {
                let mut buf = Vec::new();
                std::fs::File::open(p)
                    .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
                    .map_err(|e| TreeError::Io {
                        path: p.clone(),
                        err: e,
                    })?;
                Ok(Arc::from(buf))
            }
            (Content::Layer { .. }, Origin::Image(_)) => {
                let mut out = None;
                self.stream_files(
                    |p, _| p == resolved,
                    |_, _, r| {
                        let mut buf = Vec::new();
                        r.read_to_end(&mut buf).map_err(|err| TreeError::Io {
                            path: resolved.clone().into(),
                            err,
                        })?;
                        out = Some(buf);
                        Ok(())
                    },
                )?;
                out.map(Arc::from)
                    .ok_or(TreeError::NotFound { path: resolved })
            }
            _ => Ok(Arc::from(Vec::new())),
        }
    }
}

impl Tree {
    /// Stream the content of every regular file `want` selects, reading
    /// each layer once, bottom first (or the disk, for `dir:` sources).
    /// `visit` gets the path, the entry and a reader of exactly its bytes.
    /// This is how content is read back in bulk without extracting.
    pub fn stream_files(
        &self,
        want: impl Fn(&str, &Entry) -> bool,
        mut visit: impl FnMut(&str, &Entry, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        // (layer, ordinal) -> paths whose content is that member (hard
        // links share one).
        let mut by_member: BTreeMap<(usize, u64), Vec<&str>> = BTreeMap::new();
        for (path, e) in self.iter() {
            if !e.is_file() || !want(path, e) {
                continue;
            }
            match &e.content {
                Content::Layer { layer, ordinal } => {
                    by_member.entry((*layer, *ordinal)).or_default().push(path)
                }
                Content::Disk(host) => {
                    let mut f = std::fs::File::open(host).map_err(|err| TreeError::Io {
                        path: host.clone(),
                        err,
                    })?;
                    visit(path, e, &mut f)?;
                }
                Content::None => visit(path, e, &mut std::io::empty())?,
            }
        }
        let Origin::Image(image) = &self.origin else {
            return Ok(());
        };
        let layers: std::collections::BTreeSet<usize> = by_member.keys().map(|k| k.0).collect();
        for layer in layers {
            let digest = image.layers[layer].digest.to_string();
            let reader = image.open_layer(layer)?;
            let mut archive = tar::Archive::new(reader);
            let entries = archive
                .entries()
                .map_err(|e| TreeError::from_layer_io(&digest, e))?;
            for (ordinal, member) in entries.enumerate() {
                let mut member = member.map_err(|e| TreeError::from_layer_io(&digest, e))?;
                let Some(paths) = by_member.get(&(layer, ordinal as u64)) else {
                    continue;
                };
                if paths.len() == 1 {
                    let p = paths[0];
                    visit(p, &self.entries[p], &mut member)?;
                } else {
                    let mut buf = Vec::new();
                    member
                        .read_to_end(&mut buf)
                        .map_err(|e| TreeError::from_layer_io(&digest, e))?;
                    for p in paths {
                        visit(p, &self.entries[*p], &mut &buf[..])?;
                    }
                }
            }
            archive.into_inner().finish().map_err(TreeError::Image)?;
        }
        Ok(())
    }
}
