//! Serve a disk file over kiln's NBD server until killed (for
//! `bench/nbd.sh`): `nbd_serve DISK SOCKET`.

use std::path::PathBuf;
use std::sync::Arc;

use kiln_vm::disk::{Device, Disk, DEFAULT_BLOCK};
use kiln_vm::nbd::{Export, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(disk), Some(socket)) = (args.next(), args.next()) else {
        eprintln!("usage: nbd_serve DISK SOCKET");
        std::process::exit(2);
    };
    let disk: Arc<dyn Device> = Arc::new(Disk::open(&disk, DEFAULT_BLOCK)?);
    let export = Export {
        name: "disk".into(),
        disk,
        read_only: false,
    };
    let _server = Server::spawn(&socket, export)?;
    loop {
        std::thread::park();
    }
}
