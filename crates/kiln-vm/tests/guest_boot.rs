//! A microVM boots Debian's kernel with kiln's initramfs under QEMU (TCG),
//! its root an ext4 disk served by kiln's NBD server, runs a process
//! from it and powers off; the process's write lands on kiln's disk and
//! shows in its dirty bitmap.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kiln_vm::disk::{Device, Disk, DEFAULT_BLOCK};
use kiln_vm::nbd::{Export, Server};

#[test]
fn a_guest_boots_from_kilns_nbd_disk_runs_its_process_and_powers_off() {
    let kernel = common::kernel();
    let dir = tempfile::tempdir().unwrap();
    let img = common::root_image(dir.path());
    let disk = Arc::new(Disk::open(&img, DEFAULT_BLOCK).unwrap());
    let socket = dir.path().join("root.sock");
    let device: Arc<dyn Device> = disk.clone();
    let server = Server::spawn(
        &socket,
        Export {
            name: "root".into(),
            disk: device,
            read_only: false,
        },
    )
    .unwrap();
    let mut process = common::shell(
        "echo kiln-guest-ok user=$(busybox id -u) pwd=$(pwd) X=$X; echo written > /hello; sync",
    );
    process.env = vec!["X=from-the-image".into()];
    process.workdir = Some("/tmp".into());
    let initrd = common::initrd(dir.path(), &kernel, &process);
    let mut guest = common::boot(dir.path(), "guest", &kernel, &initrd, &socket, false);
    assert!(
        guest.wait_exit(Duration::from_secs(240)),
        "{}",
        guest.console()
    );
    let console = guest.console();
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
