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

/// One package version the machine's apt indexes offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture (`amd64`, `all`, …).
    pub arch: String,
    /// Archive section without its component (`libs` for `contrib/libs`).
    pub section: String,
    /// Download size in bytes.
    pub size: u64,
}

impl Available {
    /// The `apt-get download` argument for exactly this version.
    pub fn spec(&self) -> String {
        format!("{}:{}={}", self.name, self.arch, self.version)
    }
}

/// Every package version in the machine's apt `Packages` indexes (the
/// configured sources, read with apt's own tools, so compressed lists
/// and any mirror work), for the native architecture and `all`.
pub fn available() -> Result<Vec<Available>> {
    let native = run("dpkg", &["--print-architecture"])?;
    let native = native.trim();
    let targets = run(
        "apt-get",
        &[
            "indextargets",
            "--format",
            "$(FILENAME)",
            "Created-By: Packages",
        ],
    )?;
    let mut out = Vec::new();
    for index in targets.lines().filter(|l| !l.trim().is_empty()) {
        let text = run("/usr/lib/apt/apt-helper", &["cat-file", index])?;
        let paragraphs = kiln_catalog::deb822::parse(&text)
            .map_err(|e| RainbowError::Apt(format!("{index}: {e}")))?;
        for p in paragraphs {
            let field = |n: &str| p.get(n).unwrap_or_default().to_string();
            let arch = field("Architecture");
            if arch != native && arch != "all" {
                continue;
            }
            let section = field("Section");
            out.push(Available {
                name: field("Package"),
                version: field("Version"),
                arch,
                section: section.rsplit('/').next().unwrap_or_default().to_string(),
                size: p.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
            });
        }
    }
    out.sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
    out.dedup_by(|a, b| (&a.name, &a.version, &a.arch) == (&b.name, &b.version, &b.arch));
    Ok(out)
}

/// What to take from the indexes: packages in any of `sections`, or whose
/// name matches any of `patterns` (shell globs); every version with
/// `all_versions`, else the newest of each (name, arch).
pub fn select(
    available: &[Available],
    sections: &[String],
    patterns: &[String],
    all_versions: bool,
) -> Result<Vec<Available>> {
    let mut globs = globset::GlobSetBuilder::new();
    for p in patterns {
        globs.add(
            globset::Glob::new(p)
                .map_err(|e| RainbowError::Apt(format!("--apt-pattern {p}: {e}")))?,
        );
    }
    let globs = globs
        .build()
        .map_err(|e| RainbowError::Apt(format!("--apt-pattern: {e}")))?;
    let wanted = |a: &Available| sections.contains(&a.section) || globs.is_match(&a.name);
    let mut picked: Vec<Available> = available.iter().filter(|a| wanted(a)).cloned().collect();
    if !all_versions {
        picked.sort_by(|a, b| {
            (&a.name, &a.arch)
                .cmp(&(&b.name, &b.arch))
                .then_with(|| kiln_catalog::version::dpkg_cmp(&b.version, &a.version))
        });
        picked.dedup_by(|a, b| (&a.name, &a.arch) == (&b.name, &b.arch));
    }
    Ok(picked)
}

/// Download `specs` (`apt-get download` arguments) into `dest`, `jobs`
/// `apt-get` processes at a time, calling `done` with each batch's files
/// (and the packages it could not fetch) as soon as that batch is
/// complete, so the caller can ingest while the rest downloads. Batches
/// keep their order.
pub fn download_batches(
    specs: &[String],
    dest: &Path,
    jobs: usize,
    batch: usize,
    done: &mut dyn FnMut(Fetched) -> Result<()>,
) -> Result<()> {
    let chunks: Vec<&[String]> = specs.chunks(batch.max(1)).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<Fetched>)>(jobs);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..jobs.max(1) {
            let (tx, next, chunks) = (tx.clone(), &next, &chunks);
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(chunk) = chunks.get(i) else { break };
                let dir = dest.join(format!("batch-{i:06}"));
                let got = std::fs::create_dir_all(&dir)
                    .map_err(|err| RainbowError::Io {
                        path: dir.clone(),
                        err,
                    })
                    .and_then(|_| fetch(chunk, &dir));
                if tx.send((i, got)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Hand batches on in order; a failure stops the rest.
        let mut pending = std::collections::BTreeMap::new();
        let mut want = 0;
        for (i, got) in rx {
            pending.insert(i, got);
            while let Some(got) = pending.remove(&want) {
                let files = match got {
                    Ok(f) => f,
                    Err(e) => {
                        next.store(chunks.len(), std::sync::atomic::Ordering::SeqCst);
                        return Err(e);
                    }
                };
                done(files)?;
                want += 1;
            }
        }
        Ok(())
    })
}

/// Files a batch fetched, and the packages it could not fetch (with
/// apt's reason).
pub type Fetched = (Vec<PathBuf>, Vec<(String, String)>);

/// One `apt-get download` of `args` into `dir`; when the batch fails, each
/// package again on its own, so one missing archive costs only itself.
fn fetch(args: &[String], dir: &Path) -> Result<Fetched> {
    let mut failed = Vec::new();
    if let Err(why) = apt_get_download(args, dir)? {
        if args.len() == 1 {
            failed.push((args[0].clone(), why));
        } else {
            for a in args {
                if let Err(why) = apt_get_download(std::slice::from_ref(a), dir)? {
                    failed.push((a.clone(), why));
                }
            }
        }
    }
    Ok((
        crate::deb::expand_paths(&[dir.to_path_buf()], "deb")?,
        failed,
    ))
}

/// Run `apt-get download`: `Err` only when apt-get cannot run; apt's own
/// failure is the inner `Err` with its message.
fn apt_get_download(args: &[String], dir: &Path) -> Result<std::result::Result<(), String>> {
    let out = Command::new("apt-get")
        .arg("download")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            RainbowError::Apt(format!(
                "cannot run apt-get: {e} (is this a Debian system?)"
            ))
        })?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}

/// A command's stdout, or an error naming it.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        RainbowError::Apt(format!(
            "cannot run {program}: {e} (is this a Debian system?)"
        ))
    })?;
    if !out.status.success() {
        return Err(RainbowError::Apt(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avail(name: &str, version: &str, section: &str) -> Available {
        Available {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            section: section.into(),
            size: 10,
        }
    }

    #[test]
    fn selection_by_section_and_pattern_newest_unless_all() {
        let all = vec![
            avail("libfoo1", "1.0-1", "libs"),
            avail("libfoo1", "1.0-2", "libs"),
            avail("foo-utils", "1.0-2", "utils"),
            avail("libbar-dev", "2.0-1", "libdevel"),
        ];
        let names = |v: Vec<Available>| -> Vec<String> {
            v.iter()
                .map(|a| format!("{}={}", a.name, a.version))
                .collect()
        };
        let libs = select(&all, &["libs".into()], &[], false).unwrap();
        assert_eq!(names(libs), vec!["libfoo1=1.0-2"]);
        let every = select(&all, &["libs".into()], &[], true).unwrap();
        assert_eq!(names(every), vec!["libfoo1=1.0-1", "libfoo1=1.0-2"]);
        let pat = select(&all, &[], &["lib*-dev".into()], false).unwrap();
        assert_eq!(names(pat), vec!["libbar-dev=2.0-1"]);
        assert!(select(&all, &[], &["[".into()], false).is_err());
        assert_eq!(all[0].spec(), "libfoo1:amd64=1.0-1");
    }

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
