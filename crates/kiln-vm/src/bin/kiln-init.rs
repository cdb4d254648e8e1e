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
//! `gid`, `root` (the disk, default `/dev/vda`), `ip` (`ADDR/PREFIX` for
//! eth0) and `gateway`.

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
    /// `ADDR/PREFIX` for eth0, and the default gateway.
    ip: Option<String>,
    gateway: Option<String>,
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
    net::up("lo", None)?;
    if let Some(ip) = &cfg.ip {
        wait_for("/sys/class/net/eth0", Duration::from_secs(30))?;
        net::up("eth0", Some(ip))?;
        if let Some(gw) = &cfg.gateway {
            net::default_route(gw)?;
        }
    }
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
    // POSIX shared memory (PostgreSQL's default for parallel queries), as
    // container runtimes give it.
    let _ = mount_data("shm", "/newroot/dev/shm", "tmpfs", "mode=1777");
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
            "ip" => c.ip = Some(v.into()),
            "gateway" => c.gateway = Some(v.into()),
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
    mount_data(src, target, fs, "")
}

fn mount_data(src: &str, target: &str, fs: &str, data: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f, d) = (cstr(src)?, cstr(target)?, cstr(fs)?, cstr(data)?);
    // SAFETY: valid C strings, the data a file system option string.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, d.as_ptr().cast()) };
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

/// Interface addresses and routes through the classic socket ioctls (no
/// netlink needed for one static address).
mod net {
    use std::net::Ipv4Addr;

    const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
    const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
    const SIOCSIFADDR: libc::c_ulong = 0x8916;
    const SIOCSIFNETMASK: libc::c_ulong = 0x891c;
    const SIOCADDRT: libc::c_ulong = 0x890b;

    /// An `ifreq`: the name, then a `sockaddr_in` or the flags.
    fn ifreq(name: &str) -> [u8; 40] {
        let mut r = [0u8; 40];
        r[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
        r
    }

    fn sockaddr(ip: Ipv4Addr) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        a[4..8].copy_from_slice(&ip.octets());
        a
    }

    fn ioctl(fd: i32, req: libc::c_ulong, arg: *mut u8, what: &str) -> Result<(), String> {
        // SAFETY: `arg` points at a buffer of the size the request reads.
        if unsafe { libc::ioctl(fd, req, arg) } != 0 {
            return Err(format!("{what}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn socket() -> Result<i32, String> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        Ok(fd)
    }

    /// Bring `name` up, with `cidr` (`ADDR/PREFIX`) as its address.
    pub fn up(name: &str, cidr: Option<&str>) -> Result<(), String> {
        let fd = socket()?;
        if let Some(cidr) = cidr {
            let (addr, prefix) = cidr
                .split_once('/')
                .ok_or_else(|| format!("ip {cidr:?} is not ADDR/PREFIX"))?;
            let ip: Ipv4Addr = addr.parse().map_err(|_| format!("ip {addr:?}"))?;
            let prefix: u32 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| format!("prefix {prefix:?}"))?;
            let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
            let mut r = ifreq(name);
            r[16..32].copy_from_slice(&sockaddr(ip));
            ioctl(
                fd,
                SIOCSIFADDR,
                r.as_mut_ptr(),
                &format!("address of {name}"),
            )?;
            r[16..32].copy_from_slice(&sockaddr(mask));
            ioctl(
                fd,
                SIOCSIFNETMASK,
                r.as_mut_ptr(),
                &format!("netmask of {name}"),
            )?;
        }
        let mut r = ifreq(name);
        ioctl(
            fd,
            SIOCGIFFLAGS,
            r.as_mut_ptr(),
            &format!("flags of {name}"),
        )?;
        let flags = i16::from_ne_bytes([r[16], r[17]]) | (libc::IFF_UP | libc::IFF_RUNNING) as i16;
        r[16..18].copy_from_slice(&flags.to_ne_bytes());
        ioctl(
            fd,
            SIOCSIFFLAGS,
            r.as_mut_ptr(),
            &format!("bringing {name} up"),
        )?;
        // SAFETY: closing the socket made above.
        unsafe { libc::close(fd) };
        Ok(())
    }

    /// A default route through `gateway`.
    pub fn default_route(gateway: &str) -> Result<(), String> {
        let gw: Ipv4Addr = gateway
            .parse()
            .map_err(|_| format!("gateway {gateway:?}"))?;
        // SAFETY: an all-zero rtentry is valid; fields are set below.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        let put = |a: &mut libc::sockaddr, ip: Ipv4Addr| {
            // SAFETY: sockaddr and the 16 bytes of a sockaddr_in agree in size.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    sockaddr(ip).as_ptr(),
                    (a as *mut libc::sockaddr).cast(),
                    16,
                )
            };
        };
        put(&mut rt.rt_dst, Ipv4Addr::UNSPECIFIED);
        put(&mut rt.rt_genmask, Ipv4Addr::UNSPECIFIED);
        put(&mut rt.rt_gateway, gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        let fd = socket()?;
        ioctl(
            fd,
            SIOCADDRT,
            (&mut rt as *mut libc::rtentry).cast(),
            "default route",
        )?;
        // SAFETY: closing the socket made above.
        unsafe { libc::close(fd) };
        Ok(())
    }
}
