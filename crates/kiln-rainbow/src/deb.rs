//! Reading `.deb` archives: the `ar` container, `control.tar.*` (control
//! paragraph, conffiles) and `data.tar.*` (every file, hashed and, for ELF
//! files, fingerprinted) in one streaming pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use kiln_catalog::{deb822, Ecosystem};
use kiln_fingerprint::ElfInfo;
use sha2::{Digest as _, Sha256};

use crate::error::{RainbowError, Result};

/// Largest file read whole for ELF fingerprinting; larger files are hashed
/// as they stream.
const MAX_BUFFERED_FILE: u64 = 512 << 20;

/// What a `.deb` member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A hard link to another file of the package.
    Hardlink,
}

impl FileKind {
    /// One-letter code stored in the DB.
    pub fn code(self) -> &'static str {
        match self {
            FileKind::File => "f",
            FileKind::Symlink => "l",
            FileKind::Hardlink => "h",
        }
    }
}

/// One file of a package.
#[derive(Debug, Clone)]
pub struct DebFile {
    /// Absolute path, as installed (`/usr/bin/curl`).
    pub path: String,
    /// Kind.
    pub kind: FileKind,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes (regular files).
    pub size: u64,
    /// The content's digest (regular files and hard links).
    pub digest: Option<kiln_tree::ContentDigest>,
    /// Link target (symlinks, hard links).
    pub link_target: Option<String>,
    /// ELF identity, for ELF files.
    pub elf: Option<ElfInfo>,
    /// Listed in `conffiles`.
    pub conffile: bool,
    /// Dotted-number strings of an ELF file (for template specificity).
    pub strings: Vec<String>,
    /// Version templates this file teaches (see [`crate::learn`]).
    pub templates: Vec<crate::learn::Template>,
    /// Distinct normalised function hashes (ELF files and static archives).
    pub functions: Vec<u64>,
}

/// Everything kiln records of one binary package.
#[derive(Debug, Clone)]
pub struct DebRecord {
    /// Where it was read from.
    pub origin: PathBuf,
    /// SHA-256 of the `.deb` itself.
    pub archive_sha256: String,
    /// Debian, or Python for wheels.
    pub ecosystem: Ecosystem,
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: String,
    /// `Architecture`.
    pub arch: String,
    /// Source package name.
    pub source: String,
    /// Source package version.
    pub source_version: String,
    /// `Depends` and `Pre-Depends` package names.
    pub depends: Vec<String>,
    /// Files, in archive order (directories are not recorded).
    pub files: Vec<DebFile>,
}

/// Reads through to `inner` while hashing, so the archive's own digest
/// costs no second pass.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Read what the consumer left (trailers, padding), so the digest
    /// covers the whole input, and return it as hex.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

/// The SHA-256 of a whole file, as hex: an archive's identity in the DB.
pub(crate) fn file_sha256(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| RainbowError::Io {
        path: path.into(),
        err: e,
    })?;
    HashingReader::new(BufReader::new(file))
        .finish()
        .map_err(|e| RainbowError::Io {
            path: path.into(),
            err: e,
        })
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> RainbowError {
    RainbowError::BadDeb {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Pick the decompressor a member name calls for.
fn decoder<'a, R: Read + 'a>(name: &str, r: R, path: &Path) -> Result<Box<dyn Read + 'a>> {
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(r))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(r).map_err(|e| bad(path, e.to_string()))?)
    } else if name.ends_with(".bz2") {
        Box::new(bzip2::read::BzDecoder::new(r))
    } else if name.ends_with(".tar") {
        Box::new(r)
    } else {
        return Err(bad(path, format!("unsupported member compression: {name}")));
    })
}

/// Read a `.deb` in one pass.
pub fn read_deb(path: &Path) -> Result<DebRecord> {
    let file = File::open(path).map_err(|e| RainbowError::Io {
        path: path.into(),
        err: e,
    })?;
    let mut hashing = HashingReader {
        inner: BufReader::with_capacity(256 * 1024, file),
        hasher: Sha256::new(),
    };
    let mut control: Option<deb822::Paragraph> = None;
    let mut conffiles: Vec<String> = Vec::new();
    let mut files: Option<Vec<DebFile>> = None;
    {
        let mut archive = ar::Archive::new(&mut hashing);
        while let Some(member) = archive.next_entry() {
            let mut member = member.map_err(|e| bad(path, format!("corrupt ar container: {e}")))?;
            let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
            if name == "debian-binary" {
                let mut v = String::new();
                member
                    .read_to_string(&mut v)
                    .map_err(|e| bad(path, e.to_string()))?;
                if !v.starts_with("2.") {
                    return Err(bad(path, format!("unsupported deb format {:?}", v.trim())));
                }
            } else if name.starts_with("control.tar") {
                let (c, cf) = read_control(decoder(&name, &mut member, path)?, path)?;
                control = Some(c);
                conffiles = cf;
            } else if name.starts_with("data.tar") {
                files = Some(read_data(decoder(&name, &mut member, path)?, path)?);
            }
            // Drain what a decoder left (padding) so the archive hash sees all.
            io::copy(&mut member, &mut io::sink()).map_err(|e| bad(path, e.to_string()))?;
        }
    }
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| bad(path, e.to_string()))?;
    let control = control.ok_or_else(|| bad(path, "no control.tar member"))?;
    let mut files = files.ok_or_else(|| bad(path, "no data.tar member"))?;
    for f in &mut files {
        f.conffile = conffiles.iter().any(|c| c == &f.path);
    }
    let field = |k: &str| control.get(k).map(str::to_string);
    let name = field("Package").ok_or_else(|| bad(path, "control has no Package field"))?;
    let version = field("Version").ok_or_else(|| bad(path, "control has no Version field"))?;
    let arch = field("Architecture").unwrap_or_else(|| "all".into());
    let (source, source_version) = match control.get("Source") {
        Some(s) => {
            let (n, v) = deb822::split_source(s);
            (n, v.unwrap_or_else(|| version.clone()))
        }
        None => (name.clone(), version.clone()),
    };
    // What the ELF files teach about the upstream version.
    let upstream = crate::project::upstream_version(&source_version);
    for f in &mut files {
        let Some(clues) = f.elf.as_mut().and_then(|e| e.clues.take()) else {
            continue;
        };
        if let Some(up) = &upstream {
            f.templates = crate::learn::observe(up, &clues);
        }
        f.strings = clues.strings;
    }
    let depends = ["Pre-Depends", "Depends"]
        .iter()
        .filter_map(|k| control.get(k))
        .flat_map(|d| d.split([',', '|']))
        .filter_map(|d| d.split_whitespace().next())
        .map(|d| d.split(':').next().unwrap_or(d).to_string())
        .collect();
    Ok(DebRecord {
        origin: path.to_path_buf(),
        archive_sha256: hex::encode(hashing.hasher.finalize()),
        ecosystem: Ecosystem::Deb,
        name,
        version,
        arch,
        source,
        source_version,
        depends,
        files,
    })
}

fn read_control(r: Box<dyn Read + '_>, path: &Path) -> Result<(deb822::Paragraph, Vec<String>)> {
    let mut tar = tar::Archive::new(r);
    let mut control = None;
    let mut conffiles = Vec::new();
    for entry in tar
        .entries()
        .map_err(|e| bad(path, format!("control.tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(path, format!("control.tar: {e}")))?;
        let name = kiln_tree::path::clean(&String::from_utf8_lossy(&entry.path_bytes()))
            .unwrap_or_default();
        let mut text = String::new();
        match name.as_str() {
            "control" | "conffiles" => {
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| bad(path, format!("control.tar: {name}: {e}")))?;
            }
            _ => continue,
        }
        if name == "control" {
            let paras = deb822::parse(&text).map_err(|e| bad(path, format!("control: {e}")))?;
            control = paras.into_iter().next();
        } else {
            conffiles = text
                .lines()
                .map(|l| l.trim())
                // "remove-on-upgrade /etc/x" lines carry a flag first.
                .filter_map(|l| l.split_whitespace().last())
                .filter(|l| l.starts_with('/'))
                .map(str::to_string)
                .collect();
        }
    }
    Ok((
        control.ok_or_else(|| bad(path, "control.tar has no control file"))?,
        conffiles,
    ))
}

fn read_data(r: Box<dyn Read + '_>, path: &Path) -> Result<Vec<DebFile>> {
    let mut tar = tar::Archive::new(r);
    let mut files = Vec::new();
    let mut buf = Vec::new();
    for entry in tar
        .entries()
        .map_err(|e| bad(path, format!("data.tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(path, format!("data.tar: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(clean) = kiln_tree::path::clean(&raw) else {
            return Err(bad(
                path,
                format!("data.tar: {raw:?} climbs out of the root"),
            ));
        };
        if clean.is_empty() {
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => FileKind::File,
            tar::EntryType::Symlink => FileKind::Symlink,
            tar::EntryType::Link => FileKind::Hardlink,
            _ => continue,
        };
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let size = header.size().unwrap_or(0);
        let link_target = entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut f = DebFile {
            path: format!("/{clean}"),
            kind,
            mode,
            size: if kind == FileKind::File { size } else { 0 },
            digest: None,
            link_target: match kind {
                FileKind::Hardlink => link_target
                    .and_then(|t| kiln_tree::path::clean(&t))
                    .map(|t| format!("/{t}")),
                _ => link_target,
            },
            elf: None,
            conffile: false,
            strings: Vec::new(),
            templates: Vec::new(),
            functions: Vec::new(),
        };
        if kind == FileKind::File {
            if size <= MAX_BUFFERED_FILE {
                buf.clear();
                entry
                    .read_to_end(&mut buf)
                    .map_err(|e| bad(path, format!("data.tar: {clean}: {e}")))?;
                f.digest = Some(kiln_tree::content_digest(&buf));
                // A corrupt ELF in a package is recorded without ELF facts.
                f.elf = ElfInfo::parse_with(&buf, Some(&|_: &str| true))
                    .ok()
                    .flatten();
                if f.elf.is_some() || clean.ends_with(".a") {
                    f.functions = kiln_fingerprint::functions::file_function_hashes(&buf);
                }
            } else {
                let (d, _) = kiln_tree::content_digest_reader(&mut entry)
                    .map_err(|e| bad(path, format!("data.tar: {clean}: {e}")))?;
                f.digest = Some(d);
            }
        }
        files.push(f);
    }
    // Hard links share their target's content.
    let by_path: std::collections::HashMap<String, ([u8; 32], u64)> = files
        .iter()
        .filter_map(|f| f.digest.map(|h| (f.path.clone(), (h, f.size))))
        .collect();
    for f in &mut files {
        if f.kind == FileKind::Hardlink {
            if let Some((h, s)) = f.link_target.as_ref().and_then(|t| by_path.get(t)) {
                f.digest = Some(*h);
                f.size = *s;
            }
        }
    }
    Ok(files)
}

/// Expand `--deb` (or `--wheel`) arguments: files as given, directories
/// to the files with `extension` directly inside them (sorted, for
/// reproducible builds). A path that does not exist is an error naming it.
pub fn expand_paths(paths: &[PathBuf], extension: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| RainbowError::Io {
            path: p.clone(),
            err: e,
        })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| RainbowError::Io {
                    path: p.clone(),
                    err: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.extension().is_some_and(|x| x == extension))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
