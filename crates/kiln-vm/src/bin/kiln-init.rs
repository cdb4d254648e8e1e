//! kiln's init for microVM guests: PID 1 inside the initramfs that
//! `kiln_vm::guest` builds. It loads the kernel modules the root disk
//! needs (Debian's kernel has virtio and ext4 as modules), mounts the
//! image's root from the first virtio disk, switches to it, and runs the
//! image's process as its user, in its directory, with its environment.
//! When that process exits, the VM powers off with it.
//!
//! Its configuration is `/kiln/config` in the initramfs, one setting per
//! line as `key<TAB>value`: `module` (a file under /kiln/modules, in load
//! order), `arg` (the command, in order), `env` (`K=V`), `workdir`, `uid`,
//! `gid`, `root` (the disk, default `/dev/vda`).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Config {
    modules: Vec<String>,
    args: Vec<String>,
    env: Vec<String>,
    workdir: String,
    uid: u32,
    gid: u32,
    root: String,
}

fn main() {
    if let Err(e) = boot() {
        say(&format!("kiln-init: {e}"));
    }
    power_off();
}

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn boot() -> Result<(), String> {
    mount("devtmpfs", "/dev", "devtmpfs")?;
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    let cfg = read_config(Path::new("/kiln/config"))?;
    for m in &cfg.modules {
        load_module(&format!("/kiln/modules/{m}"))?;
    }
    wait_for(&cfg.root, Duration::from_secs(30))?;
    std::fs::create_dir_all("/newroot").map_err(|e| format!("/newroot: {e}"))?;
    mount(&cfg.root, "/newroot", "ext4")?;
    // The image's own /dev, /proc and /sys; an image without the
    // directories simply goes without.
    for (fs, target) in [
        ("devtmpfs", "/newroot/dev"),
        ("proc", "/newroot/proc"),
        ("sysfs", "/newroot/sys"),
    ] {
        let _ = mount(fs, target, fs);
    }
    switch_root("/newroot")?;
    let status = run(&cfg)?;
    say(&format!("kiln-init: the process exited ({status})"));
    // SAFETY: sync takes no arguments.
    unsafe { libc::sync() };
    Ok(())
}

fn read_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut c = Config {
        workdir: "/".into(),
        root: "/dev/vda".into(),
        ..Config::default()
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('\t')
            .ok_or_else(|| format!("config line {line:?}"))?;
        match k {
            "module" => c.modules.push(v.into()),
            "arg" => c.args.push(v.into()),
            "env" => c.env.push(v.into()),
            "workdir" => c.workdir = v.into(),
            "uid" => c.uid = v.parse().map_err(|_| format!("uid {v:?}"))?,
            "gid" => c.gid = v.parse().map_err(|_| format!("gid {v:?}"))?,
            "root" => c.root = v.into(),
            _ => return Err(format!("unknown config key {k:?}")),
        }
    }
    if c.args.is_empty() {
        return Err("no command to run".into());
    }
    Ok(c)
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"))
}

fn mount(src: &str, target: &str, fs: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (cstr(src)?, cstr(target)?, cstr(fs)?);
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(format!(
            "mount {fs} on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn load_module(path: &str) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let params = cstr("")?;
    // SAFETY: an open module file and an empty parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    let err = std::io::Error::last_os_error();
    if rc != 0 && err.raw_os_error() != Some(libc::EEXIST) {
        return Err(format!("loading {path}: {err}"));
    }
    Ok(())
}

fn wait_for(dev: &str, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while !Path::new(dev).exists() {
        if start.elapsed() > limit {
            return Err(format!("{dev} did not appear in {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn switch_root(new: &str) -> Result<(), String> {
    std::env::set_current_dir(new).map_err(|e| format!("{new}: {e}"))?;
    let (dot, slash) = (cstr(".")?, cstr("/")?);
    // SAFETY: valid C strings; MS_MOVE takes no fs type or data.
    let rc = unsafe {
        libc::mount(
            dot.as_ptr(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "moving {new} to /: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a valid C string.
    if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        return Err(format!("chroot: {}", std::io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(|e| format!("/: {e}"))
}

/// Run the image's process and reap every child until it exits.
fn run(cfg: &Config) -> Result<i32, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&cfg.args[0]);
    cmd.args(&cfg.args[1..])
        .env_clear()
        .current_dir(&cfg.workdir);
    for kv in &cfg.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.uid(cfg.uid).gid(cfg.gid);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", cfg.args[0]))?;
    let main = child.id() as libc::pid_t;
    loop {
        let mut status = 0;
        // SAFETY: waits for any child; status is a valid pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == main {
            return Ok(libc::WEXITSTATUS(status));
        }
        if pid < 0 {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
    }
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
