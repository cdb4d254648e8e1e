//! Receiving a VM from another agent: its kernel and initramfs, its disk
//! as it arrives (served to a QEMU that waits for memory), and the
//! guest's resumption here. If the source goes away before the guest
//! runs here, everything made for it is removed.

use std::io::{BufReader, Read};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proto::IncomingRequest;
use super::vm::{Runtime, State, Vm};
use super::{lock, Agent, Replies};
use crate::disk::Device;
use crate::error::{Result, VmError};
use crate::metrics::Role;
use crate::sync::Incoming;

/// How long the source may take to open the disk stream.
const ACCEPT_WAIT: Duration = Duration::from_secs(60);
/// The longest a migration may take to resume the guest here.
const RUN_WAIT: Duration = Duration::from_secs(3600);

impl Agent {
    pub(super) fn migrate_in(
        &self,
        req: IncomingRequest,
        mut control: BufReader<TcpStream>,
        out: &mut Replies,
    ) -> Result<Value> {
        let name = req.spec.name.clone();
        let vm = self.reserve(req.spec.clone(), State::Incoming)?;
        let result = self.receive(&vm, &req, &mut control, out);
        if result.is_err() {
            self.release(&name);
            self.metrics.finished(Role::Destination, false);
        }
        result
    }

    fn receive(
        &self,
        vm: &Arc<Mutex<Vm>>,
        req: &IncomingRequest,
        control: &mut BufReader<TcpStream>,
        out: &mut Replies,
    ) -> Result<Value> {
        let (paths, spec) = {
            let g = lock(vm);
            (g.paths.clone(), g.spec.clone())
        };
        let from = control
            .get_ref()
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        receive_file(control, req.kernel_len, &paths.kernel(), &from)?;
        receive_file(control, req.initrd_len, &paths.initrd(), &from)?;
        lock(vm).save()?;
        let local = control
            .get_ref()
            .local_addr()
            .map_err(|e| VmError::agent(&from, e))?
            .ip();
        let listener = TcpListener::bind((local, 0)).map_err(|e| VmError::agent(&from, e))?;
        let disk_port = listener
            .local_addr()
            .map_err(|e| VmError::agent(&from, e))?
            .port();
        out.event(json!({ "disk_port": disk_port }));
        let stream = accept(&listener, ACCEPT_WAIT, &from)?;
        let (inc, receiver) = Incoming::accept(&paths.disk(), stream)?;
        let device: Arc<dyn Device> = inc.clone();
        let tap = self.tap_name(&spec.name);
        let mut rt = Runtime::start(
            &paths,
            &spec,
            &self.cfg.bridge,
            &tap,
            device,
            inc.disk().clone(),
            true,
        )?;
        rt.incoming = Some(inc.clone());
        claim_at_switchover(&inc, &self.cfg.bridge, &spec.mac);
        let ram_port = free_port(local, &from)?;
        let host = if local.is_ipv6() {
            format!("[{local}]")
        } else {
            local.to_string()
        };
        crate::ram::listen(
            &mut rt.machine.qmp,
            &format!("tcp:{host}:{ram_port}"),
            req.postcopy,
        )?;
        out.event(json!({ "ram_port": ram_port }));
        let gone = watch(control, &from)?;
        wait_running(&mut rt, &inc, &gone, &from)?;
        let resumed = super::unix_ms();
        // QEMU announces the guest after an incoming migration on its
        // own; asking again helps a switch that missed the first rounds.
        super::announce_self(&mut rt.machine.qmp);
        {
            let mut g = lock(vm);
            g.rt = Some(rt);
            g.state = State::Running;
        }
        self.follow_disk(vm, receiver, inc, from.clone());
        Ok(
            json!({ "running": true, "host": self.cfg.listen, "from": from, "resumed_at_unix_ms": resumed }),
        )
    }

    /// Record the end of the disk copy once the last block is here.
    fn follow_disk(
        &self,
        vm: &Arc<Mutex<Vm>>,
        receiver: std::thread::JoinHandle<Result<u64>>,
        inc: Arc<Incoming>,
        from: String,
    ) {
        let (vm, metrics) = (Arc::clone(vm), Arc::clone(&self.metrics));
        std::thread::spawn(move || {
            let result = receiver
                .join()
                .unwrap_or_else(|_| Err(VmError::Migration("the disk receiver panicked".into())));
            metrics.finished(Role::Destination, result.is_ok());
            let mut g = lock(&vm);
            g.last_migration = Some(match result {
                Ok(blocks) => {
                    json!({
                        "result": "ok",
                        "from": from,
                        "blocks_received": blocks,
                        "blocks_on_demand": inc.asked(),
                        "disk_root": inc.root(),
                    })
                }
                Err(e) => {
                    json!({ "result": "disk-incomplete", "from": from, "error": e.to_string() })
                }
            });
        });
    }
}

/// Once the source is paused for switchover, claim the guest's MAC on
/// this host's bridge, so frames sent to the guest during the pause wait
/// here instead of dying with the source (see [`crate::announce`]).
fn claim_at_switchover(inc: &Arc<Incoming>, bridge: &str, mac: &str) {
    let (inc, bridge, mac) = (Arc::clone(inc), bridge.to_string(), mac.to_string());
    std::thread::spawn(move || {
        if inc.wait_switchover() {
            if let Err(e) = crate::announce::claim(&bridge, &mac) {
                eprintln!("kiln: could not announce {mac} on {bridge}: {e}");
            }
        }
    });
}

/// Copy exactly `len` bytes from the control stream into `path`.
fn receive_file(
    control: &mut BufReader<TcpStream>,
    len: u64,
    path: &Path,
    from: &str,
) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| VmError::disk(path, e))?;
    let n = std::io::copy(&mut control.take(len), &mut f).map_err(|e| VmError::agent(from, e))?;
    if n != len {
        return Err(VmError::agent(
            from,
            format!("{} ended after {n} of {len} bytes", path.display()),
        ));
    }
    Ok(())
}

/// Accept one connection within `wait`.
fn accept(listener: &TcpListener, wait: Duration, from: &str) -> Result<TcpStream> {
    listener
        .set_nonblocking(true)
        .map_err(|e| VmError::agent(from, e))?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .map_err(|e| VmError::agent(from, e))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(VmError::agent(
                    from,
                    format!("the disk stream never came: {e}"),
                ))
            }
        }
    }
}

/// A port free on `ip` now, for QEMU to listen on.
fn free_port(ip: IpAddr, from: &str) -> Result<u16> {
    let l = TcpListener::bind((ip, 0)).map_err(|e| VmError::agent(from, e))?;
    Ok(l.local_addr().map_err(|e| VmError::agent(from, e))?.port())
}

/// A flag raised when the source closes the control connection.
fn watch(control: &mut BufReader<TcpStream>, from: &str) -> Result<Arc<AtomicBool>> {
    let gone = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&gone);
    let mut stream = control
        .get_ref()
        .try_clone()
        .map_err(|e| VmError::agent(from, e))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        flag.store(true, Ordering::Release);
    });
    Ok(gone)
}

/// Wait until QEMU runs the guest here, or give up because the source
/// went away, the disk stream failed, or QEMU exited.
fn wait_running(rt: &mut Runtime, inc: &Incoming, gone: &AtomicBool, from: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        if rt.machine.exited().is_some() {
            return Err(VmError::agent(from, "QEMU exited while receiving the VM"));
        }
        if rt.machine.qmp.status()? == "running" {
            return Ok(());
        }
        if let Some(why) = inc.failed() {
            return Err(VmError::agent(
                from,
                format!("the disk stream failed: {why}"),
            ));
        }
        if gone.load(Ordering::Acquire) {
            return Err(VmError::agent(
                from,
                "the source closed the migration before switchover",
            ));
        }
        if start.elapsed() > RUN_WAIT {
            return Err(VmError::agent(from, "the guest never resumed here"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
