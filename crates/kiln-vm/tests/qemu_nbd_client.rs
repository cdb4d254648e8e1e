//! kiln-vm's NBD server against QEMU's own NBD client (`qemu-io`,
//! `qemu-img`, from Debian's qemu-utils, which scripts/setup.sh installs).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kiln_vm::disk::{Disk, DEFAULT_BLOCK};
use kiln_vm::nbd::{Export, Server};
use sha2::{Digest as _, Sha256};

const MIB: u64 = 1 << 20;

struct Fixture {
    dir: tempfile::TempDir,
    disk: Arc<Disk>,
    server: Server,
    socket: PathBuf,
}

fn serve(size: u64, read_only: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::create(&dir.path().join("vm.raw"), size, DEFAULT_BLOCK).unwrap());
    let socket = dir.path().join("nbd.sock");
    let export = Export {
        name: "vmdisk".into(),
        disk: disk.clone(),
        read_only,
    };
    let server = Server::spawn(&socket, export).unwrap();
    Fixture {
        dir,
        disk,
        server,
        socket,
    }
}

fn url(socket: &Path, name: &str) -> String {
    format!("nbd+unix:///{name}?socket={}", socket.display())
}

fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is needed for this test (Debian's qemu-utils; scripts/setup.sh installs it): {e}")
    })
}

fn qemu_io(socket: &Path, name: &str, cmds: &[&str]) -> Output {
    qemu_io_with(&[], socket, name, cmds)
}

fn qemu_io_with(opts: &[&str], socket: &Path, name: &str, cmds: &[&str]) -> Output {
    let mut args = opts.to_vec();
    args.extend(["-f", "raw"]);
    for c in cmds {
        args.extend(["-c", c]);
    }
    let u = url(socket, name);
    args.push(&u);
    tool("qemu-io", &args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn qemu_io_writes_reads_and_flushes_and_every_write_is_tracked() {
    let f = serve(64 * MIB, false);
    let o = qemu_io(
        &f.socket,
        "vmdisk",
        &[
            "write -P 0xab 1M 64k",
            "write -f -P 0xcd 3M 4k",
            "read -P 0xab 1M 64k",
            "write -z 4M 128k",
            "read -P 0 4M 128k",
            "discard 8M 64k",
            "flush",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("verification failed"), "{out}");
    assert_eq!(out.matches("wrote ").count(), 3, "{out}");
    assert_eq!(out.matches("read ").count(), 2, "{out}");
    // Blocks of 64 KiB: 1M is block 16, 3M block 48, 4M..4M+128k blocks
    // 64 and 65. A discard changes no data and marks nothing.
    assert_eq!(f.disk.take_dirty(), vec![16, 48, 64, 65]);
    let mut buf = vec![0u8; 4096];
    f.disk.read_at(&mut buf, 3 * MIB).unwrap();
    assert!(buf.iter().all(|b| *b == 0xcd));
    assert!(f.server.take_errors().is_empty());
}

#[test]
fn qemu_img_copies_the_export_byte_for_byte() {
    let f = serve(16 * MIB + 4096, false);
    for (i, off) in [0, 5 * MIB + 17, 16 * MIB].into_iter().enumerate() {
        let data: Vec<u8> = (0..4096u32).map(|j| (j as u8) ^ (i as u8 * 37)).collect();
        f.disk.write_at(&data, off).unwrap();
    }
    let copy = f.dir.path().join("copy.raw");
    let o = tool(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &url(&f.socket, "vmdisk"),
            copy.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let bytes = std::fs::read(&copy).unwrap();
    assert_eq!(bytes.len() as u64, f.disk.size());
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    assert_eq!(digest, f.disk.digest().unwrap());
    let info = tool("qemu-img", &["info", "--output=json", &url(&f.socket, "")]);
    assert!(
        text(&info).contains(&format!("\"virtual-size\": {}", 16 * MIB + 4096)),
        "{}",
        text(&info)
    );
}

#[test]
fn a_read_only_export_refuses_writes() {
    let f = serve(4 * MIB, true);
    let o = qemu_io(&f.socket, "vmdisk", &["write -P 1 0 4k"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Permission denied"), "{}", text(&o));
    assert_eq!(f.disk.dirty_count(), 0);
    let o = qemu_io_with(&["-r"], &f.socket, "vmdisk", &["read -P 0 0 64k"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn bad_clients_are_refused_with_a_reason_and_the_server_keeps_serving() {
    let f = serve(4 * MIB, false);
    let o = qemu_io(&f.socket, "no-such-disk", &["read 0 4k"]);
    assert!(!o.status.success(), "{}", text(&o));
    // A client that speaks no NBD after the greeting.
    let mut s = UnixStream::connect(&f.socket).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting[..8], b"NBDMAGIC");
    s.write_all(&[0, 0, 0, 1]).unwrap(); // fixed newstyle
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest); // the server hangs up
    drop(s);
    let o = qemu_io(&f.socket, "vmdisk", &["write -P 9 0 4k", "read -P 9 0 4k"]);
    assert!(o.status.success(), "{}", text(&o));
    let errors: Vec<String> = f
        .server
        .take_errors()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(errors.iter().any(|e| e.contains("IHAVEOPT")), "{errors:?}");
}
