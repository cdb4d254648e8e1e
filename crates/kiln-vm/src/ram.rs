//! QEMU's own RAM migration, driven over QMP: pre-copy with bandwidth and
//! downtime limits, a pause before switchover (where the disk's last dirty
//! blocks go), and post-copy through userfaultfd when asked, or when the
//! guest dirties memory faster than the copy converges.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Result, VmError};
use crate::qmp::Qmp;

/// How long pre-copy may send nothing before it is given up.
const STALL: Duration = Duration::from_secs(20);

/// When to switch to post-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Postcopy {
    /// Never: pre-copy until the remainder fits the downtime limit.
    Off,
    /// When a pre-copy round leaves no less to send than the one before.
    Auto,
    /// As soon as the first round is under way.
    Always,
}

/// Limits for one migration.
#[derive(Debug, Clone)]
pub struct RamOptions {
    /// When to switch to post-copy.
    pub postcopy: Postcopy,
    /// Longest pause QEMU may plan for the final copy, in milliseconds.
    pub max_downtime_ms: u64,
    /// Bytes a second for the copy (QEMU's default when `None`).
    pub bandwidth: Option<u64>,
    /// Give up (and cancel) after this long.
    pub timeout: Duration,
}

impl Default for RamOptions {
    fn default() -> Self {
        RamOptions {
            postcopy: Postcopy::Auto,
            max_downtime_ms: 300,
            bandwidth: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// What the memory migration did, from QEMU's own counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RamReport {
    /// Pre-copy rounds (QEMU's dirty-sync count).
    pub rounds: u64,
    /// Bytes sent.
    pub transferred: u64,
    /// Dirty-page rates seen, pages a second, one per round.
    pub dirty_rates: Vec<u64>,
    /// Whether the migration ended in post-copy.
    pub postcopy: bool,
    /// Pages the destination asked for during post-copy.
    pub postcopy_requests: u64,
    /// The guest's pause as QEMU measured it, in milliseconds.
    pub downtime_ms: u64,
    /// From `migrate` to completion, in milliseconds.
    pub total_ms: u64,
}

/// Move the memory of the VM behind `src` into the one behind `dst`
/// (started with `-incoming defer`) over `uri` (`unix:PATH`,
/// `tcp:HOST:PORT`). `at_switchover` runs while the source is paused
/// before the switchover; the migration continues when it returns.
pub fn migrate(
    src: &mut Qmp,
    dst: &mut Qmp,
    uri: &str,
    opts: &RamOptions,
    at_switchover: impl FnMut() -> Result<()>,
) -> Result<RamReport> {
    listen(dst, uri, opts.postcopy)?;
    send(src, uri, opts, at_switchover, |_| {})
}

/// Memory still to copy, as QEMU reports it after each pre-copy round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RamRound {
    /// Rounds so far.
    pub round: u64,
    /// Bytes sent so far.
    pub transferred: u64,
    /// Bytes left to send.
    pub remaining: u64,
    /// Pages dirtied a second.
    pub dirty_rate: u64,
}

fn capability(name: &str, on: bool) -> Value {
    json!({ "capability": name, "state": on })
}

/// The destination's half: make the QEMU behind `dst` (started with
/// `-incoming defer`) wait for the memory on `uri`. When the two halves
/// run in different processes (two hosts' agents), this one goes first.
pub fn listen(dst: &mut Qmp, uri: &str, postcopy: Postcopy) -> Result<()> {
    let on = postcopy != Postcopy::Off;
    dst.execute(
        "migrate-set-capabilities",
        json!({ "capabilities": [capability("postcopy-ram", on)] }),
    )?;
    dst.execute("migrate-incoming", json!({ "uri": uri }))?;
    Ok(())
}

/// The source's half: send the memory of the VM behind `src` to `uri`,
/// where [`listen`] made a destination wait, and follow it to the end.
pub fn send(
    src: &mut Qmp,
    uri: &str,
    opts: &RamOptions,
    mut at_switchover: impl FnMut() -> Result<()>,
    mut observe: impl FnMut(&RamRound),
) -> Result<RamReport> {
    let on = opts.postcopy != Postcopy::Off;
    src.execute(
        "migrate-set-capabilities",
        json!({ "capabilities": [capability("postcopy-ram", on), capability("pause-before-switchover", true)] }),
    )?;
    let mut params = json!({ "downtime-limit": opts.max_downtime_ms });
    if let Some(b) = opts.bandwidth {
        params["max-bandwidth"] = json!(b);
    }
    src.execute("migrate-set-parameters", params)?;
    src.execute("migrate", json!({ "uri": uri }))?;
    follow(src, opts, &mut at_switchover, &mut observe)
}

/// Poll the source until the migration completes or fails.
fn follow(
    src: &mut Qmp,
    opts: &RamOptions,
    at_switchover: &mut impl FnMut() -> Result<()>,
    observe: &mut impl FnMut(&RamRound),
) -> Result<RamReport> {
    let start = Instant::now();
    let mut report = RamReport::default();
    let (mut started_postcopy, mut last_remaining) = (false, u64::MAX);
    let mut progress = (0u64, Instant::now());
    loop {
        let info = src.execute("query-migrate", json!({}))?;
        let sent = info["ram"]["transferred"].as_u64().unwrap_or(0);
        if sent != progress.0 {
            progress = (sent, Instant::now());
        }
        let status = info["status"].as_str().unwrap_or("").to_string();
        let ram = &info["ram"];
        let rounds = ram["dirty-sync-count"].as_u64().unwrap_or(0);
        if rounds > report.rounds {
            report.rounds = rounds;
            report
                .dirty_rates
                .push(ram["dirty-pages-rate"].as_u64().unwrap_or(0));
            let remaining = ram["remaining"].as_u64().unwrap_or(0);
            observe(&RamRound {
                round: rounds,
                transferred: ram["transferred"].as_u64().unwrap_or(0),
                remaining,
                dirty_rate: ram["dirty-pages-rate"].as_u64().unwrap_or(0),
            });
            let stalled = rounds >= 2 && remaining >= last_remaining;
            last_remaining = remaining;
            if opts.postcopy == Postcopy::Auto && stalled && !started_postcopy {
                src.execute("migrate-start-postcopy", json!({}))?;
                started_postcopy = true;
            }
        }
        match status.as_str() {
            // As early as QEMU takes it (setup counts): a small guest can
            // finish in one pass before a later poll sees "active".
            "setup" | "active" if opts.postcopy == Postcopy::Always && !started_postcopy => {
                src.execute("migrate-start-postcopy", json!({}))?;
                started_postcopy = true;
            }
            "pre-switchover" => {
                at_switchover()?;
                src.execute("migrate-continue", json!({ "state": "pre-switchover" }))?;
            }
            "completed" => return Ok(finish(report, &info, started_postcopy)),
            "failed" | "cancelled" => {
                let why = info["error-desc"].as_str().unwrap_or(&status);
                return Err(VmError::Migration(why.to_string()));
            }
            _ => {}
        }
        // QEMU's migration stream has no timeout of its own: a cut network
        // would hold it for TCP's limits. Before switchover the source can
        // still cancel and run on.
        if status == "active" && !started_postcopy && progress.1.elapsed() > STALL {
            let _ = src.execute("migrate_cancel", json!({}));
            return Err(VmError::Migration(format!(
                "no memory sent for {} s: the destination is unreachable",
                STALL.as_secs()
            )));
        }
        if start.elapsed() > opts.timeout {
            let _ = src.execute("migrate_cancel", json!({}));
            return Err(VmError::Migration(format!(
                "not complete after {} s (status {status})",
                opts.timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(mut report: RamReport, info: &Value, postcopy: bool) -> RamReport {
    let ram = &info["ram"];
    report.transferred = ram["transferred"].as_u64().unwrap_or(0);
    report.postcopy_requests = ram["postcopy-requests"].as_u64().unwrap_or(0);
    report.downtime_ms = info["downtime"].as_u64().unwrap_or(0);
    report.total_ms = info["total-time"].as_u64().unwrap_or(0);
    report.rounds = report
        .rounds
        .max(ram["dirty-sync-count"].as_u64().unwrap_or(0));
    report.postcopy = postcopy;
    report
}
