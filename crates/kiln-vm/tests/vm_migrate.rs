//! Live migration of a running microVM between two QEMU 10 processes
//! (TCG): its memory through QEMU's migration driven over QMP, its disk
//! through kiln's NBD servers and block sync. The guest appends increasing
//! ids to a file and syncs after each; after the move, the destination's
//! disk must hold every id in order, none lost and none repeated.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use kiln_vm::disk::{Device, Disk, DEFAULT_BLOCK};
use kiln_vm::nbd::{Export, Server};
use kiln_vm::ram::{migrate, Postcopy, RamOptions};
use kiln_vm::sync::{Finish, Incoming, Source};

/// Two TCG guests at once are heavy on two cores: one migration at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Ids the guest writes, one every 50 ms or so: long enough that the
/// migration happens while it writes.
const IDS: u32 = 300;

fn export(socket: &Path, device: Arc<dyn Device>) -> Server {
    let e = Export {
        name: "root".into(),
        disk: device,
        read_only: false,
    };
    Server::spawn(socket, e).unwrap()
}

fn move_vm(ram: Postcopy, disk_postcopy: bool) -> Finish {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = common::kernel();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = format!(
        "echo kiln-start; i=0; while [ $i -lt {IDS} ]; do echo $i >> /ids; sync; i=$((i+1)); busybox usleep 50000; done; echo kiln-done"
    );
    let initrd = common::initrd(d, &kernel, &common::shell(&script));
    // Host A: the disk, its NBD server and the running guest.
    let disk_a = Arc::new(Disk::open(&common::root_image(d), DEFAULT_BLOCK).unwrap());
    let nbd_a = export(&d.join("a.sock"), disk_a.clone());
    let mut a = common::boot(d, "a", &kernel, &initrd, &d.join("a.sock"), false, None);
    a.wait_for("kiln-start", Duration::from_secs(180));
    // Host B: the disk as it arrives, served to a QEMU waiting for state.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = d.join("b.raw");
    let accepted =
        thread::spawn(move || Incoming::accept(&dest, listener.accept().unwrap().0).unwrap());
    let mut source =
        Some(Source::start(disk_a.clone(), TcpStream::connect(addr).unwrap()).unwrap());
    let (incoming, receiver) = accepted.join().unwrap();
    let nbd_b = export(&d.join("b.sock"), incoming.clone());
    let mut b = common::boot(d, "b", &kernel, &initrd, &d.join("b.sock"), true, None);
    // Disk pre-copy while the guest writes.
    for _ in 0..3 {
        source.as_mut().unwrap().round().unwrap();
        thread::sleep(Duration::from_millis(200));
    }
    // Memory, with the disk's switchover while the source is paused.
    let mut finishing = None;
    let opts = RamOptions {
        postcopy: ram,
        timeout: Duration::from_secs(300),
        ..RamOptions::default()
    };
    let uri = format!("unix:{}", d.join("mig.sock").display());
    let (qa, qb) = (&mut a.machine.qmp, &mut b.machine.qmp);
    let report = migrate(qa, qb, &uri, &opts, || {
        let switched = source.take().expect("one switchover").switchover()?;
        if disk_postcopy {
            // A slow background copy (128 KiB/s), so the resumed guest
            // touches stale blocks before their turn.
            finishing = Some(thread::spawn(move || switched.finish(Some(128 << 10))));
        } else {
            finishing = Some(thread::spawn(move || switched.finish(None)));
            // Stop-and-copy: the destination owns every block before it runs.
            while !finishing.as_ref().is_some_and(|h| h.is_finished()) {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(report.postcopy, ram == Postcopy::Always, "{report:?}");
    assert_eq!(a.qmp().status().unwrap(), "postmigrate");
    let finish = finishing.unwrap().join().unwrap().unwrap();
    assert!(receiver.join().unwrap().is_ok());
    // The guest finishes its work at B and powers off there.
    assert!(b.wait_exit(Duration::from_secs(300)), "{}", b.console());
    assert!(b.console().contains("kiln-done"), "{}", b.console());
    assert!(
        !a.console().contains("kiln-done"),
        "A stopped at the switchover"
    );
    drop((nbd_a, nbd_b));
    let out = Command::new("debugfs")
        .args(["-R", "cat /ids"])
        .arg(d.join("b.raw"))
        .output()
        .unwrap();
    let ids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(
        ids,
        (0..IDS).collect::<Vec<_>>(),
        "every id, in order, on B's disk"
    );
    eprintln!("ram {report:?}\ndisk {finish:?}");
    finish
}

#[test]
fn a_running_vm_moves_with_stop_and_copy_and_loses_no_write() {
    let finish = move_vm(Postcopy::Off, false);
    assert_eq!(finish.on_demand, 0);
}

#[test]
fn a_running_vm_moves_with_post_copy_and_loses_no_write() {
    let finish = move_vm(Postcopy::Always, true);
    assert!(
        finish.on_demand >= 1,
        "the guest asked for blocks: {finish:?}"
    );
}
