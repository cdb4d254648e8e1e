//! Building a [`Tree`]: stream every layer in parallel, then apply their
//! changes bottom-up with OCI whiteout semantics.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_image::{Image, Source};
use rayon::prelude::*;

use crate::digest::ContentDigest;
use crate::entry::{Content, Entry, Kind};
use crate::error::Result;
use crate::layer::{read_layer, LayerChanges};
use crate::path;
use crate::tree::{LayerInfo, Origin, Tree, Warning};

/// Decides which files to keep in memory while layers stream: `(path, size)`.
pub type CaptureFn = dyn Fn(&str, u64) -> bool + Send + Sync;
/// Receives byte counts as layers stream, for progress bars.
pub type ProgressFn = dyn Fn(u64) + Send + Sync;
/// Decides, before a file's bytes are read, whether to inspect it:
/// `(path, mode, size)`.
pub type InspectIfFn = dyn Fn(&str, u32, u64) -> bool + Send + Sync;
/// Whatever an [`InspectFn`] learns about a file, kept on its entry.
pub type Facts = Arc<dyn std::any::Any + Send + Sync>;
/// Looks at a regular file's whole content once, while it streams past:
/// `(path, bytes)`. Runs on the thread pool, in parallel with decompression.
pub type InspectFn = dyn Fn(&str, &[u8]) -> Option<Facts> + Send + Sync;
/// Told of each regular file as soon as its digest and facts are known:
/// `(path, digest, facts)`, on whichever thread computed them. Later
/// stages (signature look-ups) can then start while layers still stream.
/// A file a higher layer replaces or deletes is reported too.
pub type FileDoneFn = dyn Fn(&str, &ContentDigest, Option<&Facts>) + Send + Sync;
/// Told of each symbolic link as it is read: `(path, target as recorded)`.
/// With [`FileDoneFn`], later stages can alias files through directory
/// links (`bin -> usr/bin`) before the tree is whole.
pub type LinkFn = dyn Fn(&str, &str) + Send + Sync;

/// What to compute while the layers stream past.
pub struct BuildOptions {
    /// Keep the content of files this returns true for (catalogers'
    /// metadata files), so reading them later costs nothing.
    pub capture: Box<CaptureFn>,
    /// Compute the content digest of every regular file.
    pub hash: bool,
    /// Called with byte counts as layers are read.
    pub progress: Option<Box<ProgressFn>>,
    /// Called with every regular file's content (fingerprinting).
    pub inspect: Option<Box<InspectFn>>,
    /// Limits inspection to the files this accepts (all when `None`), so
    /// files nobody inspects need not be buffered.
    pub inspect_if: Option<Box<InspectIfFn>>,
    /// Called with every regular file's digest (with `hash` on) as soon as
    /// it is computed.
    pub on_file: Option<Box<FileDoneFn>>,
    /// Called with every symbolic link as it is read.
    pub on_link: Option<Box<LinkFn>>,
}

impl BuildOptions {
    /// Will this file be inspected?
    pub(crate) fn inspects(&self, path: &str, mode: u32, size: u64) -> bool {
        self.inspect.is_some() && self.inspect_if.as_ref().is_none_or(|f| f(path, mode, size))
    }

    /// Report a symbolic link to [`BuildOptions::on_link`].
    pub(crate) fn link_seen(&self, path: &str, target: Option<&str>) {
        if let (Some(cb), Some(t)) = (&self.on_link, target) {
            cb(path, t);
        }
    }

    /// Report a file whose digest is known to [`BuildOptions::on_file`].
    pub(crate) fn file_done(
        &self,
        path: &str,
        digest: Option<&ContentDigest>,
        facts: Option<&Facts>,
    ) {
        if let (Some(cb), Some(d)) = (&self.on_file, digest) {
            cb(path, d, facts);
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            capture: Box::new(|_, _| false),
            hash: false,
            progress: None,
            inspect: None,
            inspect_if: None,
            on_file: None,
            on_link: None,
        }
    }
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions")
            .field("hash", &self.hash)
            .finish()
    }
}

impl Tree {
    /// Build the tree of any opened source.
    pub fn build(source: Source, opts: &BuildOptions) -> Result<Tree> {
        match source {
            Source::Image(image) => Tree::from_image(*image, opts),
            Source::Dir(path) => crate::dir::from_dir(&path, opts),
        }
    }

    /// Squash an image's layers. Layers are read in parallel a window at a
    /// time and applied in order as each window ends, so memory follows
    /// the final tree plus one window's changes, not every entry of every
    /// layer (80 layers that add and white out 50,000 files each).
    pub fn from_image(image: Image, opts: &BuildOptions) -> Result<Tree> {
        let image = Arc::new(image);
        let mut tree = Tree {
            entries: BTreeMap::new(),
            layers: Vec::with_capacity(image.layers.len()),
            warnings: Vec::new(),
            origin: Origin::Image(image.clone()),
        };
        tree.entries.insert(String::new(), Entry::dir(None));
        let window = rayon::current_num_threads().max(2);
        let all: Vec<usize> = (0..image.layers.len()).collect();
        for group in all.chunks(window) {
            let scans: Vec<Result<LayerChanges>> = group
                .par_iter()
                .map(|&i| {
                    let digest = image.layers[i].digest.to_string();
                    let reader = image.open_layer(i)?;
                    let (changes, reader) = read_layer(reader, i, &digest, opts)?;
                    reader.finish()?;
                    Ok(changes)
                })
                .collect();
            for (&i, scan) in group.iter().zip(scans) {
                let scan = scan?;
                let layer = &image.layers[i];
                tree.layers.push(LayerInfo {
                    index: i,
                    digest: layer.digest.to_string(),
                    diff_id: layer.diff_id.as_ref().map(|d| d.to_string()),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                    uncompressed: scan.bytes,
                });
                tree.apply(i, scan);
            }
        }
        Ok(tree)
    }

    fn apply(&mut self, layer: usize, scan: LayerChanges) {
        // Whiteouts and opaque markers hide what lower layers put there, never
        // what this layer adds, wherever they sit in the archive.
        for dir in &scan.opaque {
            let dir = self.resolve_parent_dir(dir);
            self.remove_children(&dir);
        }
        for gone in &scan.whiteouts {
            let parent = self.resolve_parent_dir(path::parent(gone));
            let gone = path::join(&parent, path::file_name(gone));
            self.remove_children(&gone);
            self.entries.remove(&gone);
        }
        // Taken from the back of the reversed list, which shrinks as the
        // tree grows, so a layer of a million entries is not held twice.
        let mut changes = scan.changes;
        changes.reverse();
        while let Some(change) = changes.pop() {
            if changes.len() < changes.capacity() / 2 {
                changes.shrink_to_fit();
            }
            let parent = self.resolve_parent_dir(path::parent(&change.path));
            let target = path::join(&parent, path::file_name(&change.path));
            let mut entry = change.entry;
            if let Some(link) = entry.hardlink_to.clone() {
                let resolved = self.resolve_parent_dir(path::parent(&link));
                let link = path::join(&resolved, path::file_name(&link));
                match self.entries.get(&link) {
                    Some(src) if src.is_file() => {
                        entry.size = src.size;
                        entry.digest = src.digest;
                        entry.facts = src.facts.clone();
                        entry.data = src.data.clone();
                        entry.content = src.content.clone();
                    }
                    _ => self.warnings.push(Warning {
                        path: target.clone(),
                        message: format!(
                            "hard link to {link}, which is not a file in this or a lower layer"
                        ),
                    }),
                }
            }
            match self.entries.get(&target) {
                Some(old) if old.is_dir() && entry.is_dir() => {}
                Some(old) if old.is_dir() => self.remove_children(&target),
                _ => {}
            }
            self.ensure_parents(&parent, layer);
            self.entries.insert(target, entry);
        }
    }

    fn remove_children(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .filter(|k| !k.is_empty())
            .collect();
        for k in doomed {
            self.entries.remove(&k);
        }
    }

    fn ensure_parents(&mut self, dir: &str, layer: usize) {
        let mut cur = dir;
        while !cur.is_empty() && !self.entries.contains_key(cur) {
            self.entries
                .insert(cur.to_string(), Entry::dir(Some(layer)));
            cur = path::parent(cur);
        }
    }

    /// Where a layer member's parent directory really is: runtimes follow
    /// symlinks in the parent (e.g. `bin -> usr/bin` after usrmerge), always
    /// inside the root. Falls back to the literal path.
    fn resolve_parent_dir(&self, dir: &str) -> String {
        if dir.is_empty() || self.entries.get(dir).is_some_and(Entry::is_dir) {
            return dir.to_string();
        }
        match self.resolve(dir) {
            Ok(p) if self.entries.get(&p).is_some_and(Entry::is_dir) => p,
            _ => dir.to_string(),
        }
    }
}

pub(crate) fn file_entry(size: u64, mode: u32, content: Content) -> Entry {
    let mut e = Entry::new(Kind::File, mode, None);
    e.size = size;
    e.content = content;
    e
}
