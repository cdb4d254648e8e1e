//! A root filesystem on the host: unpacked from a squashed tree, and
//! resolved inside it as a chroot would (symlinks never leave the root).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_tree::{Kind, Tree};

use crate::error::{Result, RuntimeError};

/// Most symlinks followed while resolving one path (as the kernel's 40).
const MAX_LINKS: usize = 40;

fn io(path: &Path) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
    move |err| RuntimeError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Write the paths of `tree` that `keep` selects under `dir`: directories
/// first, then file contents (streamed from the layers), symlinks last, so
/// no symlink exists while anything is written and nothing can be written
/// outside `dir`. Ownership is kept when running as root.
pub fn unpack(tree: &Tree, dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    let root = unsafe { libc::geteuid() } == 0;
    let chown = |p: &Path, uid: u64, gid: u64| -> Result<()> {
        if root {
            std::os::unix::fs::lchown(p, Some(uid as u32), Some(gid as u32)).map_err(io(p))?;
        }
        Ok(())
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut dirs = Vec::new();
    for (path, e) in tree.iter() {
        if e.kind != Kind::Dir || !keep(path) {
            continue;
        }
        let p = dir.join(path);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        chown(&p, e.uid, e.gid)?;
        dirs.push((p, e.mode));
    }
    tree.stream_files(
        |p, _| keep(p),
        |path, e, reader| {
            let p = dir.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|err| kiln_tree::TreeError::Io {
                    path: parent.to_path_buf(),
                    err,
                })?;
            }
            let tio = |err| kiln_tree::TreeError::Io {
                path: p.clone(),
                err,
            };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&p)
                .map_err(tio)?;
            std::io::copy(&mut std::io::Read::take(reader, e.size), &mut f).map_err(tio)?;
            f.flush().map_err(tio)?;
            drop(f);
            if root {
                std::os::unix::fs::lchown(&p, Some(e.uid as u32), Some(e.gid as u32))
                    .map_err(tio)?;
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))
                .map_err(tio)?;
            Ok(())
        },
    )?;
    for (path, e) in tree.iter() {
        if e.kind != Kind::Symlink || !keep(path) {
            continue;
        }
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let target = e.link_target.clone().unwrap_or_default();
        std::os::unix::fs::symlink(&target, &p).map_err(io(&p))?;
        chown(&p, e.uid, e.gid)?;
    }
    for (p, mode) in dirs {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io(&p))?;
    }
    Ok(())
}

/// Resolution of paths inside an unpacked root.
pub struct Root<'a> {
    /// The host directory that is `/` of the image.
    pub dir: &'a Path,
}

impl Root<'_> {
    /// Resolve `path` (absolute in the image, or relative to `/`) as a
    /// chroot would. Returns the final in-image path (no leading `/`) and
    /// every symlink crossed on the way (they must be kept too). `None` if
    /// the path does not exist or loops.
    pub fn resolve(&self, path: &str) -> Option<(String, Vec<String>)> {
        let mut links = Vec::new();
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let rel = done.join("/");
            let host = self.dir.join(&rel);
            let meta = std::fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_LINKS {
                    return None;
                }
                links.push(rel);
                let target = std::fs::read_link(&host).ok()?;
                let target = target.to_string_lossy().into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            } else if !todo.is_empty() && !meta.is_dir() {
                return None;
            }
        }
        Some((done.join("/"), links))
    }

    /// User and group ids for the config's `user` (`uid[:gid]` or names
    /// looked up in the image's `/etc/passwd` and `/etc/group`).
    pub fn user_ids(&self, user: Option<&str>) -> (u32, u32) {
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return (0, 0);
        };
        let (u, g) = user
            .split_once(':')
            .map_or((user, None), |(u, g)| (u, Some(g)));
        let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
            let text = std::fs::read_to_string(self.host(file)).ok()?;
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&name)).then(|| {
                    (
                        f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                        f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
                    )
                })
            })
        };
        let (uid, pgid) = u
            .parse::<u32>()
            .map(|n| (n, n))
            .ok()
            .or_else(|| lookup("etc/passwd", u))
            .unwrap_or((0, 0));
        let gid = match g {
            Some(g) => g
                .parse()
                .ok()
                .or_else(|| lookup("etc/group", g).map(|x| x.0))
                .unwrap_or(pgid),
            None => pgid,
        };
        (uid, gid)
    }

    /// The host path of an in-image path (no symlinks followed).
    pub fn host(&self, rel: &str) -> PathBuf {
        self.dir.join(rel.trim_start_matches('/'))
    }

    /// Every path below `rel` (files, links, directories), in-image.
    pub fn walk(&self, rel: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![rel.trim_matches('/').to_string()];
        while let Some(r) = stack.pop() {
            let host = self.host(&r);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            out.insert(r.clone());
            if meta.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&host) {
                    for e in rd.flatten() {
                        stack.push(format!("{r}/{}", e.file_name().to_string_lossy()));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_a_chroot() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(r.join("usr/lib/x86_64-linux-gnu/libz.so.1.2.13"), b"x").unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink(
            "libz.so.1.2.13",
            r.join("usr/lib/x86_64-linux-gnu/libz.so.1"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/../../../etc/passwd", r.join("escape")).unwrap();
        let root = Root { dir: r };
        let (p, links) = root.resolve("/lib/x86_64-linux-gnu/libz.so.1").unwrap();
        assert_eq!(p, "usr/lib/x86_64-linux-gnu/libz.so.1.2.13");
        assert_eq!(links, vec!["lib", "usr/lib/x86_64-linux-gnu/libz.so.1"]);
        // An absolute link resolves inside the root, never on the host.
        assert_eq!(root.resolve("/escape"), None);
    }
}
