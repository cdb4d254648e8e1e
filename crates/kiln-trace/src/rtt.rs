//! tcprtt: the kernel keeps a log2 histogram of smoothed RTT (µs) per
//! network namespace (and remote address, if asked); this reads it back
//! per container, prints it, and exports it as a Prometheus histogram.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use libbpf_rs::{MapCore, MapFlags};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use serde::Serialize;

use crate::containers::{Namespace, Resolver};
use crate::skel::TraceSkel;

/// log2 slots (`RTT_SLOTS` in trace.h).
pub const SLOTS: usize = 32;

/// One histogram.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Hist {
    /// Samples per slot: slot i holds RTTs in [2^i, 2^(i+1)) µs.
    pub buckets: Vec<u64>,
    /// Sum of the samples, µs.
    pub sum_us: u64,
    /// Number of samples.
    pub count: u64,
}

/// Histograms by container and (optionally) remote address.
pub type Table = BTreeMap<(String, Option<IpAddr>), Hist>;

/// A table shared with the metrics server.
pub type Shared = Arc<Mutex<Table>>;

fn remote(raw: &[u8], by_remote: bool) -> Option<IpAddr> {
    let b: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
    by_remote.then(|| crate::event::address(&b, b[4..].iter().any(|x| *x != 0)))
}

/// Read the kernel's histograms now (they are cumulative).
pub(crate) fn read(skel: &TraceSkel<'_>, resolver: &mut Resolver, by_remote: bool) -> Table {
    let mut table = Table::new();
    let container = |resolver: &mut Resolver, ns: u32| {
        if resolver.lookup(Namespace::Net(ns)).is_none() {
            resolver.scan();
        }
        resolver
            .lookup(Namespace::Net(ns))
            .flatten()
            .map(|i| i.id.clone())
    };
    for key in skel.maps.rtt_hist.keys() {
        let (Some(ns), Some(slot)) = (word(&key, 0), word(&key, 4)) else {
            continue;
        };
        let Some(id) = container(resolver, ns) else {
            continue;
        };
        let n = skel
            .maps
            .rtt_hist
            .lookup(&key, MapFlags::ANY)
            .ok()
            .flatten();
        let n = n
            .as_deref()
            .and_then(|v| v.get(..8)?.try_into().ok())
            .map(u64::from_ne_bytes);
        let h = table.entry((id, remote(&key, by_remote))).or_default();
        h.buckets.resize(SLOTS, 0);
        if let Some(b) = h.buckets.get_mut(slot as usize) {
            *b += n.unwrap_or(0);
        }
    }
    for key in skel.maps.rtt_totals.keys() {
        let Some(ns) = word(&key, 0) else { continue };
        let Some(id) = container(resolver, ns) else {
            continue;
        };
        let v = skel
            .maps
            .rtt_totals
            .lookup(&key, MapFlags::ANY)
            .ok()
            .flatten()
            .unwrap_or_default();
        let (Some(sum), Some(count)) = (dword(&v, 0), dword(&v, 8)) else {
            continue;
        };
        let h = table.entry((id, remote(&key, by_remote))).or_default();
        h.buckets.resize(SLOTS, 0);
        h.sum_us += sum;
        h.count += count;
    }
    table
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn dword(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A histogram as text, one line per non-empty slot range.
pub fn render(title: &str, h: &Hist) -> String {
    let last = h.buckets.iter().rposition(|n| *n > 0).unwrap_or(0);
    let first = h.buckets.iter().position(|n| *n > 0).unwrap_or(0);
    let max = h.buckets.iter().copied().max().unwrap_or(0).max(1);
    let mut out = format!(
        "{title}: {} samples, mean {} µs\n",
        h.count,
        h.sum_us.checked_div(h.count).unwrap_or(0)
    );
    out += &format!("{:>22} : {:<8} |{:<40}|\n", "µs", "count", "distribution");
    for (i, n) in h.buckets.iter().enumerate().take(last + 1).skip(first) {
        let lo = if i == 0 { 0 } else { 1u64 << i };
        let hi = (1u64 << (i + 1)) - 1;
        let bar = "*".repeat((*n * 40 / max) as usize);
        out += &format!("{:>10} -> {:<9} : {:<8} |{:<40}|\n", lo, hi, n, bar);
    }
    out
}

/// The RTT histograms as a Prometheus histogram,
/// `kiln_trace_tcp_rtt_microseconds{container, remote}`.
#[derive(Debug)]
pub struct RttCollector(pub Shared);

impl Collector for RttCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.0.lock().map(|t| t.clone()).unwrap_or_default();
        if table.is_empty() {
            return Ok(());
        }
        let help = "Smoothed TCP round-trip time, per container (tcprtt)";
        let mut family =
            encoder.encode_descriptor("tcp_rtt_microseconds", help, None, MetricType::Histogram)?;
        for ((container, remote), h) in &table {
            let mut labels = vec![("container".to_string(), container.clone())];
            if let Some(r) = remote {
                labels.push(("remote".to_string(), r.to_string()));
            }
            let mut buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| ((1u64 << (i + 1)) as f64, *n))
                .collect();
            buckets.push((f64::INFINITY, 0));
            let metric = family.encode_family(&labels)?;
            Hist::encode_into(metric, h.sum_us as f64, h.count, &buckets)?;
        }
        Ok(())
    }
}

impl Hist {
    fn encode_into(
        mut m: prometheus_client::encoding::MetricEncoder<'_>,
        sum: f64,
        count: u64,
        buckets: &[(f64, u64)],
    ) -> Result<(), std::fmt::Error> {
        m.encode_histogram::<Vec<(String, String)>>(sum, count, buckets, None)
    }
}

// Registration needs the trait in scope for some versions of the crate.
#[allow(unused_imports)]
use EncodeMetric as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_its_slots() {
        let mut h = Hist {
            buckets: vec![0; SLOTS],
            sum_us: 300,
            count: 3,
        };
        h.buckets[6] = 2;
        h.buckets[7] = 1;
        let text = render("web", &h);
        assert!(text.contains("3 samples, mean 100 µs"), "{text}");
        assert!(text.contains("64 -> 127"), "{text}");
        assert!(!text.contains("1 -> 3"), "{text}");
    }
}
