//! A microVM boots Debian's kernel with kiln's initramfs under QEMU (TCG),
//! its root an ext4 disk served by kiln's NBD server, runs a process
//! from it and powers off; the process's write lands on kiln's disk and
//! shows in its dirty bitmap.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
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
    let mut guest = common::boot(dir.path(), "guest", &kernel, &initrd, &socket, false, None);
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

/// A tap device on the host, removed when dropped.
struct Tap(String);

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn a_guest_on_a_tap_answers_on_its_static_address() {
    let kernel = common::kernel();
    let dir = tempfile::tempdir().unwrap();
    let img = common::root_image(dir.path());
    let disk: Arc<dyn Device> = Arc::new(Disk::open(&img, DEFAULT_BLOCK).unwrap());
    let socket = dir.path().join("root.sock");
    let export = Export {
        name: "root".into(),
        disk,
        read_only: false,
    };
    let _server = Server::spawn(&socket, export).unwrap();
    // A subnet of this run's own, so parallel runs do not collide.
    let net = std::process::id() % 200 + 20;
    let tap = Tap(format!("kilntap{net}"));
    common::ok(Command::new("ip").args(["tuntap", "add", "dev", &tap.0, "mode", "tap"]));
    common::ok(Command::new("ip").args([
        "addr",
        "add",
        &format!("10.231.{net}.1/24"),
        "dev",
        &tap.0,
    ]));
    common::ok(Command::new("ip").args(["link", "set", &tap.0, "up"]));
    let mut process = common::shell("busybox nc -l -p 7000 -e busybox echo hello-from-the-guest");
    process.ip = Some(format!("10.231.{net}.2/24"));
    process.gateway = Some(format!("10.231.{net}.1"));
    let initrd = common::initrd(dir.path(), &kernel, &process);
    let mac = "52:54:00:12:34:56".to_string();
    let mut guest = common::boot(
        dir.path(),
        "guest",
        &kernel,
        &initrd,
        &socket,
        false,
        Some((tap.0.clone(), mac)),
    );
    let addr: SocketAddr = format!("10.231.{net}.2:7000").parse().unwrap();
    let start = std::time::Instant::now();
    let reply = loop {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no answer: {}",
            guest.console()
        );
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        break text;
    };
    assert_eq!(reply.trim(), "hello-from-the-guest");
    assert!(
        guest.wait_exit(Duration::from_secs(120)),
        "{}",
        guest.console()
    );
}
