//! The per-host agent behind `kiln host serve`: it runs microVMs from OCI
//! images, serves their disks over NBD, and sends and receives live
//! migrations. Clients (the `kiln vm` and `kiln migrate` commands, and
//! other agents) speak [`proto`] to it over TCP.

mod incoming;
mod outgoing;
pub mod proto;
mod vm;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::disk::{Disk, DEFAULT_BLOCK};
use crate::error::{Result, VmError};
use crate::guest::{fetch_kernel, initramfs, Kernel, ROOT_MODULES};
use crate::machine::Accel;
use crate::metrics::Metrics;
use proto::{read_line, send_line, Reply, Request, RunRequest, VmSpec};
use vm::{Paths, Runtime, State, Vm};

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address clients reach it at, as they name it.
    pub listen: String,
    /// Where VMs' disks and files live, and the guest kernel cache.
    pub state: PathBuf,
    /// The bridge each VM's tap joins.
    pub bridge: String,
    /// kiln's guest init binary (`kiln-init`).
    pub init: PathBuf,
    /// Where Debian's guest kernel is fetched to and kept (it may be
    /// shared between agents, and filled in advance on a host whose
    /// agent cannot reach the package mirror).
    pub kernel_cache: PathBuf,
    pub accel: Accel,
}

/// One host's agent.
pub struct Agent {
    cfg: Config,
    vms: Mutex<BTreeMap<String, Arc<Mutex<Vm>>>>,
    metrics: Arc<Metrics>,
    kernel: Mutex<Option<Kernel>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The replies of one request.
pub(crate) struct Replies(TcpStream);

impl Replies {
    /// A progress event; a client that went away does not stop the work.
    pub(crate) fn event(&mut self, v: Value) {
        let _ = send_line(&mut self.0, &Reply::Event(v));
    }
    fn end(&mut self, r: Result<Value>) {
        let reply = match r {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e.to_string()),
        };
        let _ = send_line(&mut self.0, &reply);
    }
}

impl Agent {
    /// Open the state directory; VMs found there are listed as stopped.
    pub fn open(cfg: Config) -> Result<Arc<Agent>> {
        let vms_dir = cfg.state.join("vms");
        std::fs::create_dir_all(&vms_dir).map_err(|e| VmError::disk(&vms_dir, e))?;
        let mut vms = BTreeMap::new();
        for entry in std::fs::read_dir(&vms_dir).map_err(|e| VmError::disk(&vms_dir, e))? {
            let dir = entry.map_err(|e| VmError::disk(&vms_dir, e))?.path();
            // A VM dir without a spec is a half-made one: not a VM.
            if let Ok(vm) = Vm::load(&dir) {
                vms.insert(vm.spec.name.clone(), Arc::new(Mutex::new(vm)));
            }
        }
        Ok(Arc::new(Agent {
            cfg,
            vms: Mutex::new(vms),
            metrics: Arc::new(Metrics::default()),
            kernel: Mutex::new(None),
        }))
    }

    /// The agent's counters (for its `/metrics` endpoint).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Answer clients on `listener`, one thread per connection.
    pub fn serve(self: &Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming().flatten() {
            let agent = Arc::clone(self);
            std::thread::spawn(move || agent.handle(stream));
        }
    }

    fn handle(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = crate::sync::fail_fast(&stream);
        let Ok(read) = stream.try_clone() else { return };
        let mut reader = BufReader::new(read);
        let mut out = Replies(stream);
        let req: Request = match read_line(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                return out.end(Err(VmError::agent(
                    &self.cfg.listen,
                    format!("bad request: {e}"),
                )))
            }
        };
        let result = match req {
            Request::Run(r) => self.run(&r),
            Request::List => Ok(self.list()),
            Request::Inspect { name } => self.with_vm(&name, |vm| Ok(vm.info(&self.cfg.listen))),
            Request::Stop { name } => self.stop(&name),
            Request::Start { name } => self.start(&name),
            Request::Rm { name, force } => self.rm(&name, force),
            Request::Migrate(m) => self.migrate_out(&m, &mut out),
            Request::Incoming(i) => self.migrate_in(i, reader, &mut out),
        };
        self.count_running();
        out.end(result);
    }

    fn count_running(&self) {
        let vms: Vec<_> = lock(&self.vms).values().cloned().collect();
        let n = vms
            .iter()
            .filter(|v| {
                let mut vm = lock(v);
                vm.refresh();
                matches!(vm.state, State::Running | State::Migrating)
            })
            .count();
        self.metrics.set_running(n as u64);
    }

    fn vm(&self, name: &str) -> Result<Arc<Mutex<Vm>>> {
        lock(&self.vms)
            .get(name)
            .cloned()
            .ok_or_else(|| VmError::agent(&self.cfg.listen, format!("no VM named {name:?} here")))
    }

    fn with_vm<T>(&self, name: &str, f: impl FnOnce(&mut Vm) -> Result<T>) -> Result<T> {
        let vm = self.vm(name)?;
        let mut g = lock(&vm);
        f(&mut g)
    }

    fn list(&self) -> Value {
        let vms: Vec<_> = lock(&self.vms).values().cloned().collect();
        Value::Array(vms.iter().map(|v| lock(v).info(&self.cfg.listen)).collect())
    }

    fn stop(&self, name: &str) -> Result<Value> {
        self.with_vm(name, |vm| {
            if vm.state == State::Migrating || vm.state == State::Incoming {
                return Err(VmError::agent(
                    &self.cfg.listen,
                    format!("{name} is migrating"),
                ));
            }
            if let Some(mut rt) = vm.rt.take() {
                let _ = rt.machine.qmp.execute("quit", json!({}));
            }
            vm.state = State::Stopped;
            Ok(vm.info(&self.cfg.listen))
        })
    }

    /// Boot a stopped VM from the disk it kept: one stopped by `vm stop`,
    /// one whose QEMU exited, or one listed as stopped after the agent
    /// restarted.
    fn start(&self, name: &str) -> Result<Value> {
        self.with_vm(name, |vm| {
            vm.refresh();
            if vm.state != State::Stopped {
                return Err(VmError::agent(
                    &self.cfg.listen,
                    format!("{name} is {}; only a stopped VM starts", vm.state),
                ));
            }
            self.boot(vm)?;
            Ok(vm.info(&self.cfg.listen))
        })
    }

    /// Serve the VM's disk and start QEMU on it.
    fn boot(&self, vm: &mut Vm) -> Result<()> {
        let disk = Arc::new(Disk::open(&vm.paths.disk(), DEFAULT_BLOCK)?);
        let tap = self.tap_name(&vm.spec.name);
        let rt = Runtime::start(
            &vm.paths,
            &vm.spec,
            &self.cfg.bridge,
            &tap,
            disk.clone(),
            disk,
            false,
        )?;
        vm.rt = Some(rt);
        vm.state = State::Running;
        Ok(())
    }

    fn rm(&self, name: &str, force: bool) -> Result<Value> {
        let vm = self.vm(name)?;
        let mut g = lock(&vm);
        g.refresh();
        match g.state {
            State::Stopped => {}
            State::Running if force => drop(g.rt.take()),
            s => {
                return Err(VmError::agent(
                    &self.cfg.listen,
                    format!("{name} is {s}; stop it first (or --force a running one)"),
                ))
            }
        }
        std::fs::remove_dir_all(&g.paths.0).map_err(|e| VmError::disk(&g.paths.0, e))?;
        lock(&self.vms).remove(name);
        Ok(json!({ "removed": name }))
    }

    /// Reserve `name` with a fresh directory; fails if the name is taken.
    fn reserve(&self, spec: VmSpec, state: State) -> Result<Arc<Mutex<Vm>>> {
        valid_name(&spec.name).map_err(|e| VmError::agent(&self.cfg.listen, e))?;
        let mut vms = lock(&self.vms);
        if vms.contains_key(&spec.name) {
            return Err(VmError::agent(
                &self.cfg.listen,
                format!("a VM named {:?} is already on this host", spec.name),
            ));
        }
        let paths = Paths(self.cfg.state.join("vms").join(&spec.name));
        let _ = std::fs::remove_dir_all(&paths.0);
        std::fs::create_dir_all(&paths.0).map_err(|e| VmError::disk(&paths.0, e))?;
        let vm = Arc::new(Mutex::new(Vm {
            spec,
            paths,
            state,
            rt: None,
            last_migration: None,
        }));
        vms.insert(lock(&vm).spec.name.clone(), Arc::clone(&vm));
        Ok(vm)
    }

    /// Forget a VM whose creation or arrival failed, and its files.
    fn release(&self, name: &str) {
        if let Some(vm) = lock(&self.vms).remove(name) {
            let mut g = lock(&vm);
            g.rt = None;
            let _ = std::fs::remove_dir_all(&g.paths.0);
        }
    }

    fn kernel(&self) -> Result<Kernel> {
        let mut k = lock(&self.kernel);
        if let Some(k) = &*k {
            return Ok(k.clone());
        }
        let cache = &self.cfg.kernel_cache;
        std::fs::create_dir_all(cache).map_err(|e| VmError::disk(cache, e))?;
        let fetched = fetch_kernel(cache, ROOT_MODULES)?;
        *k = Some(fetched.clone());
        Ok(fetched)
    }

    fn run(&self, r: &RunRequest) -> Result<Value> {
        let spec = VmSpec {
            name: r.name.clone(),
            source: r.source.clone(),
            memory_mib: r.memory_mib,
            cpus: r.cpus,
            disk_size: r.disk_size,
            mac: mac_for(&r.name),
            process: Default::default(),
            accel: self.cfg.accel,
            created: now_rfc3339(),
        };
        let vm = self.reserve(spec, State::Stopped)?;
        let result = self.create(&vm, r);
        if result.is_err() {
            self.release(&r.name);
        }
        result
    }

    fn create(&self, vm: &Arc<Mutex<Vm>>, r: &RunRequest) -> Result<Value> {
        let mut g = lock(vm);
        let paths = g.paths.clone();
        let (tree, config) = open_image(&r.source)?;
        let mut process =
            crate::rootdisk::build(&tree, config.as_ref(), &paths.disk(), r.disk_size, &r.env)?;
        drop(tree);
        process.ip = Some(r.ip.clone());
        process.gateway = r.gateway.clone();
        let kernel = self.kernel()?;
        copy_file(&kernel.vmlinuz, &paths.kernel())?;
        let initrd = initramfs(&self.cfg.init, &kernel, &process)?;
        std::fs::write(paths.initrd(), initrd).map_err(|e| VmError::disk(&paths.initrd(), e))?;
        g.spec.process = process;
        g.save()?;
        self.boot(&mut g)?;
        Ok(g.info(&self.cfg.listen))
    }

    /// A tap name unique to the VM and this agent (IFNAMSIZ allows 15).
    fn tap_name(&self, vm: &str) -> String {
        let h = fnv(&format!("{vm}@{}", self.cfg.listen));
        format!("kv{:012x}", h & 0xffff_ffff_ffff)
    }
}

/// Open an image by any name kiln's sources take, squashed.
fn open_image(source: &str) -> Result<(kiln_tree::Tree, Option<kiln_image::spec::ImageConfig>)> {
    let err = |e: &dyn std::fmt::Display| VmError::RootDisk {
        path: PathBuf::from(source),
        reason: e.to_string(),
    };
    let reference = kiln_image::SourceRef::parse(source).map_err(|e| err(&e))?;
    let opened = kiln_image::Source::open(&reference, &kiln_image::OpenOptions::default())
        .map_err(|e| err(&e))?;
    let tree =
        kiln_tree::Tree::build(opened, &kiln_tree::BuildOptions::default()).map_err(|e| err(&e))?;
    let config = tree.image().map(|i| i.config.clone());
    Ok((tree, config))
}

fn copy_file(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| VmError::disk(to, e))
}

/// Names become directory and label values: keep them plain.
fn valid_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "VM name {name:?}: use 1-63 of [A-Za-z0-9._-], not starting with '.'"
        ))
    }
}

/// FNV-1a: a stable short hash for device names and MAC addresses.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Ask QEMU to announce the guest's MAC (five rounds, the first 50 ms
/// from now): after it resumes somewhere, so switches find it there.
/// Best effort; a switch that misses it learns from the guest's traffic.
fn announce_self(q: &mut crate::qmp::Qmp) {
    let _ = q.execute(
        "announce-self",
        json!({ "initial": 50, "max": 550, "rounds": 5, "step": 100 }),
    );
}

/// A locally administered unicast MAC derived from the VM's name, so it
/// is the same on every host the VM moves to.
fn mac_for(name: &str) -> String {
    let h = fnv(name).to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2], h[3])
}

/// Milliseconds since the Unix epoch, for lining reports up with
/// clients' logs.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_macs_and_taps_are_plain_and_stable() {
        assert!(valid_name("pg-1.a_b").is_ok());
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(64)] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(mac_for("pg"), mac_for("pg"));
        assert_ne!(mac_for("pg"), mac_for("pg2"));
        assert!(mac_for("pg").starts_with("52:54:"));
    }
}
