//! Reading Python wheels: every member hashed (and ELF files fingerprinted)
//! so an installed distribution is recognised from its files after its
//! `*.dist-info` is deleted. Wheels never teach version templates: their
//! vendored libraries are what the templates are meant to identify.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_catalog::Ecosystem;
use kiln_fingerprint::ElfInfo;

use crate::deb::{bad, file_sha256, DebFile, DebRecord, FileKind};
use crate::error::{RainbowError, Result};

/// Largest member read (a wheel member is at most this big uncompressed).
const MAX_MEMBER: u64 = 1 << 30;

/// Read a `.whl` into the same record a `.deb` gives (ecosystem `python`;
/// paths relative to `site-packages`, as the wheel stores them).
pub fn read_wheel(path: &Path) -> Result<DebRecord> {
    let io = |e: std::io::Error| RainbowError::Io {
        path: path.to_path_buf(),
        err: e,
    };
    let archive_sha256 = file_sha256(path)?;
    let file = File::open(path).map_err(io)?;
    let mut zip =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| bad(path, e.to_string()))?;
    let mut files = Vec::new();
    let mut metadata: Option<String> = None;
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let mut m = zip.by_index(i).map_err(|e| bad(path, e.to_string()))?;
        if m.is_dir() {
            continue;
        }
        let Some(name) = m.enclosed_name().map(|p| p.to_string_lossy().into_owned()) else {
            return Err(bad(
                path,
                format!("member {:?} climbs out of the wheel", m.name()),
            ));
        };
        if m.size() > MAX_MEMBER {
            return Err(bad(
                path,
                format!("{name}: {} bytes is too large", m.size()),
            ));
        }
        buf.clear();
        (&mut m)
            .take(MAX_MEMBER + 1)
            .read_to_end(&mut buf)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        if buf.len() as u64 > MAX_MEMBER {
            return Err(bad(
                path,
                format!("{name}: inflates beyond {MAX_MEMBER} bytes"),
            ));
        }
        if name.ends_with(".dist-info/METADATA") && name.matches('/').count() == 1 {
            metadata = Some(String::from_utf8_lossy(&buf).into_owned());
        }
        let elf = ElfInfo::parse(&buf).ok().flatten();
        let functions = if elf.is_some() {
            kiln_fingerprint::functions::file_function_hashes(&buf)
        } else {
            Vec::new()
        };
        files.push(DebFile {
            path: name,
            kind: FileKind::File,
            mode: m.unix_mode().unwrap_or(0o644) & 0o7777,
            size: buf.len() as u64,
            digest: Some(kiln_tree::content_digest(&buf)),
            link_target: None,
            elf,
            conffile: false,
            strings: Vec::new(),
            templates: Vec::new(),
            functions,
        });
    }
    let metadata = metadata.ok_or_else(|| bad(path, "no *.dist-info/METADATA member"))?;
    let field = |k: &str| {
        metadata
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(':')))
            .map(|v| v.trim().to_string())
    };
    let name = field("Name").ok_or_else(|| bad(path, "METADATA has no Name"))?;
    let version = field("Version").ok_or_else(|| bad(path, "METADATA has no Version"))?;
    let name = Ecosystem::Python.normalize_name(&name);
    // The wheel's tag (`cp311-cp311-manylinux_2_17_x86_64`) tells builds apart.
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = stem.splitn(3, '-').nth(2).unwrap_or("any").to_string();
    Ok(DebRecord {
        origin: path.to_path_buf(),
        archive_sha256,
        ecosystem: Ecosystem::Python,
        source: name.clone(),
        source_version: version.clone(),
        name,
        version,
        arch: tag,
        depends: Vec::new(),
        files,
    })
}

/// `pip download --no-deps` each `NAME==VERSION` into `dest` (binary
/// wheels only), through the machine's own pip configuration.
pub fn pip_download(specs: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .ok_or_else(|| {
            RainbowError::Apt("no python3 to run pip with; install python3-pip".into())
        })?;
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
        ])
        .arg(dest)
        .args(specs)
        .output()
        .map_err(|e| RainbowError::Apt(format!("cannot run pip: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("No module named pip") {
            " (install pip: apt-get install python3-pip)"
        } else {
            ""
        };
        return Err(RainbowError::Apt(format!(
            "pip download {}: {}{hint}",
            specs.join(" "),
            stderr.trim()
        )));
    }
    crate::deb::expand_paths(&[dest.to_path_buf()], "whl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = |s| Ecosystem::Python.normalize_name(s);
        assert_eq!(n("psycopg2_binary"), "psycopg2-binary");
        assert_eq!(n("Pillow"), "pillow");
        assert_eq!(n("zope.interface"), "zope-interface");
    }

    #[test]
    fn hostile_wheels_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("evil-1.0-py3-none-any.whl");
        {
            let mut z = zip::ZipWriter::new(File::create(&p).unwrap());
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("../../etc/evil", o).unwrap();
            std::io::Write::write_all(&mut z, b"x").unwrap();
            z.finish().unwrap();
        }
        let e = read_wheel(&p).unwrap_err().to_string();
        assert!(e.contains("climbs out"), "{e}");
        std::fs::write(&p, b"not a zip").unwrap();
        let e = read_wheel(&p).unwrap_err().to_string();
        assert!(e.contains("evil-1.0"), "{e}");
    }
}
