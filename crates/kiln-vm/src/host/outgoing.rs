//! Sending a running VM to another agent: its disk in pre-copy rounds
//! (continued in the background while memory moves), memory through
//! QEMU's migration, the disk's switchover while the source is paused,
//! then stop-and-copy or post-copy. The source lets go only once the
//! destination runs the guest and owns every block.

use std::cell::RefCell;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proto::{Client, IncomingRequest, MigrateRequest, Reply, Request, VmSpec};
use super::vm::{Paths, Runtime, State};
use super::{lock, Agent, Replies};
use crate::error::{Result, VmError};
use crate::metrics::{Phase, Role};
use crate::ram::{self, Postcopy, RamOptions, RamRound};
use crate::sync::{Finish, Round, Source};

/// Attempts before a migration that keeps failing before switchover gives up.
const ATTEMPTS: u32 = 3;
/// Pre-copy rounds stop once this few blocks are dirty...
const CONVERGED_BLOCKS: u64 = 16;
/// ...or after this many rounds.
const MAX_ROUNDS: usize = 8;
/// How long the destination may take to run the guest once memory is there.
const RESUME_WAIT: Duration = Duration::from_secs(120);

/// How an attempt failed.
enum Failure {
    /// Before switchover: the source guest never stopped. Worth another
    /// try when the cause was the network.
    Before { err: VmError, retry: bool },
    /// At or after switchover.
    After(VmError),
}

fn before(err: VmError) -> Failure {
    let retry = !matches!(err, VmError::Refused { .. });
    Failure::Before { err, retry }
}

impl Agent {
    pub(super) fn migrate_out(&self, m: &MigrateRequest, out: &mut Replies) -> Result<Value> {
        let vm = self.vm(&m.name)?;
        let (spec, paths, mut rt) = {
            let mut g = lock(&vm);
            g.refresh();
            let arriving =
                g.rt.as_ref()
                    .and_then(|rt| rt.incoming.as_ref())
                    .is_some_and(|i| !i.complete());
            if g.state != State::Running || arriving {
                let why = if arriving {
                    "still receiving its disk".to_string()
                } else {
                    g.state.to_string()
                };
                return Err(VmError::agent(
                    &self.cfg.listen,
                    format!("{} cannot move: it is {why}", m.name),
                ));
            }
            let Some(rt) = g.rt.take() else {
                return Err(VmError::agent(
                    &self.cfg.listen,
                    format!("{} is not running", m.name),
                ));
            };
            g.state = State::Migrating;
            (g.spec.clone(), g.paths.clone(), rt)
        };
        let start = Instant::now();
        let mut failures = Vec::new();
        let result = loop {
            let attempt = failures.len() as u32 + 1;
            out.event(json!({ "phase": "connect", "attempt": attempt, "to": m.to }));
            match self.attempt(&spec, &paths, &mut rt, m, out) {
                Ok(report) => break Ok(report),
                Err(Failure::Before { err, retry }) if retry && attempt < ATTEMPTS => {
                    out.event(
                        json!({ "phase": "retry", "attempt": attempt, "error": err.to_string() }),
                    );
                    failures.push(err.to_string());
                    std::thread::sleep(Duration::from_secs(u64::from(attempt)));
                }
                Err(Failure::Before { err, .. }) => break Err((err, true)),
                Err(Failure::After(err)) => break Err((err, false)),
            }
        };
        self.metrics.phase(&m.name, None);
        match result {
            Ok(mut report) => {
                report["attempts"] = json!(failures.len() + 1);
                report["failed_attempts"] = json!(failures);
                report["total_ms"] = json!(start.elapsed().as_millis() as u64);
                drop(rt);
                self.metrics.finished(Role::Source, true);
                self.release(&m.name);
                Ok(report)
            }
            Err((err, untouched)) => {
                self.metrics.finished(Role::Source, false);
                self.recover(&vm, rt, &err, untouched, &failures);
                Err(err)
            }
        }
    }

    /// After a failed migration: resume the source guest if it still has
    /// its state, so exactly one copy runs; say why in its record.
    fn recover(
        &self,
        vm: &Arc<std::sync::Mutex<super::vm::Vm>>,
        mut rt: Runtime,
        err: &VmError,
        untouched: bool,
        failures: &[String],
    ) {
        let q = &mut rt.machine.qmp;
        let status = q.status().unwrap_or_default();
        let resumed = if status == "postmigrate" || status.is_empty() {
            false // the destination has the guest (post-copy), or QEMU is gone
        } else {
            let _ = q.execute("migrate_cancel", json!({}));
            std::thread::sleep(Duration::from_millis(50));
            if q.status().unwrap_or_default() != "running" {
                let _ = q.execute("cont", json!({}));
            }
            let running = q.status().unwrap_or_default() == "running";
            if running && !untouched {
                // The destination may have claimed the guest's MAC at
                // switchover; take it back.
                super::announce_self(q);
            }
            running
        };
        let mut g = lock(vm);
        g.last_migration = Some(json!({
            "result": "aborted",
            "error": err.to_string(),
            "failed_attempts": failures,
            "before_switchover": untouched,
            "source_resumed": resumed,
        }));
        if resumed {
            g.rt = Some(rt);
            g.state = State::Running;
        } else {
            g.state = State::Stopped;
        }
    }

    fn attempt(
        &self,
        spec: &VmSpec,
        paths: &Paths,
        rt: &mut Runtime,
        m: &MigrateRequest,
        out: &mut Replies,
    ) -> std::result::Result<Value, Failure> {
        let (mut dest, source, ram_uri) = self.connect(spec, paths, rt, m).map_err(before)?;
        self.metrics.phase(&m.name, Some(Phase::Precopy));
        let (source, rounds) = precopy(source, out).map_err(before)?;
        let moved = self.move_memory(source, rt, &ram_uri, m, out)?;
        let running = await_running(&mut dest, &m.to).map_err(Failure::After)?;
        // The guest stopped here at switchover: re-read, the disk is the
        // final state the destination must have received. A whole read
        // of the disk, so only when asked.
        let source_root = match m.verify {
            true => Some(rt.disk.root().map_err(Failure::After)?),
            false => None,
        };
        Ok(self.report(spec, m, &rounds, &moved, running, source_root))
    }

    /// Memory through QEMU, with the disk's switchover in its pause;
    /// returns once the destination owns every block.
    fn move_memory(
        &self,
        source: Source,
        rt: &mut Runtime,
        uri: &str,
        m: &MigrateRequest,
        out: &mut Replies,
    ) -> std::result::Result<Moved, Failure> {
        let opts = RamOptions {
            postcopy: m.postcopy,
            max_downtime_ms: m.max_downtime_ms,
            bandwidth: m.bandwidth,
            ..RamOptions::default()
        };
        let out = RefCell::new(out);
        let mut background = Some(Background::start(source));
        let mut finishing: Option<Finishing> = None;
        let mut switch = SwitchInfo::default();
        let mut ram_rounds = Vec::new();
        let hook = || {
            self.metrics.phase(&m.name, Some(Phase::StopAndCopy));
            let t = Instant::now();
            switch.at_unix_ms = super::unix_ms();
            let bg = background
                .take()
                .ok_or_else(|| VmError::Migration("switchover twice".into()))?;
            let (source, more) = bg.stop()?;
            switch.background = more;
            let switched = source.switchover()?;
            switch.stale = switched.stale();
            out.borrow_mut()
                .event(json!({ "phase": "switchover", "stale_blocks": switch.stale }));
            finishing = Some(if m.postcopy == Postcopy::Off {
                Finishing::Done(switched.finish(None)?)
            } else {
                let bw = m.bandwidth;
                Finishing::Running(std::thread::spawn(move || switched.finish(bw)))
            });
            switch.hook_ms = t.elapsed().as_millis() as u64;
            Ok(())
        };
        let observe = |r: &RamRound| {
            ram_rounds.push(*r);
            out.borrow_mut()
                .event(json!({ "phase": "memory", "round": r }));
        };
        let sent = ram::send(&mut rt.machine.qmp, uri, &opts, hook, observe);
        let ram = match (sent, finishing.is_some()) {
            (Ok(r), _) => r,
            (Err(e), false) => {
                if let Some(bg) = background.take() {
                    let _ = bg.stop();
                }
                return Err(before(e));
            }
            (Err(e), true) => return Err(Failure::After(e)),
        };
        if ram.postcopy || m.postcopy != Postcopy::Off {
            self.metrics.phase(&m.name, Some(Phase::Postcopy));
        }
        out.into_inner()
            .event(json!({ "phase": "resumed-at-destination", "downtime_ms": ram.downtime_ms }));
        let disk = match finishing {
            Some(Finishing::Done(f)) => f,
            Some(Finishing::Running(h)) => h
                .join()
                .map_err(|_| Failure::After(VmError::Migration("the disk copy panicked".into())))?
                .map_err(Failure::After)?,
            None => {
                return Err(Failure::After(VmError::Migration(
                    "no switchover happened".into(),
                )))
            }
        };
        Ok(Moved {
            ram,
            ram_rounds,
            switch,
            disk,
        })
    }

    /// The migration report; counts the bytes in the agent's metrics.
    fn report(
        &self,
        spec: &VmSpec,
        m: &MigrateRequest,
        rounds: &[Round],
        moved: &Moved,
        running: Value,
        source_root: Option<String>,
    ) -> Value {
        let (ram, disk, switch) = (&moved.ram, &moved.disk, &moved.switch);
        let bg = &switch.background;
        let sum = |f: fn(&Round) -> u64, rs: &[Round]| rs.iter().map(f).sum::<u64>();
        let sent = sum(|r| r.bytes, rounds) + bg.bytes + disk.bytes;
        self.metrics.sent(sent, ram.transferred);
        self.metrics.completed(ram.downtime_ms, disk.on_demand);
        json!({
            "name": m.name,
            "from": self.cfg.listen,
            "to": m.to,
            "accel": spec.accel,
            "postcopy_mode": m.postcopy,
            "result": "ok",
            "downtime_ms": ram.downtime_ms,
            "switchover_hook_ms": switch.hook_ms,
            "paused_at_unix_ms": switch.at_unix_ms,
            "postcopy_ms": disk.millis,
            "disk": {
                "precopy_rounds": rounds,
                "background": {
                    "rounds": bg.rounds,
                    "blocks": bg.blocks,
                    "bytes": bg.bytes,
                },
                "bytes": sent,
                "stale_at_switchover": switch.stale,
                "blocks_on_demand": disk.on_demand,
                "final": disk,
                "sent_root": disk.sent_root,
                "source_root": source_root,
            },
            "memory": ram,
            "memory_rounds": moved.ram_rounds,
            "destination": running,
        })
    }

    /// Open the destination: send it the VM, start the disk stream, and
    /// learn where its QEMU waits for memory.
    fn connect(
        &self,
        spec: &VmSpec,
        paths: &Paths,
        rt: &Runtime,
        m: &MigrateRequest,
    ) -> Result<(Client, Source, String)> {
        let mut dest = Client::connect(&m.to)?;
        dest.set_timeout(Some(Duration::from_secs(120)))?;
        let len = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| VmError::disk(p, e))
        };
        dest.send(&Request::Incoming(IncomingRequest {
            spec: spec.clone(),
            postcopy: m.postcopy,
            kernel_len: len(&paths.kernel())?,
            initrd_len: len(&paths.initrd())?,
        }))?;
        for p in [paths.kernel(), paths.initrd()] {
            let mut f = std::fs::File::open(&p).map_err(|e| VmError::disk(&p, e))?;
            dest.send_raw(&mut f)?;
        }
        let ip = dest.peer_ip()?;
        let disk_port = port(&mut dest, "disk_port", &m.to)?;
        let stream = TcpStream::connect_timeout(&(ip, disk_port).into(), Duration::from_secs(10))
            .map_err(|e| VmError::agent(&m.to, format!("disk stream: {e}")))?;
        let _ = stream.set_nodelay(true);
        let source = Source::start(rt.disk.clone(), stream)?;
        let ram_port = port(&mut dest, "ram_port", &m.to)?;
        let host = if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        Ok((dest, source, format!("tcp:{host}:{ram_port}")))
    }
}

/// The next event from the destination, which must carry `key`.
fn port(dest: &mut Client, key: &str, to: &str) -> Result<u16> {
    match dest.reply()? {
        Reply::Event(v) => v[key]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| VmError::agent(to, format!("expected {key}, got {v}"))),
        Reply::Error(e) => Err(VmError::refused(to, e)),
        Reply::Ok(v) => Err(VmError::agent(to, format!("expected {key}, got {v}"))),
    }
}

/// Rounds over the dirty blocks until few are left or rounds run out.
fn precopy(mut source: Source, out: &mut Replies) -> Result<(Source, Vec<Round>)> {
    let mut rounds = Vec::new();
    loop {
        let r = source.round()?;
        rounds.push(r);
        let dirty = r.dirtied;
        out.event(json!({ "phase": "disk-precopy", "round": rounds.len(), "sent": r, "dirty_after": dirty }));
        if dirty <= CONVERGED_BLOCKS || rounds.len() >= MAX_ROUNDS {
            return Ok((source, rounds));
        }
    }
}

/// The disk's last phase: done in the pause (stop-and-copy), or running
/// beside the resumed guest (post-copy).
enum Finishing {
    Done(Finish),
    Running(JoinHandle<Result<Finish>>),
}

/// What [`Agent::move_memory`] gave.
struct Moved {
    ram: ram::RamReport,
    ram_rounds: Vec<RamRound>,
    switch: SwitchInfo,
    disk: Finish,
}

/// The destination's last word: it runs the guest.
fn await_running(dest: &mut Client, to: &str) -> Result<Value> {
    dest.set_timeout(Some(RESUME_WAIT))?;
    match dest.reply()? {
        Reply::Ok(v) => Ok(v),
        Reply::Error(e) => Err(VmError::refused(to, e)),
        Reply::Event(v) => Err(VmError::agent(to, format!("unexpected {v}"))),
    }
}

/// What the background rounds sent, summed (there is one every 20 ms
/// while memory moves; only the totals are reported).
#[derive(Debug, Default, Clone, Copy)]
struct BackgroundTotal {
    rounds: u64,
    blocks: u64,
    bytes: u64,
}

#[derive(Default)]
struct SwitchInfo {
    background: BackgroundTotal,
    stale: u64,
    hook_ms: u64,
    /// When the source paused, for lining the report up with clients' logs.
    at_unix_ms: u64,
}

/// Disk rounds that keep running while memory moves, so that the blocks
/// left for the pause are only those written in the last moments.
struct Background {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<(Source, BackgroundTotal)>>,
}

impl Background {
    fn start(mut source: Source) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut total = BackgroundTotal::default();
            while !flag.load(Ordering::Acquire) {
                if source.dirty() > 0 {
                    let r = source.round()?;
                    total.rounds += 1;
                    total.blocks += r.blocks;
                    total.bytes += r.bytes;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((source, total))
        });
        Background { stop, handle }
    }

    fn stop(self) -> Result<(Source, BackgroundTotal)> {
        self.stop.store(true, Ordering::Release);
        self.handle
            .join()
            .map_err(|_| VmError::Migration("the background disk copy panicked".into()))?
    }
}
