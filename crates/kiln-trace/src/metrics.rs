//! `--metrics ADDR:PORT`: per-container counters of every gadget, alert
//! counters by rule, and lost-event counters per gadget, served at
//! `/metrics` in the OpenMetrics text format (Prometheus reads it).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::Result;

type Labels = Vec<(String, String)>;

/// The metrics of one trace.
pub struct Metrics {
    /// tcprtt histograms, as last read from the kernel.
    pub rtt: crate::rtt::Shared,
    registry: Registry,
    events: Family<Labels, Counter<u64, AtomicU64>>,
    alerts: Family<Labels, Counter<u64, AtomicU64>>,
    lost: Family<Labels, Counter<u64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kiln_trace");
        let events = Family::default();
        let alerts = Family::default();
        let lost = Family::default();
        registry.register(
            "events",
            "Events delivered, by gadget and container",
            events.clone(),
        );
        registry.register(
            "alerts",
            "exec-alert alerts, by rule and container",
            alerts.clone(),
        );
        registry.register(
            "lost_events",
            "Events the kernel could not deliver (buffers full), by gadget",
            lost.clone(),
        );
        let rtt = crate::rtt::Shared::default();
        registry.register_collector(Box::new(crate::rtt::RttCollector(rtt.clone())));
        Metrics {
            rtt,
            registry,
            events,
            alerts,
            lost,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    /// One event of `gadget` in `container`.
    pub fn event(&self, gadget: &str, container: &str) {
        self.events
            .get_or_create(&labels(&[("gadget", gadget), ("container", container)]))
            .inc();
    }

    /// One alert by `rule` in `container`.
    pub fn alert(&self, rule: &str, container: &str) {
        self.alerts
            .get_or_create(&labels(&[("rule", rule), ("container", container)]))
            .inc();
    }

    /// The kernel's lost count for `gadget` is now `total`.
    pub fn lost_total(&self, gadget: &str, total: u64) {
        let c = self.lost.get_or_create(&labels(&[("gadget", gadget)]));
        let now = c.get();
        if total > now {
            c.inc_by(total - now);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = encode(&mut s, &self.registry);
        s
    }
}

/// Serve `metrics` at `http://ADDR/metrics` from a thread, until the
/// process ends. Returns the address bound (for port 0).
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<std::net::SocketAddr> {
    Ok(kiln_runtime::metrics::serve(addr, move || {
        metrics.render()
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let m = Metrics::default();
        m.event("exec", "web");
        m.event("exec", "web");
        m.alert("entered", "web");
        m.lost_total("open", 3);
        m.lost_total("open", 5);
        let text = m.render();
        assert!(
            text.contains("kiln_trace_events_total{gadget=\"exec\",container=\"web\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("kiln_trace_alerts_total{rule=\"entered\",container=\"web\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kiln_trace_lost_events_total{gadget=\"open\"} 5"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
