//! One VM as an agent keeps it: its spec and files in the state
//! directory, and while it runs, its QEMU, NBD server and tap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::disk::{Device, Disk};
use crate::error::{Result, VmError};
use crate::host::proto::VmSpec;
use crate::machine::{Machine, MachineSpec, Tap};
use crate::nbd::{Export, Server};
use crate::sync::Incoming;

/// Where a VM stands on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its guest runs here.
    Running,
    /// Its guest runs here and is being moved away.
    Migrating,
    /// Arriving from another host; not running here yet.
    Incoming,
    /// Powered off (or not restarted after the agent was); disk kept.
    Stopped,
}

/// As `vm inspect` says it, for messages.
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Running => "running",
            State::Migrating => "migrating",
            State::Incoming => "incoming",
            State::Stopped => "stopped",
        })
    }
}

/// The files of one VM, under `STATE/vms/NAME`.
#[derive(Debug, Clone)]
pub struct Paths(pub PathBuf);

impl Paths {
    pub fn spec(&self) -> PathBuf {
        self.0.join("spec.json")
    }
    pub fn disk(&self) -> PathBuf {
        self.0.join("disk.raw")
    }
    pub fn kernel(&self) -> PathBuf {
        self.0.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.0.join("initrd.gz")
    }
    pub fn nbd(&self) -> PathBuf {
        self.0.join("nbd.sock")
    }
    pub fn qmp(&self) -> PathBuf {
        self.0.join("qmp.sock")
    }
    pub fn console(&self) -> PathBuf {
        self.0.join("console.log")
    }
}

/// A VM's running parts; dropping them powers the VM off.
#[derive(Debug)]
pub struct Runtime {
    // Field order is drop order: QEMU first, then its disk server and tap.
    pub machine: Machine,
    pub _nbd: Server,
    pub _tap: Tap,
    /// The disk file, for the next migration.
    pub disk: Arc<Disk>,
    /// Set while blocks are still arriving after a post-copy switchover.
    pub incoming: Option<Arc<Incoming>>,
}

impl Runtime {
    /// Serve `device` and start QEMU over it, on a tap on `bridge`.
    pub fn start(
        paths: &Paths,
        spec: &VmSpec,
        bridge: &str,
        tap: &str,
        device: Arc<dyn Device>,
        disk: Arc<Disk>,
        incoming: bool,
    ) -> Result<Runtime> {
        let _ = std::fs::remove_file(paths.nbd());
        let _ = std::fs::remove_file(paths.qmp());
        let export = Export {
            name: "root".into(),
            disk: device,
            read_only: false,
        };
        let nbd = Server::spawn(&paths.nbd(), export)?;
        let tap = Tap::create(tap, bridge)?;
        let machine = Machine::spawn(&MachineSpec {
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            kernel: paths.kernel(),
            initrd: paths.initrd(),
            nbd: paths.nbd(),
            net: Some((tap.name().to_string(), spec.mac.clone())),
            console: paths.console(),
            qmp: paths.qmp(),
            incoming,
            accel: spec.accel,
        })?;
        Ok(Runtime {
            machine,
            _nbd: nbd,
            _tap: tap,
            disk,
            incoming: None,
        })
    }
}

/// One VM known to the agent.
#[derive(Debug)]
pub struct Vm {
    pub spec: VmSpec,
    pub paths: Paths,
    pub state: State,
    pub rt: Option<Runtime>,
    /// What the last migration out of or into this host reported.
    pub last_migration: Option<Value>,
}

impl Vm {
    /// A VM found in the state directory: stopped until started again.
    pub fn load(dir: &Path) -> Result<Vm> {
        let paths = Paths(dir.to_path_buf());
        let text = std::fs::read(paths.spec()).map_err(|e| VmError::disk(&paths.spec(), e))?;
        let spec = serde_json::from_slice(&text)
            .map_err(|e| VmError::root_disk(&paths.spec(), format!("not a VM spec: {e}")))?;
        Ok(Vm {
            spec,
            paths,
            state: State::Stopped,
            rt: None,
            last_migration: None,
        })
    }

    /// Write the spec, replacing the old one only once complete.
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.spec).map_err(std::io::Error::other);
        let tmp = self.paths.0.join(".spec.json.tmp");
        text.and_then(|t| std::fs::write(&tmp, t))
            .and_then(|()| std::fs::rename(&tmp, self.paths.spec()))
            .map_err(|e| VmError::disk(&self.paths.spec(), e))
    }

    /// Notice a guest that powered off by itself.
    pub fn refresh(&mut self) {
        let exited = self.rt.as_mut().and_then(|rt| rt.machine.exited());
        if exited.is_some() && self.state == State::Running {
            self.rt = None;
            self.state = State::Stopped;
        }
    }

    /// The summary `vm ls` shows and the detail `vm inspect` adds to.
    pub fn info(&mut self, host: &str) -> Value {
        self.refresh();
        let s = &self.spec;
        let disk = self.rt.as_ref().map(|rt| {
            let complete = rt.incoming.as_ref().is_none_or(|i| i.complete());
            json!({
                "path": self.paths.disk(),
                "size": rt.disk.size(),
                "block_size": rt.disk.block_size(),
                "dirty_blocks": rt.disk.dirty_count(),
                "complete": complete,
            })
        });
        json!({
            "name": s.name,
            "state": self.state,
            "host": host,
            "address": s.process.ip,
            "gateway": s.process.gateway,
            "mac": s.mac,
            "memory_mib": s.memory_mib,
            "cpus": s.cpus,
            "disk_size": s.disk_size,
            "disk": disk.unwrap_or_else(|| json!({ "path": self.paths.disk(), "size": s.disk_size })),
            "source": s.source,
            "accel": s.accel,
            "pid": self.rt.as_ref().map(|rt| rt.machine.pid()),
            "command": s.process.args,
            "created": s.created,
            "console": self.paths.console(),
            "last_migration": self.last_migration,
        })
    }
}
