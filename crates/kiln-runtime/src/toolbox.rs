//! The toolbox a debug session runs: an image unpacked once into a cache
//! keyed by its digest, a directory used where it is, or the host's
//! static busybox with a link per applet.
//!
//! A cached toolbox is never written after it is made: sessions bind it
//! read-only, so one cache serves concurrent sessions.

use std::path::{Path, PathBuf};

use kiln_tree::Tree;

use crate::error::{Result, RuntimeError};

/// Where busybox-static installs the binary (and the usrmerge path).
const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The usual directories of executables, as a root lays them out (and as
/// a chroot-mode session searches them before the toolbox's).
pub(crate) const SYSTEM_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A root filesystem of tools.
#[derive(Debug, Clone)]
pub struct Toolbox {
    /// Its root on the host.
    pub root: PathBuf,
    /// Directories of executables, as `PATH` lists them inside a session
    /// whose root is the toolbox.
    pub path: Vec<String>,
}

impl Toolbox {
    fn new(root: PathBuf) -> Toolbox {
        let path = SYSTEM_PATH
            .iter()
            .filter(|d| root.join(d.trim_start_matches('/')).is_dir())
            .map(|d| d.to_string())
            .collect();
        Toolbox { root, path }
    }

    /// A directory used as it is.
    pub fn dir(root: &Path) -> Result<Toolbox> {
        if !root.is_dir() {
            return Err(RuntimeError::Toolbox(format!(
                "{}: toolbox is not a directory",
                root.display()
            )));
        }
        Ok(Toolbox::new(root.to_path_buf()))
    }

    /// The toolbox cached under `key` in `cache`, if it was made before.
    pub fn cached(cache: &Path, key: &str) -> Option<Toolbox> {
        let root = cache.join(safe_key(key));
        root.is_dir().then(|| Toolbox::new(root))
    }

    /// Unpack `tree` into `cache` under `key`, atomically: the directory
    /// appears whole or not at all, and a concurrent maker's copy wins.
    pub fn unpack(cache: &Path, key: &str, tree: &Tree) -> Result<Toolbox> {
        make(cache, key, |dir| {
            crate::rootfs::unpack(tree, dir, &|_| true)
        })
    }

    /// The host's static busybox (Debian's `busybox-static`), with a link
    /// for every applet, cached under the binary's digest.
    pub fn busybox(cache: &Path) -> Result<Toolbox> {
        let bin = BUSYBOX
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or_else(|| no_toolbox("busybox is not installed"))?;
        let data = std::fs::read(bin).map_err(|err| RuntimeError::Io {
            path: bin.to_path_buf(),
            err,
        })?;
        if !is_static(&data) {
            return Err(no_toolbox(&format!(
                "{} is linked dynamically (Debian's busybox, not busybox-static)",
                bin.display()
            )));
        }
        let key = format!("busybox-{}", hex::encode(sha256(&data)));
        if let Some(t) = Toolbox::cached(cache, &key) {
            return Ok(t);
        }
        let applets = applets(bin)?;
        make(cache, &key, |dir| write_busybox(dir, &data, &applets))
    }
}

fn no_toolbox(why: &str) -> RuntimeError {
    RuntimeError::Toolbox(format!(
        "no toolbox: {why}; install it (apt-get install busybox-static) or pass --toolbox IMAGE"
    ))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// An ELF file without a program interpreter runs in any root.
fn is_static(data: &[u8]) -> bool {
    goblin::elf::Elf::parse(data).is_ok_and(|e| e.interpreter.is_none())
}

fn applets(bin: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(bin)
        .arg("--list")
        .output()
        .map_err(|err| RuntimeError::Io {
            path: bin.to_path_buf(),
            err,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
        .map(String::from)
        .collect())
}

/// `bin/busybox` and a relative link per applet, so the links work both
/// as the session's root and mounted at `/.kiln`.
fn write_busybox(dir: &Path, data: &[u8], applets: &[String]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| RuntimeError::Io { path, err }
    };
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let exe = bin.join("busybox");
    std::fs::write(&exe, data).map_err(io(&exe))?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).map_err(io(&exe))?;
    for a in applets {
        let link = bin.join(a);
        std::os::unix::fs::symlink("busybox", &link).map_err(io(&link))?;
    }
    Ok(())
}

fn safe_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Fill a fresh directory beside the final one and rename it into place.
fn make(cache: &Path, key: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<Toolbox> {
    let io = |err| RuntimeError::Io {
        path: cache.to_path_buf(),
        err,
    };
    std::fs::create_dir_all(cache).map_err(io)?;
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-")
        .tempdir_in(cache)
        .map_err(io)?;
    let staged = tmp.path().join("root");
    fill(&staged)?;
    let dest = cache.join(safe_key(key));
    if std::fs::rename(&staged, &dest).is_err() && !dest.is_dir() {
        return Err(RuntimeError::Io {
            path: dest,
            err: std::io::Error::last_os_error(),
        });
    }
    Ok(Toolbox::new(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_file_names() {
        assert_eq!(safe_key("sha256:ab/../c"), "sha256-ab----c");
    }

    #[test]
    fn a_made_toolbox_is_found_again() {
        let cache = tempfile::tempdir().unwrap();
        let t = make(cache.path(), "k", |d| {
            std::fs::create_dir_all(d.join("bin")).map_err(|err| RuntimeError::Io {
                path: d.into(),
                err,
            })
        })
        .unwrap();
        assert_eq!(t.path, vec!["/bin".to_string()]);
        assert_eq!(Toolbox::cached(cache.path(), "k").unwrap().root, t.root);
        // Only the final directory is left.
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    }
}
