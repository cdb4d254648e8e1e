//! `kiln cp … -` and `kiln cp - …`: a tree as a tar stream (as `docker cp`
//! and `kubectl cp` exchange it), written from a walk or unpacked into a
//! sink that confines every entry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::fs::{Content, Meta};
use super::{Sink, Stats};
use crate::error::{Result, RuntimeError};

fn io(what: &Path) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
    move |err| RuntimeError::Io {
        path: what.to_path_buf(),
        err,
    }
}

/// Writes what a walk sends as tar entries under the top entry's name.
pub struct TarSink<W: Write> {
    tar: tar::Builder<W>,
    top: PathBuf,
}

impl<W: Write> TarSink<W> {
    /// Entries are named `top/…`.
    pub fn new(out: W, top: PathBuf) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        TarSink { tar, top }
    }

    /// End the archive.
    pub fn finish(self) -> Result<()> {
        let mut out = self.tar.into_inner().map_err(io(Path::new("-")))?;
        match out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(io(Path::new("-"))),
        }
    }

    fn header(&self, m: &Meta, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.perm());
        h.set_uid(u64::from(m.uid));
        h.set_gid(u64::from(m.gid));
        h.set_mtime(m.mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    fn name(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.top.clone()
        } else {
            self.top.join(rel)
        }
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, rel: &Path, m: &Meta) -> Result<()> {
        let mut h = self.header(m, tar::EntryType::Directory);
        let name = self.name(rel);
        self.tar
            .append_data(&mut h, &name, std::io::empty())
            .map_err(io(&name))
    }

    fn dir_done(&mut self, _: &Path, _: &Meta) -> Result<()> {
        Ok(())
    }

    fn file(&mut self, rel: &Path, m: &Meta, content: Content<'_>) -> Result<u64> {
        let mut h = self.header(m, tar::EntryType::Regular);
        h.set_size(m.size);
        let name = self.name(rel);
        let reader: Box<dyn Read + '_> = match content {
            Content::File(f) => Box::new(f.take(m.size)),
            Content::Stream(r) => Box::new(r.take(m.size)),
        };
        self.tar
            .append_data(&mut h, &name, reader)
            .map_err(io(&name))?;
        Ok(m.size)
    }

    fn symlink(&mut self, rel: &Path, to: &Path, m: &Meta) -> Result<()> {
        let mut h = self.header(m, tar::EntryType::Symlink);
        let name = self.name(rel);
        self.tar.append_link(&mut h, &name, to).map_err(io(&name))
    }

    fn special(&mut self, rel: &Path, m: &Meta) -> Result<()> {
        let kind = match m.mode & libc::S_IFMT {
            libc::S_IFCHR => tar::EntryType::Char,
            libc::S_IFBLK => tar::EntryType::Block,
            libc::S_IFIFO => tar::EntryType::Fifo,
            _ => return Ok(()),
        };
        let mut h = self.header(m, kind);
        let _ = h.set_device_major(libc::major(m.rdev));
        let _ = h.set_device_minor(libc::minor(m.rdev));
        let name = self.name(rel);
        self.tar
            .append_data(&mut h, &name, std::io::empty())
            .map_err(io(&name))
    }
}

/// Unpack a tar stream into `sink`. Names are made relative; a name whose
/// `..` climbs above the destination is refused (the sink could not write
/// there anyway, but the user should hear of it).
pub fn read(input: impl Read, sink: &mut dyn Sink) -> Result<Stats> {
    let mut archive = tar::Archive::new(input);
    let mut stats = Stats::default();
    let mut dirs = Vec::new();
    let stdin = Path::new("-");
    for entry in archive.entries().map_err(io(stdin))? {
        let mut entry = entry.map_err(io(stdin))?;
        let raw = entry.path().map_err(io(stdin))?.into_owned();
        let rel = super::confine(&raw)?;
        let h = entry.header();
        let m = Meta {
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            mtime_nsec: 0,
            size: entry.size(),
            rdev: 0,
        };
        let kind = h.entry_type();
        stats.entries += 1;
        match kind {
            tar::EntryType::Directory => {
                sink.dir(&rel, &m)?;
                dirs.push((rel, m));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                stats.bytes += sink.file(&rel, &m, Content::Stream(&mut entry))?;
            }
            tar::EntryType::Symlink => {
                let to = entry.link_name().map_err(io(&raw))?.unwrap_or_default();
                sink.symlink(&rel, &to, &m)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (maj, min) = (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                let fmt = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let m = Meta {
                    mode: fmt | (m.mode & 0o7777),
                    rdev: libc::makedev(maj, min),
                    ..m
                };
                sink.special(&rel, &m)?;
            }
            _ => {
                eprintln!(
                    "kiln: warning: {}: skipped ({kind:?} entries are not copied)",
                    raw.display()
                );
            }
        }
    }
    // Deepest first, so a read-only directory is closed after its children.
    for (rel, m) in dirs.iter().rev() {
        sink.dir_done(rel, m)?;
    }
    Ok(stats)
}
