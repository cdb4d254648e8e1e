//! Moving a disk in use between two endpoints over TCP on loopback:
//! pre-copy rounds under a writing guest, and post-copy with QEMU's NBD
//! client (`qemu-io`) as the guest at the destination.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use kiln_vm::disk::{Device, Disk, DEFAULT_BLOCK};
use kiln_vm::nbd::{Export, Server};
use kiln_vm::sync::{Incoming, Source};

const MIB: u64 = 1 << 20;

/// xorshift64: reproducible bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn filled(dir: &Path, size: u64, seed: u64) -> Arc<Disk> {
    let disk = Disk::create(&dir.join("source.raw"), size, DEFAULT_BLOCK).unwrap();
    let mut rng = Rng(seed);
    for off in (0..size).step_by(MIB as usize) {
        disk.write_at(&rng.bytes(MIB.min(size - off) as usize), off)
            .unwrap();
    }
    disk.take_dirty();
    Arc::new(disk)
}

/// A connected (source, destination) pair over loopback TCP.
fn connect(
    disk: &Arc<Disk>,
    dest: &Path,
) -> (
    Source,
    Arc<Incoming>,
    thread::JoinHandle<kiln_vm::Result<u64>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = dest.to_path_buf();
    let accepted = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        Incoming::accept(&dest, s).unwrap()
    });
    let source = Source::start(Arc::clone(disk), TcpStream::connect(addr).unwrap()).unwrap();
    let (incoming, receiver) = accepted.join().unwrap();
    (source, incoming, receiver)
}

#[test]
fn precopy_rounds_converge_while_the_guest_writes_and_the_copy_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let disk = filled(dir.path(), 32 * MIB, 1);
    let (mut source, incoming, receiver) = connect(&disk, &dir.path().join("dest.raw"));
    // The guest keeps writing 4 KiB pieces of a 2 MiB working set.
    let stop = Arc::new(AtomicBool::new(false));
    let guest = {
        let (disk, stop) = (Arc::clone(&disk), Arc::clone(&stop));
        thread::spawn(move || {
            let mut rng = Rng(7);
            while !stop.load(Ordering::SeqCst) {
                let off = rng.next() % (2 * MIB - 4096);
                disk.write_at(&rng.bytes(4096), off).unwrap();
                thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let first = source.round().unwrap();
    assert_eq!(first.blocks, 512, "the first round sends every block");
    let mut rounds = vec![first];
    while rounds.len() < 6 {
        thread::sleep(std::time::Duration::from_millis(50));
        rounds.push(source.round().unwrap());
    }
    assert!(
        rounds[1..].iter().all(|r| r.blocks <= 32),
        "later rounds send only the working set: {rounds:?}"
    );
    stop.store(true, Ordering::SeqCst); // pause the guest
    guest.join().unwrap();
    let switched = source.switchover().unwrap();
    assert!(switched.stale() <= 32, "at most the working set is left");
    let finish = switched.finish(None).unwrap();
    assert_eq!(finish.on_demand, 0);
    assert!(receiver.join().unwrap().unwrap() >= 512);
    assert_eq!(incoming.disk().digest().unwrap(), disk.digest().unwrap());
}

#[test]
fn postcopy_serves_the_guest_blocks_it_touches_first() {
    let dir = tempfile::tempdir().unwrap();
    let disk = filled(dir.path(), 16 * MIB, 2);
    let (mut source, incoming, receiver) = connect(&disk, &dir.path().join("dest.raw"));
    source.round().unwrap();
    // After the first round the guest dirties 100 blocks (6.25 MiB); the
    // last two, which the background copy sends last, are the ones the
    // guest touches first at the destination.
    for b in 100..200u64 {
        let fill = if b == 198 { 0x5a } else { b as u8 };
        disk.write_at(&vec![fill; DEFAULT_BLOCK as usize], b * DEFAULT_BLOCK)
            .unwrap();
    }
    let socket = dir.path().join("dest.sock");
    let (ready_tx, ready) = mpsc::channel();
    let server = {
        let (incoming, socket) = (Arc::clone(&incoming), socket.clone());
        thread::spawn(move || {
            assert!(incoming.wait_switchover());
            let device: Arc<dyn Device> = incoming;
            let export = Export {
                name: "vmdisk".into(),
                disk: device,
                read_only: false,
            };
            let server = Server::spawn(&socket, export).unwrap();
            ready_tx.send(()).unwrap();
            server
        })
    };
    // 2 MiB/s for the background copy: about 3 s for the 100 blocks, so
    // the guest's first touches come long before their turn.
    let sender = thread::spawn(move || source.switchover().unwrap().finish(Some(2 * MIB)).unwrap());
    ready.recv().unwrap();
    let url = format!("nbd+unix:///vmdisk?socket={}", socket.display());
    let o = Command::new("qemu-io")
        .args(["-f", "raw", "-c"])
        .arg(format!("read -P 0x5a {} 64k", 198 * DEFAULT_BLOCK))
        .args(["-c"])
        .arg(format!("write -P 0x77 {} 4k", 199 * DEFAULT_BLOCK))
        .arg(&url)
        .output()
        .expect("qemu-io (Debian's qemu-utils; scripts/setup.sh installs it)");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && !out.contains("failed"), "{out}");
    let finish = sender.join().unwrap();
    assert_eq!(receiver.join().unwrap().unwrap(), 256 + 100);
    drop(server.join().unwrap());
    assert_eq!(finish.stale, 100);
    assert!(finish.on_demand >= 2, "{finish:?}");
    assert!(incoming.asked() >= 2);
    // Every block equals the source's, but for the guest's own write.
    let dest = incoming.disk();
    for b in 0..dest.blocks() {
        let (mut want, got) = (disk.read_block(b).unwrap(), dest.read_block(b).unwrap());
        if b == 199 {
            want[..4096].fill(0x77);
        }
        assert!(want == got, "block {b} differs");
    }
}

#[test]
fn holes_and_zero_blocks_travel_without_their_bytes_and_the_roots_agree() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB, mostly a hole: one block of data, one written as zeroes.
    let disk =
        Arc::new(Disk::create(&dir.path().join("source.raw"), 64 * MIB, DEFAULT_BLOCK).unwrap());
    disk.write_at(&Rng(3).bytes(65536), 10 * 65536).unwrap();
    disk.write_at(&[0; 65536], 20 * 65536).unwrap();
    let (mut source, incoming, receiver) = connect(&disk, &dir.path().join("dest.raw"));
    let round = source.round().unwrap();
    assert_eq!(round.blocks, 1024);
    assert_eq!(round.bytes, 65536, "only the block of data is sent");
    let finish = source.switchover().unwrap().finish(None).unwrap();
    receiver.join().unwrap().unwrap();
    assert_eq!(incoming.disk().digest().unwrap(), disk.digest().unwrap());
    assert_eq!(incoming.root(), Some(disk.root().unwrap()));
    assert_eq!(incoming.root(), Some(finish.sent_root));
    let meta = std::fs::metadata(dir.path().join("dest.raw")).unwrap();
    assert!(
        meta.blocks() * 512 < 4 * MIB,
        "the copy stays sparse: {} bytes used",
        meta.blocks() * 512
    );
}
