//! One trace: load the gadgets' programs, attach them, poll the ring
//! buffer, attribute events to containers, and count what was lost.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use serde::Serialize;

use crate::containers::{mntns_of, netns_of, Namespace, Resolver};
use crate::error::{Result, TraceError};
use crate::event::{self, Event, Raw};
use crate::gadget::Gadget;
use crate::rtt;
use crate::skel::{TraceSkel, TraceSkelBuilder};
use crate::tracefs::Tracefs;
use crate::traceloop::{self, Recorder};

const BTF: &str = "/sys/kernel/btf/vmlinux";

/// What to trace.
pub struct Options<'a> {
    /// Gadgets to run.
    pub gadgets: Vec<Gadget>,
    /// runc state roots to find containers in.
    pub roots: Vec<PathBuf>,
    /// Container ids to trace; None for every container.
    pub containers: Option<BTreeSet<String>>,
    /// Stop after this long; None to run until `stop`.
    pub duration: Option<Duration>,
    /// Set (by a signal handler) to stop.
    pub stop: &'a AtomicBool,
    /// Rules for `exec-alert` (the `entered` alert needs none).
    pub rules: crate::alert::Rules,
    /// tcprtt: a histogram per remote address, not only per container.
    pub rtt_by_remote: bool,
    /// tcprtt: hand the histograms over every this often (and at the end).
    pub rtt_interval: Option<Duration>,
    /// traceloop: calls kept per container.
    pub loop_calls: usize,
    /// Counters to keep for `--metrics`.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// Where a trace's output goes.
pub struct Sinks<'a> {
    /// Called once every program is attached.
    pub ready: &'a mut dyn FnMut(),
    /// Called for every event in a traced container.
    pub event: &'a mut dyn FnMut(&Event),
    /// Called with the tcprtt histograms every interval and at the end
    /// (`true`).
    pub rtt: &'a mut dyn FnMut(&rtt::Table, bool),
    /// Called with each traceloop dump.
    pub dump: &'a mut dyn FnMut(&traceloop::Dump),
    /// Called after each batch of events (a sink may buffer until then).
    pub batch_done: &'a mut dyn FnMut(),
}

/// Counts at the end of a trace.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Events delivered, per gadget and container.
    pub events: BTreeMap<Gadget, BTreeMap<String, u64>>,
    /// Events the kernel could not deliver (ring buffer or per-thread
    /// table full), per gadget.
    pub lost: BTreeMap<Gadget, u64>,
    /// Containers traced.
    pub containers: Vec<String>,
}

fn kernel(gadget: &str, what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> TraceError {
    let (gadget, what) = (gadget.to_string(), what.into());
    move |err| TraceError::Kernel { gadget, what, err }
}

/// Trace until `opts.stop` is set or `opts.duration` passes.
pub fn run(opts: &Options<'_>, sinks: Sinks<'_>) -> Result<Summary> {
    if !kiln_runtime::runc::is_root() {
        return Err(TraceError::NotRoot);
    }
    if !Path::new(BTF).exists() {
        return Err(TraceError::NoBtf(BTF.into()));
    }
    let _tracefs = Tracefs::ensure()?;
    let names: Vec<&str> = opts.gadgets.iter().map(|g| g.name()).collect();
    let all = names.join(",");
    let mut object = MaybeUninit::uninit();
    let mut open = TraceSkelBuilder::default()
        .open(&mut object)
        .map_err(kernel(&all, "opening the BPF object"))?;
    if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
        ro.host_mntns = mntns_of(std::process::id() as i32).unwrap_or(0);
        ro.host_netns = netns_of(std::process::id() as i32).unwrap_or(0);
        ro.rtt_by_remote = u8::from(opts.rtt_by_remote);
    }
    let wanted: BTreeSet<&str> = opts
        .gadgets
        .iter()
        .flat_map(|g| g.programs())
        .copied()
        .collect();
    for mut p in open.open_object_mut().progs_mut() {
        let keep = p.name().to_str().is_some_and(|n| wanted.contains(n));
        p.set_autoload(keep);
    }
    let skel = open.load().map_err(kernel(&all, "loading the programs"))?;
    let _links = attach(&skel, &opts.gadgets)?;
    let resolver = Resolver::new(opts.roots.clone(), opts.containers.clone());
    (sinks.ready)();
    poll(&skel, opts, resolver, sinks, &all)
}

fn attach(skel: &TraceSkel<'_>, gadgets: &[Gadget]) -> Result<Vec<libbpf_rs::Link>> {
    let mut links = Vec::new();
    for p in skel.object().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        // Gadgets may share programs (exec and exec-alert): attach once.
        if let Some(g) = gadgets
            .iter()
            .find(|g| g.programs().contains(&name.as_str()))
        {
            links.push(
                p.attach()
                    .map_err(kernel(g.name(), format!("attaching {name}")))?,
            );
        }
    }
    Ok(links)
}

/// Tell the kernel to drop a mount namespace's events.
fn ignore(skel: &TraceSkel<'_>, ns: Namespace, id: u64) {
    let map = match ns {
        Namespace::Mnt(_) => &skel.maps.ignored,
        Namespace::Net(_) => &skel.maps.ignored_net,
    };
    let _ = map.update(&id.to_ne_bytes(), &[1], MapFlags::ANY);
}

fn poll(
    skel: &TraceSkel<'_>,
    opts: &Options<'_>,
    resolver: Resolver,
    sinks: Sinks<'_>,
    all: &str,
) -> Result<Summary> {
    let on_event = sinks.event;
    let on_dump = sinks.dump;
    let batch_done = sinks.batch_done;
    let queue: RefCell<Vec<Raw>> = RefCell::new(Vec::new());
    let mut builder = libbpf_rs::RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |data: &[u8]| {
            if let Some(raw) = event::decode(data) {
                queue.borrow_mut().push(raw);
            }
            0
        })
        .map_err(kernel(all, "setting up the ring buffer"))?;
    let ring = builder
        .build()
        .map_err(kernel(all, "setting up the ring buffer"))?;
    let mut router = Router {
        skel,
        opts,
        resolver,
        held: Held::default(),
        summary: Summary::default(),
        rtt_at: (Instant::now(), Instant::now()),
        recorder: Recorder::new(opts.loop_calls),
        dumps: Vec::new(),
    };
    let start = Instant::now();
    loop {
        let done =
            opts.stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| start.elapsed() >= d);
        if done {
            let _ = ring.consume();
        } else {
            // EINTR (a signal) is not an error: the loop checks `stop`.
            let _ = ring.poll(Duration::from_millis(100));
        }
        let batch = std::mem::take(&mut *queue.borrow_mut());
        for raw in batch {
            router.route(raw, on_event);
        }
        router.settle(on_event, done);
        router.update_lost();
        router.rtt(done, sinks.rtt);
        if traceloop::DUMP_REQUESTED.swap(false, Ordering::SeqCst) {
            for c in router.recorder.containers() {
                router
                    .dumps
                    .push(router.recorder.dump(&c, "requested (SIGUSR1)"));
            }
        }
        for d in router.dumps.drain(..) {
            on_dump(&d);
        }
        batch_done();
        if done {
            break;
        }
    }
    let mut summary = router.summary;
    for g in &opts.gadgets {
        summary.lost.insert(*g, lost(skel, *g));
    }
    summary.containers = router
        .resolver
        .traced()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    Ok(summary)
}

/// How long events from an unknown mount namespace wait for its
/// container's state to appear before the namespace is ignored.
const GRACE: Duration = Duration::from_secs(2);
/// Most events held for one unknown namespace.
const HELD_MAX: usize = 65_536;

/// Events from mount namespaces not known yet, by namespace.
#[derive(Default)]
struct Held(HashMap<(Namespace, u64), (Instant, Vec<Raw>)>);

/// Attribution, delivery and counting.
struct Router<'s, 'o> {
    skel: &'s TraceSkel<'o>,
    opts: &'s Options<'s>,
    resolver: Resolver,
    held: Held,
    summary: Summary,
    /// Last read of the histograms, last hand-over.
    rtt_at: (Instant, Instant),
    /// traceloop's rings.
    recorder: Recorder,
    /// Dumps due, handed over after each batch.
    dumps: Vec<traceloop::Dump>,
}

impl Router<'_, '_> {
    fn route(&mut self, raw: Raw, on_event: &mut dyn FnMut(&Event)) {
        let (ns, id) = (raw.namespace(), raw.head().ns_id);
        match self.resolver.lookup(ns) {
            Some(Some(_)) if self.resolver.confirm(ns, id).is_none() => self.hold(ns, id, raw),
            Some(Some(info)) => self.emit(&raw, &info, on_event),
            Some(None) => {
                // A container not asked for: the kernel drops it from now on.
                if !self.resolver.is_unwanted(ns, id) {
                    self.resolver.mark_unwanted(ns, id);
                    ignore(self.skel, ns, id);
                }
            }
            None if self.resolver.is_unwanted(ns, id) => {}
            None => self.hold(ns, id, raw),
        }
    }

    fn hold(&mut self, ns: Namespace, id: u64, raw: Raw) {
        let slot = self
            .held
            .0
            .entry((ns, id))
            .or_insert_with(|| (Instant::now(), Vec::new()));
        if slot.1.len() < HELD_MAX {
            slot.1.push(raw);
        }
    }

    /// Read the state roots again for held namespaces: deliver what now
    /// belongs to a container, give up on the ones past the grace period.
    fn settle(&mut self, on_event: &mut dyn FnMut(&Event), force: bool) {
        if self.held.0.is_empty() {
            self.resolver.refresh(Duration::from_secs(1));
            return;
        }
        self.resolver.scan();
        let held = std::mem::take(&mut self.held.0);
        for ((ns, id), (since, events)) in held {
            let mut known = self.resolver.lookup(ns);
            if known.is_none() {
                let pids: Vec<u32> = events.iter().map(|r| r.head().pid).collect();
                known = self.resolver.adopt(ns, &pids).map(Some);
            }
            let confirmed = match known {
                Some(Some(_)) => self.resolver.confirm(ns, id),
                _ => None,
            };
            match (confirmed, known) {
                (Some(info), _) => {
                    for raw in &events {
                        self.emit(raw, &info, on_event);
                    }
                }
                (None, Some(None)) => {}
                (None, _) if force || since.elapsed() >= GRACE => {
                    self.resolver.mark_unwanted(ns, id);
                    ignore(self.skel, ns, id);
                }
                (None, _) => {
                    self.held.0.insert((ns, id), (since, events));
                }
            }
        }
    }

    fn emit(
        &mut self,
        raw: &Raw,
        info: &crate::containers::Info,
        on_event: &mut dyn FnMut(&Event),
    ) {
        if let Raw::Sys(s) = raw {
            return self.record(s, info);
        }
        let Some(e) = event::event(raw, &info.id, info.init_pid) else {
            return;
        };
        if self.opts.gadgets.contains(&e.gadget) {
            self.count(&e);
            on_event(&e);
        }
        if e.gadget == Gadget::Exec && self.opts.gadgets.contains(&Gadget::ExecAlert) {
            for alert in self.opts.rules.check(&e) {
                if let Some(m) = &self.opts.metrics {
                    m.alert(alert.rule(), &e.container);
                }
                let a = Event {
                    gadget: Gadget::ExecAlert,
                    alert: Some(alert),
                    ..e.clone()
                };
                self.count(&a);
                on_event(&a);
            }
        }
    }

    fn count(&mut self, e: &Event) {
        let per = self.summary.events.entry(e.gadget).or_default();
        match per.get_mut(&e.container) {
            Some(n) => *n += 1,
            None => {
                per.insert(e.container.clone(), 1);
            }
        }
        if let Some(m) = &self.opts.metrics {
            m.event(e.gadget.name(), &e.container);
        }
    }

    /// tcprtt: read the histograms every second (for the metrics), and hand
    /// them over every interval and at the end.
    fn rtt(&mut self, done: bool, sink: &mut dyn FnMut(&rtt::Table, bool)) {
        if !self.opts.gadgets.contains(&Gadget::Tcprtt) {
            return;
        }
        let (read_due, send_due) = (
            self.rtt_at.0.elapsed() >= Duration::from_secs(1),
            self.opts
                .rtt_interval
                .is_some_and(|i| self.rtt_at.1.elapsed() >= i),
        );
        if !(done || read_due || send_due) {
            return;
        }
        let table = rtt::read(self.skel, &mut self.resolver, self.opts.rtt_by_remote);
        self.rtt_at.0 = Instant::now();
        if let Some(m) = &self.opts.metrics {
            if let Ok(mut t) = m.rtt.lock() {
                *t = table.clone();
            }
        }
        if done || send_due {
            sink(&table, done);
            self.rtt_at.1 = Instant::now();
        }
    }

    /// traceloop: into the container's ring; a failing init dumps it.
    fn record(&mut self, s: &crate::skel::types::sys_event, info: &crate::containers::Info) {
        if !self.opts.gadgets.contains(&Gadget::Traceloop) {
            return;
        }
        if s.h.kind == 6 {
            if s.h.pid as i32 == info.init_pid {
                if let Some(why) = traceloop::failure(s.exit_code) {
                    self.dumps.push(self.recorder.dump(&info.id, &why));
                }
            }
            return;
        }
        self.recorder.record(&info.id, s);
        if s.h.kind == 4 {
            *self
                .summary
                .events
                .entry(Gadget::Traceloop)
                .or_default()
                .entry(info.id.clone())
                .or_default() += 1;
            if let Some(m) = &self.opts.metrics {
                m.event(Gadget::Traceloop.name(), &info.id);
            }
        }
    }

    /// The kernel's lost counts, into the metrics.
    fn update_lost(&self) {
        if let Some(m) = &self.opts.metrics {
            for g in &self.opts.gadgets {
                m.lost_total(g.name(), lost(self.skel, *g));
            }
        }
    }
}

/// The kernel's count of lost events for a gadget, summed over CPUs.
fn lost(skel: &TraceSkel<'_>, g: Gadget) -> u64 {
    let key = g.lost_slot().to_ne_bytes();
    let per_cpu = skel
        .maps
        .lost
        .lookup_percpu(&key, MapFlags::ANY)
        .ok()
        .flatten();
    per_cpu
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            v.get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
        })
        .sum()
}
