//! Writing a (possibly edited) tree back out as one layer tar, streaming
//! file content from the source layers. `kiln strip` and `kiln slim` use
//! this to produce their images.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::entry::{Content, Entry, Kind};
use crate::error::{Result, TreeError};
use crate::tree::Tree;

/// What to do with one path when exporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// Write it under this path instead (files and symlinks only).
    pub rename: Option<String>,
    /// Bytes to append to a regular file's content.
    pub append: Vec<u8>,
}

fn io_err(e: std::io::Error) -> TreeError {
    TreeError::Io {
        path: "<layer>".into(),
        err: e,
    }
}

fn header(e: &Entry, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(size);
    h
}

impl Tree {
    /// Write every path `edit` keeps (returns `Some`) as one uncompressed
    /// layer tar into `out`: directories first (parents before children),
    /// then links and devices, then file contents streamed layer by layer.
    /// Paths that share one layer member (hard links) are written once and
    /// then as tar hard links to it, unless an edit appends to them.
    /// Returns the writer.
    pub fn export<W: Write>(
        &self,
        edit: impl Fn(&str, &Entry) -> Option<Export>,
        out: W,
    ) -> Result<W> {
        let mut b = tar::Builder::new(out);
        for (path, e) in self.iter() {
            if e.is_file() {
                continue;
            }
            let Some(x) = edit(path, e) else { continue };
            let name = x.rename.as_deref().unwrap_or(path);
            match e.kind {
                Kind::Dir => {
                    let mut h = header(e, tar::EntryType::Directory, 0);
                    b.append_data(&mut h, format!("{name}/"), std::io::empty())
                        .map_err(io_err)?;
                }
                Kind::Symlink => {
                    let mut h = header(e, tar::EntryType::Symlink, 0);
                    let target = e.link_target.clone().unwrap_or_default();
                    b.append_link(&mut h, name, target).map_err(io_err)?;
                }
                Kind::CharDevice | Kind::BlockDevice | Kind::Fifo => {
                    let t = match e.kind {
                        Kind::CharDevice => tar::EntryType::Char,
                        Kind::BlockDevice => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    };
                    let mut h = header(e, t, 0);
                    b.append_data(&mut h, name, std::io::empty())
                        .map_err(io_err)?;
                }
                Kind::File => {}
            }
        }
        let mut written: HashMap<(usize, u64), String> = HashMap::new();
        self.stream_files(
            |p, e| edit(p, e).is_some(),
            |path, e, reader| {
                let x = edit(path, e).unwrap_or_default();
                let name = x.rename.as_deref().unwrap_or(path);
                let member = match e.content {
                    Content::Layer { layer, ordinal } if x.append.is_empty() => {
                        Some((layer, ordinal))
                    }
                    _ => None,
                };
                if let Some(first) = member.and_then(|m| written.get(&m)) {
                    let mut h = header(e, tar::EntryType::Link, 0);
                    return b.append_link(&mut h, name, first).map_err(io_err);
                }
                let mut h = header(e, tar::EntryType::Regular, e.size + x.append.len() as u64);
                let mut data = reader.take(e.size).chain(&x.append[..]);
                b.append_data(&mut h, name, &mut data).map_err(io_err)?;
                if let Some(m) = member {
                    written.insert(m, name.to_string());
                }
                Ok(())
            },
        )?;
        b.into_inner().map_err(io_err)
    }
}
