//! An OCI image as a microVM's root disk: the squashed layers written into
//! a fresh ext4 file system (by `mkfs.ext4 -d`, which keeps owners, modes,
//! links and device nodes), and the process the image's config names.

use std::path::Path;
use std::process::Command;

use kiln_image::spec::ImageConfig;
use kiln_runtime::rootfs::{self, Root};
use kiln_tree::{Kind, Tree};

use crate::error::{Result, VmError};
use crate::guest::Process;

/// PATH for an image whose config sets none (as runc and Docker default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories the guest's init mounts on; an image may lack them.
const MOUNT_POINTS: [&str; 4] = ["dev", "proc", "sys", "tmp"];

/// Write `tree` as an ext4 disk of `size` bytes at `disk` (replacing it
/// only once complete), and return the process the image runs: its
/// entrypoint and cmd, env (then `env`, which overrides), workdir and
/// user, looked up in the image's own `/etc/passwd`.
pub fn build(
    tree: &Tree,
    config: Option<&ImageConfig>,
    disk: &Path,
    size: u64,
    env: &[String],
) -> Result<Process> {
    let content: u64 = tree
        .iter()
        .filter(|(_, e)| e.kind == Kind::File)
        .map(|(_, e)| e.size)
        .sum();
    // ext4's metadata and reserve take about a tenth; leave room to run.
    if content.saturating_mul(10) / 8 > size {
        return Err(VmError::root_disk(
            disk,
            format!(
                "the image holds {} MiB of files, too much for a {} MiB disk (--disk-size)",
                content >> 20,
                size >> 20
            ),
        ));
    }
    let parent = disk.parent().unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".rootfs-")
        .tempdir_in(parent)
        .map_err(|e| VmError::root_disk(disk, e))?;
    let dir = work.path().join("root");
    rootfs::unpack(tree, &dir, &|_| true).map_err(|e| VmError::root_disk(disk, e))?;
    for d in MOUNT_POINTS {
        let p = dir.join(d);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir_all(&p).map_err(|e| VmError::root_disk(disk, e))?;
        }
    }
    let process = process(&Root { dir: &dir }, config, env)?;
    let tmp = work.path().join("disk.ext4");
    mkfs(&dir, &tmp, size).map_err(|e| VmError::root_disk(disk, e))?;
    std::fs::rename(&tmp, disk).map_err(|e| VmError::root_disk(disk, e))?;
    Ok(process)
}

/// `mkfs.ext4 -d DIR FILE SIZE`, its complaint as the error.
fn mkfs(dir: &Path, file: &Path, size: u64) -> std::result::Result<(), String> {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(file)
        .arg(format!("{}k", size / 1024))
        .output()
        .map_err(|e| format!("mkfs.ext4 (e2fsprogs): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The process an image's config describes, with `env` added last.
fn process(root: &Root<'_>, config: Option<&ImageConfig>, env: &[String]) -> Result<Process> {
    let rc = config.map(|c| c.config.clone()).unwrap_or_default();
    let args: Vec<String> = rc
        .entrypoint
        .iter()
        .flatten()
        .chain(rc.cmd.iter().flatten())
        .cloned()
        .collect();
    if args.is_empty() {
        return Err(VmError::root_disk(
            root.dir,
            "the image config names no entrypoint or cmd to run",
        ));
    }
    let mut vars = rc.env.unwrap_or_else(|| vec![DEFAULT_PATH.into()]);
    for kv in env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        vars.retain(|v| v.split_once('=').map_or(v.as_str(), |(k, _)| k) != key);
        vars.push(kv.clone());
    }
    let (uid, gid) = root.user_ids(rc.user.as_deref());
    Ok(Process {
        args,
        env: vars,
        workdir: rc.working_dir.filter(|w| !w.is_empty()),
        uid,
        gid,
        ip: None,
        gateway: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_gives_the_process_and_env_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\npostgres:x:104:109::/var/lib/postgresql:/bin/sh\n",
        )
        .unwrap();
        let mut cfg = ImageConfig::default();
        cfg.config.entrypoint = Some(vec!["/start".into()]);
        cfg.config.cmd = Some(vec!["-v".into()]);
        cfg.config.env = Some(vec!["PATH=/bin".into(), "A=1".into()]);
        cfg.config.user = Some("postgres".into());
        cfg.config.working_dir = Some("/srv".into());
        let root = Root { dir: dir.path() };
        let p = process(&root, Some(&cfg), &["A=2".into()]).unwrap();
        assert_eq!(p.args, ["/start", "-v"]);
        assert_eq!(p.env, ["PATH=/bin", "A=2"]);
        assert_eq!((p.uid, p.gid), (104, 109));
        assert_eq!(p.workdir.as_deref(), Some("/srv"));
    }

    #[test]
    fn an_image_with_nothing_to_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = process(&Root { dir: dir.path() }, None, &[]).unwrap_err();
        assert!(err.to_string().contains("no entrypoint"), "{err}");
    }
}
