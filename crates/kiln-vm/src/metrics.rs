//! The agent's counters in Prometheus' text exposition format (0.0.4),
//! served on `GET /metrics`: migrations by role and result, their phase,
//! bytes moved, the guest's pause, and blocks fetched on demand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Result, VmError};

/// Where a migration stands, as the `phase` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Disk and memory copied while the guest runs.
    Precopy,
    /// The guest paused at the source; the last dirty state moves.
    StopAndCopy,
    /// The guest runs at the destination; the rest is pulled.
    Postcopy,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Precopy => "precopy",
            Phase::StopAndCopy => "stop-and-copy",
            Phase::Postcopy => "postcopy",
        }
    }
}

/// Which end of a migration this host was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Source,
    Destination,
}

/// The agent's counters; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (role, succeeded) → migrations finished.
    finished: Mutex<BTreeMap<(Role, bool), u64>>,
    /// VM name → its migration's current phase.
    phases: Mutex<BTreeMap<String, Phase>>,
    disk_bytes: AtomicU64,
    memory_bytes: AtomicU64,
    on_demand: AtomicU64,
    downtime_sum_ms: AtomicU64,
    downtime_count: AtomicU64,
    running: AtomicU64,
}

impl Metrics {
    /// A migration of `vm` entered `phase` (`None`: it ended).
    pub fn phase(&self, vm: &str, phase: Option<Phase>) {
        let mut p = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        match phase {
            Some(ph) => p.insert(vm.to_string(), ph),
            None => p.remove(vm),
        };
    }

    /// A migration ended, well or not.
    pub fn finished(&self, role: Role, ok: bool) {
        let mut f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        *f.entry((role, ok)).or_default() += 1;
    }

    /// Bytes sent: disk blocks and memory.
    pub fn sent(&self, disk: u64, memory: u64) {
        self.disk_bytes.fetch_add(disk, Ordering::Relaxed);
        self.memory_bytes.fetch_add(memory, Ordering::Relaxed);
    }

    /// A completed migration's pause and its blocks fetched on demand.
    pub fn completed(&self, downtime_ms: u64, on_demand: u64) {
        self.downtime_sum_ms
            .fetch_add(downtime_ms, Ordering::Relaxed);
        self.downtime_count.fetch_add(1, Ordering::Relaxed);
        self.on_demand.fetch_add(on_demand, Ordering::Relaxed);
    }

    /// How many VMs run on this host now.
    pub fn set_running(&self, n: u64) {
        self.running.store(n, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(&mut o, "kiln_vms_running", "MicroVMs running on this host.");
        let _ = writeln!(o, "kiln_vms_running {}", load(&self.running));
        counter(
            &mut o,
            "kiln_migrations_total",
            "Migrations ended, by this host's role and result.",
        );
        let f = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        for role in [Role::Source, Role::Destination] {
            for ok in [true, false] {
                let n = f.get(&(role, ok)).copied().unwrap_or(0);
                let (r, res) = (role_label(role), if ok { "ok" } else { "failed" });
                let _ = writeln!(
                    o,
                    "kiln_migrations_total{{role=\"{r}\",result=\"{res}\"}} {n}"
                );
            }
        }
        drop(f);
        gauge(
            &mut o,
            "kiln_migration_phase",
            "1 for each migration in progress, labelled by its phase.",
        );
        for (vm, ph) in self.phases.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                o,
                "kiln_migration_phase{{vm=\"{}\",phase=\"{}\"}} 1",
                escape(vm),
                ph.label()
            );
        }
        counter(
            &mut o,
            "kiln_migration_sent_bytes_total",
            "Bytes sent to destinations, by kind.",
        );
        let _ = writeln!(
            o,
            "kiln_migration_sent_bytes_total{{kind=\"disk\"}} {}",
            load(&self.disk_bytes)
        );
        let _ = writeln!(
            o,
            "kiln_migration_sent_bytes_total{{kind=\"memory\"}} {}",
            load(&self.memory_bytes)
        );
        counter(
            &mut o,
            "kiln_migration_blocks_on_demand_total",
            "Disk blocks a resumed guest asked for before they arrived.",
        );
        let _ = writeln!(
            o,
            "kiln_migration_blocks_on_demand_total {}",
            load(&self.on_demand)
        );
        let name = "kiln_migration_downtime_seconds";
        let _ = writeln!(o, "# HELP {name} The guest's pause at switchover, as QEMU measured it.\n# TYPE {name} summary");
        let sum = load(&self.downtime_sum_ms) as f64 / 1000.0;
        let count = load(&self.downtime_count);
        let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {count}");
        o
    }
}

fn role_label(r: Role) -> &'static str {
    match r {
        Role::Source => "source",
        Role::Destination => "destination",
    }
}

fn gauge(o: &mut String, name: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn counter(o: &mut String, name: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve `metrics` on `listener` (`GET /metrics`; 404 for anything else),
/// one thread per connection.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    for stream in listener.incoming().flatten() {
        let m = Arc::clone(&metrics);
        std::thread::spawn(move || {
            let _ = answer(stream, &m);
        });
    }
}

fn answer(stream: TcpStream, m: &Metrics) -> Result<()> {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let io = |source| VmError::Io {
        peer: peer.clone(),
        source,
    };
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(io)?;
    let mut r = BufReader::new(stream.try_clone().map_err(io)?);
    let mut first = String::new();
    r.read_line(&mut first).map_err(io)?;
    let mut line = String::new();
    while r.read_line(&mut line).map_err(io)? > 2 {
        line.clear();
    }
    let path = first.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body) =
        if first.starts_with("GET ") && path.split('?').next() == Some("/metrics") {
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                m.render(),
            )
        } else {
            (
                "404 Not Found",
                "text/plain",
                "not found; try /metrics\n".to_string(),
            )
        };
    let mut w = stream;
    write!(w, "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_series_once_with_its_type() {
        let m = Metrics::default();
        m.phase("pg \"1\"", Some(Phase::Postcopy));
        m.finished(Role::Source, true);
        m.sent(10, 20);
        m.completed(42, 3);
        let t = m.render();
        assert!(
            t.contains("kiln_migration_phase{vm=\"pg \\\"1\\\"\",phase=\"postcopy\"} 1"),
            "{t}"
        );
        assert!(t.contains("kiln_migrations_total{role=\"source\",result=\"ok\"} 1"));
        assert!(
            t.contains("kiln_migration_downtime_seconds_sum 0.042"),
            "{t}"
        );
        assert!(t.contains("kiln_migration_blocks_on_demand_total 3"));
        for name in ["kiln_migrations_total", "kiln_migration_phase"] {
            assert_eq!(t.matches(&format!("# TYPE {name} ")).count(), 1);
        }
    }
}
