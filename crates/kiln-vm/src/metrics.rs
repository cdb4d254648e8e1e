//! The agent's metrics, served on `GET /metrics` in the OpenMetrics text
//! format: migrations by role and result, their phase, bytes moved, the
//! guest's pause, and blocks fetched on demand.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

type Labels = Vec<(&'static str, String)>;

/// Pauses at switchover, in seconds: TCG's are 30–200 ms here, and a
/// stalled switchover takes seconds.
const DOWNTIME_BUCKETS: [f64; 9] = [0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0];

/// The agent's metrics; cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    running: Gauge<i64, AtomicI64>,
    finished: Family<Labels, Counter<u64, AtomicU64>>,
    phases: Family<Labels, Gauge<i64, AtomicI64>>,
    sent: Family<Labels, Counter<u64, AtomicU64>>,
    on_demand: Counter<u64, AtomicU64>,
    downtime: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("kiln"),
            running: Gauge::default(),
            finished: Family::default(),
            phases: Family::default(),
            sent: Family::default(),
            on_demand: Counter::default(),
            downtime: Histogram::new(DOWNTIME_BUCKETS),
        };
        let r = &mut m.registry;
        r.register(
            "vms_running",
            "MicroVMs running on this host",
            m.running.clone(),
        );
        r.register(
            "migrations",
            "Migrations ended, by this host's role and result",
            m.finished.clone(),
        );
        r.register(
            "migration_phase",
            "1 for each migration in progress, labelled by its phase",
            m.phases.clone(),
        );
        r.register(
            "migration_sent_bytes",
            "Bytes sent to destinations, by kind",
            m.sent.clone(),
        );
        r.register(
            "migration_blocks_on_demand",
            "Disk blocks a resumed guest asked for before they arrived",
            m.on_demand.clone(),
        );
        r.register(
            "migration_downtime_seconds",
            "The guest's pause at switchover, as QEMU measured it",
            m.downtime.clone(),
        );
        // Every role, result and kind from the start, so rates work from zero.
        for role in [Role::Source, Role::Destination] {
            for ok in [true, false] {
                m.finished.get_or_create(&outcome(role, ok)).inc_by(0);
            }
        }
        m.sent(0, 0);
        m
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn outcome(role: Role, ok: bool) -> Labels {
    let role = match role {
        Role::Source => "source",
        Role::Destination => "destination",
    };
    let result = if ok { "ok" } else { "failed" };
    vec![("role", role.to_string()), ("result", result.to_string())]
}

impl Metrics {
    /// A migration of `vm` entered `phase` (`None`: it ended).
    pub fn phase(&self, vm: &str, phase: Option<Phase>) {
        for ph in [Phase::Precopy, Phase::StopAndCopy, Phase::Postcopy] {
            let labels = vec![("vm", vm.to_string()), ("phase", ph.label().to_string())];
            if Some(ph) == phase {
                self.phases.get_or_create(&labels).set(1);
            } else {
                self.phases.remove(&labels);
            }
        }
    }

    /// A migration ended, well or not.
    pub fn finished(&self, role: Role, ok: bool) {
        self.finished.get_or_create(&outcome(role, ok)).inc();
    }

    /// Bytes sent: disk blocks and memory.
    pub fn sent(&self, disk: u64, memory: u64) {
        for (kind, n) in [("disk", disk), ("memory", memory)] {
            self.sent
                .get_or_create(&vec![("kind", kind.to_string())])
                .inc_by(n);
        }
    }

    /// A completed migration's pause and its blocks fetched on demand.
    pub fn completed(&self, downtime_ms: u64, on_demand: u64) {
        self.downtime.observe(downtime_ms as f64 / 1000.0);
        self.on_demand.inc_by(on_demand);
    }

    /// How many VMs run on this host now.
    pub fn set_running(&self, n: u64) {
        self.running.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_series_once_with_its_type() {
        let m = Metrics::default();
        m.phase("pg1", Some(Phase::Precopy));
        m.phase("pg1", Some(Phase::Postcopy));
        m.phase("other", Some(Phase::Precopy));
        m.phase("other", None);
        m.finished(Role::Source, true);
        m.sent(10, 20);
        m.completed(42, 3);
        let t = m.render();
        assert!(
            t.contains("kiln_migration_phase{vm=\"pg1\",phase=\"postcopy\"} 1"),
            "{t}"
        );
        assert_eq!(t.matches("kiln_migration_phase{").count(), 1, "{t}");
        assert!(t.contains("kiln_migrations_total{role=\"source\",result=\"ok\"} 1"));
        assert!(t.contains("kiln_migrations_total{role=\"destination\",result=\"failed\"} 0"));
        assert!(t.contains("kiln_migration_sent_bytes_total{kind=\"memory\"} 20"));
        assert!(
            t.contains("kiln_migration_downtime_seconds_sum 0.042"),
            "{t}"
        );
        assert!(
            t.contains("kiln_migration_downtime_seconds_bucket{le=\"0.05\"} 1"),
            "{t}"
        );
        assert!(t.contains("kiln_migration_blocks_on_demand_total 3"));
        for name in ["kiln_migrations", "kiln_migration_phase"] {
            assert_eq!(t.matches(&format!("# TYPE {name} ")).count(), 1);
        }
        assert!(t.ends_with("# EOF\n"));
    }
}
