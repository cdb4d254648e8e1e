//! Reading npm package tarballs (`npm pack` output): every file hashed so
//! an installed package is recognised from its files after its
//! `package.json` is deleted or edited. The tarball's top directory
//! (`package/`) is dropped, so paths (`/lib/index.js`) are rooted at the
//! package's directory in `node_modules`, where identification looks for
//! them.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_catalog::Ecosystem;

use crate::deb::{bad, DebFile, DebRecord, FileKind, HashingReader};
use crate::error::{RainbowError, Result};

/// Largest file read from a tarball.
const MAX_MEMBER: u64 = 256 << 20;

/// Is this an npm tarball (`NAME-VERSION.tgz`)?
pub fn is_tarball(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "tgz")
}

/// Read an npm tarball into a package record (ecosystem `npm`).
pub fn read_tarball(path: &Path) -> Result<DebRecord> {
    let io = |e: std::io::Error| RainbowError::Io {
        path: path.to_path_buf(),
        err: e,
    };
    // One pass: the tarball's digest is taken as it is inflated.
    let mut hashing = HashingReader::new(BufReader::new(File::open(path).map_err(io)?));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&mut hashing));
    let mut files = Vec::new();
    let mut manifest: Option<serde_json::Value> = None;
    for entry in archive.entries().map_err(|e| bad(path, e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(path, e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|e| bad(path, e.to_string()))?
            .into_owned();
        let name = relative(&raw)
            .ok_or_else(|| bad(path, format!("member {raw:?} climbs out of the package")))?;
        let mut buf = Vec::new();
        (&mut entry)
            .take(MAX_MEMBER + 1)
            .read_to_end(&mut buf)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        if buf.len() as u64 > MAX_MEMBER {
            return Err(bad(path, format!("{name}: larger than {MAX_MEMBER} bytes")));
        }
        if name == "/package.json" {
            manifest = serde_json::from_slice(&buf).ok();
        }
        files.push(DebFile {
            path: name,
            kind: FileKind::File,
            mode: entry.header().mode().unwrap_or(0o644) & 0o7777,
            size: buf.len() as u64,
            digest: Some(kiln_tree::content_digest(&buf)),
            link_target: None,
            elf: None,
            conffile: false,
            strings: Vec::new(),
            templates: Vec::new(),
            functions: Vec::new(),
        });
    }
    drop(archive);
    let archive_sha256 = hashing.finish().map_err(io)?;
    let m = manifest.ok_or_else(|| bad(path, "no readable package/package.json"))?;
    let field = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let name = field("name").ok_or_else(|| bad(path, "package.json has no name"))?;
    let version = field("version").ok_or_else(|| bad(path, "package.json has no version"))?;
    Ok(DebRecord {
        origin: path.to_path_buf(),
        archive_sha256,
        ecosystem: Ecosystem::Npm,
        source: name.clone(),
        source_version: version.clone(),
        name,
        version,
        arch: "all".into(),
        depends: Vec::new(),
        files,
    })
}

/// The member's path below the tarball's top directory; `None` if it
/// would leave the package.
fn relative(raw: &Path) -> Option<String> {
    use std::path::Component;
    let mut parts = raw.components();
    parts.next()?;
    let mut out = Vec::new();
    for c in parts {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then(|| format!("/{}", out.join("/")))
}

/// `npm pack` each `NAME@VERSION` into `dest`, through the machine's npm
/// configuration (registry, proxy, cache).
pub fn npm_pack(specs: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
    for chunk in specs.chunks(64) {
        let out = Command::new("npm")
            .args(["pack", "--silent", "--ignore-scripts", "--pack-destination"])
            .arg(dest)
            .args(chunk)
            .output()
            .map_err(|e| RainbowError::Apt(format!("cannot run npm (install npm): {e}")))?;
        if !out.status.success() {
            return Err(RainbowError::Apt(format!(
                "npm pack {}: {}",
                chunk.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    crate::deb::expand_paths(&[dest.to_path_buf()], "tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_stay_inside_the_package() {
        assert_eq!(
            relative(Path::new("package/lib/index.js")).as_deref(),
            Some("/lib/index.js")
        );
        assert_eq!(
            relative(Path::new("node/index.js")).as_deref(),
            Some("/index.js")
        );
        assert_eq!(relative(Path::new("package/../../etc/passwd")), None);
        assert_eq!(relative(Path::new("package")), None);
    }
}
