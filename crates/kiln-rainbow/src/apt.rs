//! Fetching `.deb` files through the machine's own apt configuration
//! (`apt-get download`), never a hard-coded mirror.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{RainbowError, Result};

/// `NAME` or `NAME=VERSION`, as on the `apt-get` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSpec {
    /// Package name (may carry `:arch`).
    pub name: String,
    /// Exact version, if pinned.
    pub version: Option<String>,
}

impl AptSpec {
    /// Parse `NAME[=VERSION]`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('=') {
            Some((n, v)) => AptSpec {
                name: n.to_string(),
                version: Some(v.to_string()),
            },
            None => AptSpec {
                name: s.to_string(),
                version: None,
            },
        }
    }
}

/// Every version apt knows of `name` (from `apt-cache madison`).
pub fn known_versions(name: &str) -> Result<Vec<String>> {
    let out = Command::new("apt-cache")
        .args(["madison", name])
        .output()
        .map_err(|e| {
            RainbowError::Apt(format!(
                "cannot run apt-cache: {e} (is this a Debian system?)"
            ))
        })?;
    if !out.status.success() {
        return Err(RainbowError::Apt(format!(
            "apt-cache madison {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut versions: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() >= 3
            && cols[2].ends_with("Packages")
            && !versions.iter().any(|v| v == cols[1])
        {
            versions.push(cols[1].to_string());
        }
    }
    if versions.is_empty() {
        return Err(RainbowError::Apt(format!(
            "apt knows no versions of {name} (run `apt-get update` first?)"
        )));
    }
    Ok(versions)
}

/// Download the `.deb` files for `specs` into `dest`, returning their paths.
pub fn download(specs: &[AptSpec], all_versions: bool, dest: &Path) -> Result<Vec<PathBuf>> {
    let mut args: Vec<String> = Vec::new();
    for s in specs {
        match (&s.version, all_versions) {
            (Some(v), _) => args.push(format!("{}={}", s.name, v)),
            (None, true) => {
                for v in known_versions(&s.name)? {
                    args.push(format!("{}={}", s.name, v));
                }
            }
            (None, false) => args.push(s.name.clone()),
        }
    }
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new("apt-get")
        .arg("download")
        .args(&args)
        .current_dir(dest)
        .output()
        .map_err(|e| {
            RainbowError::Apt(format!(
                "cannot run apt-get: {e} (is this a Debian system?)"
            ))
        })?;
    if !out.status.success() {
        return Err(RainbowError::Apt(format!(
            "apt-get download failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    crate::deb::expand_paths(&[dest.to_path_buf()], "deb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            AptSpec::parse("libssl3=3.0.17-1~deb12u2"),
            AptSpec {
                name: "libssl3".into(),
                version: Some("3.0.17-1~deb12u2".into())
            }
        );
        assert_eq!(AptSpec::parse("zlib1g").version, None);
    }
}
