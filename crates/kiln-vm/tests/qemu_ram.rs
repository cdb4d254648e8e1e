//! QEMU's RAM migration between two real QEMU 10 processes (TCG), driven
//! through kiln-vm's QMP client: pre-copy, and post-copy via userfaultfd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kiln_vm::qmp::Qmp;
use kiln_vm::ram::{migrate, Postcopy, RamOptions};

/// A guest with no disk (its firmware finds nothing to boot and waits),
/// 64 MiB of RAM; `incoming` makes it a migration target.
fn qemu(dir: &Path, name: &str, incoming: bool) -> Bare {
    let socket: PathBuf = dir.join(format!("{name}.qmp"));
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "64",
        "-nodefaults",
    ])
    .args(["-display", "none", "-serial", "none"])
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", socket.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if incoming {
        cmd.args(["-incoming", "defer"]);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("qemu-system-x86_64 is needed (QEMU 10 from bookworm-backports; scripts/setup.sh installs it): {e}")
    });
    let qmp = Qmp::connect(&socket, Duration::from_secs(20)).unwrap();
    Bare { child, qmp }
}

/// A diskless QEMU, which [`kiln_vm::machine::Machine`] (always a kernel
/// and a disk) does not start; killed when dropped.
struct Bare {
    child: Child,
    qmp: Qmp,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bare {
    fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }
}

fn run(postcopy: Postcopy) -> kiln_vm::ram::RamReport {
    let dir = tempfile::tempdir().unwrap();
    let mut a = qemu(dir.path(), "a", false);
    let mut b = qemu(dir.path(), "b", true);
    assert_eq!(a.qmp().status().unwrap(), "running");
    assert_eq!(b.qmp().status().unwrap(), "inmigrate");
    let uri = format!("unix:{}", dir.path().join("mig.sock").display());
    let opts = RamOptions {
        postcopy,
        timeout: Duration::from_secs(120),
        ..RamOptions::default()
    };
    let mut paused_at_switchover = false;
    let report = migrate(&mut a.qmp, &mut b.qmp, &uri, &opts, || {
        paused_at_switchover = true;
        Ok(())
    })
    .unwrap();
    assert!(paused_at_switchover, "the source paused before switchover");
    assert_eq!(a.qmp().status().unwrap(), "postmigrate");
    // The destination runs once the last state is in.
    let mut status = String::new();
    for _ in 0..200 {
        status = b.qmp().status().unwrap();
        if status == "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status, "running");
    eprintln!("{postcopy:?}: {report:?}");
    assert!(report.transferred > 0 && report.rounds >= 1, "{report:?}");
    report
}

#[test]
fn precopy_moves_the_memory_and_the_destination_runs() {
    let report = run(Postcopy::Off);
    assert!(!report.postcopy, "{report:?}");
}

#[test]
fn postcopy_moves_the_memory_and_the_destination_runs() {
    let report = run(Postcopy::Always);
    assert!(report.postcopy, "{report:?}");
}

#[test]
fn a_refused_command_is_reported_with_qemus_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = qemu(dir.path(), "a", false);
    let err = a
        .qmp()
        .execute("no-such-command", serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-command") && err.contains("a.qmp"),
        "{err}"
    );
}
