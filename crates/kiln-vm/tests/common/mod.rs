//! Guests for the tests: Debian's kernel, kiln's initramfs, a busybox
//! root disk, and QEMU (TCG) processes that are killed when dropped.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_vm::guest::{fetch_kernel, initramfs, Kernel, Process, ROOT_MODULES};
use kiln_vm::machine::{Accel, Machine, MachineSpec};
use kiln_vm::qmp::Qmp;

pub fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's kernel, cached beside the test binaries.
pub fn kernel() -> Kernel {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-kernel");
    std::fs::create_dir_all(&cache).unwrap();
    fetch_kernel(&cache, ROOT_MODULES).unwrap()
}

/// A root file system of busybox alone, as a 64 MiB ext4 image.
pub fn root_image(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox (Debian's busybox-static; scripts/setup.sh installs it)");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let img = dir.join("root.ext4");
    ok(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("64M"));
    img
}

/// kiln's initramfs for `process`, written to `dir/initrd.gz`.
pub fn initrd(dir: &Path, kernel: &Kernel, process: &Process) -> PathBuf {
    let path = dir.join("initrd.gz");
    let init = Path::new(env!("CARGO_BIN_EXE_kiln-init"));
    std::fs::write(&path, initramfs(init, kernel, process).unwrap()).unwrap();
    path
}

/// `/bin/sh -c script`.
pub fn shell(script: &str) -> Process {
    Process {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Process::default()
    }
}

/// A QEMU guest started as the agent starts them ([`Machine`]), its
/// serial console logged to a file; killed when dropped.
pub struct Guest {
    pub machine: Machine,
    pub log: PathBuf,
}

/// Boot `kernel` with `initrd` under TCG, 256 MiB, its root disk the NBD
/// export `root` at `nbd`; `net` is a tap and the guest's MAC on it;
/// `incoming` makes it a migration target.
pub fn boot(
    dir: &Path,
    name: &str,
    kernel: &Kernel,
    initrd: &Path,
    nbd: &Path,
    incoming: bool,
    net: Option<(String, String)>,
) -> Guest {
    let log = dir.join(format!("{name}.log"));
    let machine = Machine::spawn(&MachineSpec {
        memory_mib: 256,
        cpus: 1,
        kernel: kernel.vmlinuz.clone(),
        initrd: initrd.to_path_buf(),
        nbd: nbd.to_path_buf(),
        net,
        console: log.clone(),
        qmp: dir.join(format!("{name}.qmp")),
        incoming,
        accel: Accel::Tcg,
    })
    .expect("qemu-system-x86_64 (QEMU 10; scripts/setup.sh installs it)");
    Guest { machine, log }
}

impl Guest {
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the console shows `text`.
    pub fn wait_for(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.console().contains(text) {
            assert!(
                start.elapsed() < limit,
                "no {text:?} on the console: {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for QEMU to exit (the guest powered off); its success.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if let Some(st) = self.machine.exited() {
                return st.success();
            }
            assert!(
                start.elapsed() < limit,
                "the guest did not power off: {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.machine.qmp
    }
}
