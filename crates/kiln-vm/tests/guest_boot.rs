//! A microVM boots Debian's kernel with kiln's initramfs under QEMU (TCG),
//! its root an ext4 disk served by kiln's NBD server, runs a process
//! from it and powers off; the process's write lands on kiln's disk and
//! shows in its dirty bitmap.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_vm::disk::{Device, Disk, DEFAULT_BLOCK};
use kiln_vm::guest::{fetch_kernel, initramfs, Process, ROOT_MODULES};
use kiln_vm::nbd::{Export, Server};

fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root file system of busybox alone, as an ext4 image.
fn root_image(dir: &Path) -> std::path::PathBuf {
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

#[test]
fn a_guest_boots_from_kilns_nbd_disk_runs_its_process_and_powers_off() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-kernel");
    std::fs::create_dir_all(&cache).unwrap();
    let kernel = fetch_kernel(&cache, ROOT_MODULES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = root_image(dir.path());
    let disk = Arc::new(Disk::open(&img, DEFAULT_BLOCK).unwrap());
    let socket = dir.path().join("root.sock");
    let device: Arc<dyn Device> = disk.clone();
    let export = Export {
        name: "root".into(),
        disk: device,
        read_only: false,
    };
    let server = Server::spawn(&socket, export).unwrap();
    let process = Process {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo kiln-guest-ok user=$(busybox id -u) pwd=$(pwd) X=$X; echo written > /hello; sync"
                .into(),
        ],
        env: vec!["X=from-the-image".into()],
        workdir: Some("/tmp".into()),
        ..Process::default()
    };
    let initrd = dir.path().join("initrd.gz");
    std::fs::write(
        &initrd,
        initramfs(
            Path::new(env!("CARGO_BIN_EXE_kiln-init")),
            &kernel,
            &process,
        )
        .unwrap(),
    )
    .unwrap();
    let log = dir.path().join("console.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-drive")
        .arg(format!(
            "file=nbd:unix:{}:exportname=root,format=raw,if=virtio",
            socket.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (QEMU 10; scripts/setup.sh installs it)");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = qemu.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(240) {
            let _ = qemu.kill();
            panic!(
                "the guest did not power off: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("guest ran {:?}", start.elapsed());
    assert!(status.success(), "{console}");
    assert!(
        console.contains("kiln-guest-ok user=0 pwd=/tmp X=from-the-image"),
        "{console}"
    );
    assert!(server.take_errors().is_empty());
    assert!(disk.dirty_count() > 0, "the guest's writes were tracked");
    drop(server);
    let out = Command::new("debugfs")
        .args(["-R", "cat /hello"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "written");
}
