//! One QEMU process running a microVM: Debian's kernel and kiln's
//! initramfs, the root disk from an NBD socket, a tap on the host's
//! bridge, and a QMP socket to drive it. KVM where the host has real
//! hardware virtualisation, TCG elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Result, VmError};
use crate::qmp::Qmp;

/// How QEMU runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's binary translator: slower, runs anywhere.
    Tcg,
}

impl Accel {
    /// KVM when `/dev/kvm` is there, the CPU has VMX or SVM, and the
    /// module is not PVM (which runs only specially built guest kernels,
    /// so a standard guest would hang); TCG otherwise. `KILN_VM_ACCEL`
    /// (`kvm` or `tcg`) overrides.
    pub fn detect() -> Accel {
        match std::env::var("KILN_VM_ACCEL").as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let hw = cpu
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let pvm = Path::new("/sys/module/kvm_pvm").exists();
        if Path::new("/dev/kvm").exists() && hw && !pvm {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What one QEMU process runs. Source and destination of a migration
/// must be started from equal specs.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub memory_mib: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The NBD server's unix socket (export `root`).
    pub nbd: PathBuf,
    /// A tap device on the host, and the guest's MAC address on it.
    pub net: Option<(String, String)>,
    /// Where the serial console is written.
    pub console: PathBuf,
    /// Where QEMU's monitor listens.
    pub qmp: PathBuf,
    /// Wait for a migration instead of booting.
    pub incoming: bool,
    pub accel: Accel,
}

/// A running QEMU, killed when dropped.
#[derive(Debug)]
pub struct Machine {
    child: Child,
    /// The monitor.
    pub qmp: Qmp,
}

impl Machine {
    /// Start QEMU and connect to its monitor.
    pub fn spawn(spec: &MachineSpec) -> Result<Machine> {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-accel", spec.accel.arg()])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-smp", &spec.cpus.to_string()])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&spec.kernel)
            .arg("-initrd")
            .arg(&spec.initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            .arg("-serial")
            .arg(format!("file:{}", spec.console.display()))
            .arg("-drive")
            .arg(format!(
                "file=nbd:unix:{}:exportname=root,format=raw,if=virtio",
                spec.nbd.display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", spec.qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // QEMU's own complaints, beside the console (a pipe nobody reads
        // could fill and stall it).
        let log = spec.console.with_extension("qemu.log");
        let file = std::fs::File::create(&log).map_err(|e| VmError::disk(&log, e))?;
        cmd.stderr(file);
        if spec.accel == Accel::Kvm {
            cmd.args(["-cpu", "host"]);
        }
        if let Some((tap, mac)) = &spec.net {
            cmd.arg("-netdev")
                .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"));
        }
        if spec.incoming {
            cmd.args(["-incoming", "defer"]);
        }
        let mut child = spawn_tied(cmd).map_err(|e| {
            VmError::Guest(format!(
                "qemu-system-x86_64 (QEMU 10; scripts/setup.sh installs it): {e}"
            ))
        })?;
        match Qmp::connect(&spec.qmp, Duration::from_secs(30)) {
            Ok(qmp) => Ok(Machine { child, qmp }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = std::fs::read_to_string(&log).unwrap_or_default();
                let why = why.trim();
                Err(VmError::Guest(format!(
                    "QEMU did not start: {}",
                    if why.is_empty() {
                        e.to_string()
                    } else {
                        why.to_string()
                    }
                )))
            }
        }
    }

    /// QEMU's exit status, once it has exited (the guest powered off).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawn `cmd` so that it dies with this process: with `PR_SET_PDEATHSIG`,
/// from one thread that lives as long as the process (the signal follows
/// the death of the thread that forked, not of the process). An agent
/// that is killed must not leave guests running that nobody drives.
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    // SAFETY: prctl is async-signal-safe; it only sets a flag of the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    let sent = tx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply));
    sent.map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?
}

/// A tap device attached to a bridge, deleted when dropped.
#[derive(Debug)]
pub struct Tap {
    name: String,
}

impl Tap {
    /// Create tap `name` and attach it to `bridge`, up.
    pub fn create(name: &str, bridge: &str) -> Result<Tap> {
        // A tap left by an agent that was killed goes first.
        let _ = ip(&["link", "del", name]);
        ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        let tap = Tap { name: name.into() };
        ip(&["link", "set", name, "master", bridge])?;
        ip(&["link", "set", name, "up"])?;
        Ok(tap)
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// Run `ip ARGS` (iproute2), its complaint as the error.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| VmError::Guest(format!("ip (iproute2): {e}")))?;
    if !out.status.success() {
        return Err(VmError::Guest(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
