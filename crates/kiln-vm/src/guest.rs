//! What a microVM boots: Debian's kernel (through the machine's apt, so no
//! mirror is named here) and an initramfs of kiln's own, holding
//! `kiln-init`, the shared libraries it needs, the kernel modules for a
//! virtio root disk, and the process to run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Result, VmError};

/// Modules a virtio-blk ext4 root needs beyond their declared
/// dependencies (`crc32c_generic` is ext4's soft dependency, needed for
/// metadata checksums).
pub const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "ext4",
    "crc32c_generic",
];

fn guest_err(what: impl Into<String>) -> VmError {
    VmError::Guest(what.into())
}

/// A kernel and the modules chosen for it, cached in a directory.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The compressed kernel image.
    pub vmlinuz: PathBuf,
    /// Module files, in load order (dependencies first).
    pub modules: Vec<PathBuf>,
}

/// Debian's current kernel package for this architecture (the one
/// `linux-image-amd64` depends on), downloaded with `apt-get download`,
/// with `vmlinuz` and the closure of `wanted` modules kept in `cache`.
pub fn fetch_kernel(cache: &Path, wanted: &[&str]) -> Result<Kernel> {
    let package = kernel_package()?;
    let dir = cache.join(&package);
    let order = dir.join("modules.order");
    if let Ok(text) = std::fs::read_to_string(&order) {
        return Ok(Kernel {
            vmlinuz: dir.join("vmlinuz"),
            modules: text.lines().map(|m| dir.join(m)).collect(),
        });
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| guest_err(format!("{}: {e}", debs.display())))?;
    let deb = download(&debs, &package)?;
    let tmp = tempfile::tempdir_in(cache).map_err(|e| guest_err(e.to_string()))?;
    // Pass 1: every module's name and dependencies, from .modinfo.
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    members(&deb, |path, data| {
        if let Some(name) = module_name(path) {
            deps.insert(name, (path.to_string(), modinfo_depends(data)));
        }
        None
    })?;
    let order_names = load_order(&deps, wanted)?;
    let keep: BTreeSet<&str> = order_names.iter().map(|n| deps[n].0.as_str()).collect();
    // Pass 2: keep the kernel and the chosen modules.
    members(&deb, |path, _| {
        let name = Path::new(path).file_name()?.to_str()?;
        if keep.contains(path) {
            Some(tmp.path().join(name))
        } else if name.starts_with("vmlinuz-") {
            Some(tmp.path().join("vmlinuz"))
        } else {
            None
        }
    })?;
    let files: Vec<String> = order_names
        .iter()
        .filter_map(|n| Some(Path::new(&deps[n].0).file_name()?.to_str()?.to_string()))
        .collect();
    std::fs::write(tmp.path().join("modules.order"), files.join("\n"))
        .map_err(|e| guest_err(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(tmp.keep(), &dir).map_err(|e| guest_err(format!("{}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&deb); // 70 MB that the kept files replace
    fetch_kernel(cache, wanted)
}

fn kernel_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .map_err(|e| guest_err(format!("apt-cache: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Depends: linux-image-")
                .map(|v| format!("linux-image-{v}"))
        })
        .ok_or_else(|| guest_err("apt knows no linux-image-amd64 to boot guests with"))
}

fn download(dir: &Path, package: &str) -> Result<PathBuf> {
    let found = |dir: &Path| {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
    };
    if let Some(p) = found(dir) {
        return Ok(p);
    }
    let st = Command::new("apt-get")
        .args(["download", "-qq", package])
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| guest_err(format!("apt-get: {e}")))?;
    match found(dir) {
        Some(p) if st.success() => Ok(p),
        _ => Err(guest_err(format!("apt-get download {package} failed"))),
    }
}

/// Stream the data members of `deb`; `pick(path, bytes)` returns where to
/// write a member it wants.
fn members(deb: &Path, mut pick: impl FnMut(&str, &[u8]) -> Option<PathBuf>) -> Result<()> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| guest_err(format!("dpkg-deb: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| guest_err("dpkg-deb gave no output"))?;
    let bad = |e: std::io::Error| guest_err(format!("{}: {e}", deb.display()));
    let mut archive = tar::Archive::new(stdout);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let wanted = path.ends_with(".ko") || path.contains("boot/vmlinuz-");
        if !wanted || entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(bad)?;
        if let Some(to) = pick(&path, &data) {
            std::fs::write(&to, &data).map_err(|e| guest_err(format!("{}: {e}", to.display())))?;
        }
    }
    let _ = child.wait();
    Ok(())
}

/// `kernel/drivers/block/virtio_blk.ko` -> `virtio_blk` (the kernel treats
/// `-` and `_` in module names alike).
fn module_name(path: &str) -> Option<String> {
    let file = Path::new(path).file_name()?.to_str()?;
    Some(file.strip_suffix(".ko")?.replace('-', "_"))
}

/// The `depends=` list of a module's `.modinfo` section.
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let Ok(elf) = goblin::elf::Elf::parse(ko) else {
        return Vec::new();
    };
    let Some(sh) = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".modinfo"))
    else {
        return Vec::new();
    };
    let range = sh.sh_offset as usize..(sh.sh_offset + sh.sh_size) as usize;
    let Some(bytes) = ko.get(range) else {
        return Vec::new();
    };
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|d| {
            String::from_utf8_lossy(d)
                .split(',')
                .map(|s| s.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// `wanted` and their dependencies, dependencies first. Built-in modules
/// (no file) are skipped; a wanted name that is neither is an error.
fn load_order(
    deps: &BTreeMap<String, (String, Vec<String>)>,
    wanted: &[&str],
) -> Result<Vec<String>> {
    fn visit(
        n: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(n.to_string()) {
            return;
        }
        if let Some((_, ds)) = deps.get(n) {
            for d in ds {
                visit(d, deps, seen, out);
            }
            out.push(n.to_string());
        }
    }
    let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
    for w in wanted {
        if !deps.contains_key(*w) {
            return Err(guest_err(format!("the guest kernel has no module {w}")));
        }
        visit(w, deps, &mut seen, &mut out);
    }
    Ok(out)
}

/// How the guest runs the image's process.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Process {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `K=V` pairs.
    pub env: Vec<String>,
    /// Working directory (default `/`).
    pub workdir: Option<String>,
    /// User and group ids.
    pub uid: u32,
    pub gid: u32,
    /// eth0's address as `ADDR/PREFIX` (no networking when `None`).
    pub ip: Option<String>,
    /// The default gateway.
    pub gateway: Option<String>,
}

/// A gzip'd newc initramfs: `kiln-init` as `/init` with its libraries,
/// the kernel's modules, and the process configuration.
pub fn initramfs(init: &Path, kernel: &Kernel, process: &Process) -> Result<Vec<u8>> {
    let mut config = String::new();
    let mut line = |k: &str, v: &str| -> Result<()> {
        if v.contains(['\t', '\n']) {
            return Err(guest_err(format!(
                "{k} {v:?}: tabs and newlines cannot be passed to the guest"
            )));
        }
        config.push_str(&format!("{k}\t{v}\n"));
        Ok(())
    };
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for m in &kernel.modules {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        line("module", &name)?;
        files.push((format!("kiln/modules/{name}"), 0o644, read(m)?));
    }
    for a in &process.args {
        line("arg", a)?;
    }
    for e in &process.env {
        line("env", e)?;
    }
    line("workdir", process.workdir.as_deref().unwrap_or("/"))?;
    line("uid", &process.uid.to_string())?;
    line("gid", &process.gid.to_string())?;
    if let Some(ip) = &process.ip {
        line("ip", ip)?;
    }
    if let Some(gw) = &process.gateway {
        line("gateway", gw)?;
    }
    files.push(("kiln/config".into(), 0o644, config.into_bytes()));
    for lib in shared_libraries(init)? {
        let at = lib.to_string_lossy().trim_start_matches('/').to_string();
        // The loader must be executable (the kernel opens it as a program).
        files.push((at, 0o755, read(&lib)?));
    }
    let mut cpio = crate::cpio::Writer::default();
    for d in ["dev", "proc", "sys", "newroot"] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.file("init", 0o755, &read(init)?);
    for (path, mode, data) in &files {
        cpio.file(path, *mode, data);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&cpio.finish())
        .map_err(|e| guest_err(e.to_string()))?;
    gz.finish().map_err(|e| guest_err(e.to_string()))
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| guest_err(format!("{}: {e}", p.display())))
}

/// The dynamic loader and every library `bin` needs, transitively.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    const DIRS: &[&str] = &[
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib",
    ];
    let (mut out, mut todo, mut seen) = (Vec::new(), vec![bin.to_path_buf()], BTreeSet::new());
    while let Some(p) = todo.pop() {
        let data = read(&p)?;
        let elf = goblin::elf::Elf::parse(&data)
            .map_err(|e| guest_err(format!("{}: {e}", p.display())))?;
        if let Some(interp) = elf.interpreter {
            if seen.insert(interp.to_string()) {
                out.push(PathBuf::from(interp));
            }
        }
        for lib in elf.libraries {
            if !seen.insert(lib.to_string()) {
                continue;
            }
            let found = DIRS
                .iter()
                .map(|d| Path::new(d).join(lib))
                .find(|c| c.exists());
            let found = found
                .ok_or_else(|| guest_err(format!("{}: library {lib} not found", p.display())))?;
            out.push(found.clone());
            todo.push(found);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_puts_dependencies_first_and_refuses_unknown_modules() {
        let mut deps = BTreeMap::new();
        let m = |p: &str, d: &[&str]| (p.to_string(), d.iter().map(|s| s.to_string()).collect());
        deps.insert("ext4".into(), m("ext4.ko", &["jbd2", "mbcache", "crc16"]));
        deps.insert("jbd2".into(), m("jbd2.ko", &[]));
        deps.insert("mbcache".into(), m("mbcache.ko", &[]));
        deps.insert("crc16".into(), m("crc16.ko", &[]));
        assert_eq!(
            load_order(&deps, &["ext4"]).unwrap(),
            ["jbd2", "mbcache", "crc16", "ext4"]
        );
        assert!(load_order(&deps, &["zfs"]).is_err());
        assert_eq!(
            module_name("lib/modules/x/kernel/a/virtio-blk.ko").as_deref(),
            Some("virtio_blk")
        );
    }
}
