//! `kiln trace`: eBPF gadgets for runc containers.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use kiln_trace::alert::Rules;
use kiln_trace::event::{Detail, Event};
use kiln_trace::gadget::Gadget;
use kiln_trace::metrics::Metrics;
use kiln_trace::session::{self, Options, Sinks};
use std::sync::Arc;

/// Trace containers with eBPF, on the kernel's stable tracepoints.
///
/// Events are attributed to containers by mount namespace; containers come
/// from runc's state roots (as for kiln debug) and are picked up while
/// tracing, from their entrypoint's first exec. Events the kernel could not
/// deliver are counted and reported, never dropped silently. Needs root.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kiln trace exec                       # every exec in every container\n  \
    kiln trace exec,open --container web  # one container\n  \
    kiln trace open --duration 10 -o json | jq .path")]
pub struct Args {
    /// Gadgets: exec, open, exec-alert, tcp, tcprtt, traceloop (several as
    /// exec,open).
    #[arg(value_delimiter = ',', required = true, value_parser = clap::value_parser!(Gadget))]
    pub gadgets: Vec<Gadget>,
    /// Trace this container (repeatable) [default: all].
    #[arg(long = "container", value_name = "ID")]
    pub containers: Vec<String>,
    /// Trace every container (the default).
    #[arg(long, conflicts_with = "containers")]
    pub all: bool,
    /// runc state root [default: /run/runc, /run/docker/runtime-runc/moby,
    /// /run/containerd/runc/k8s.io, /run/containerd/runc/default].
    #[arg(long, value_name = "DIR")]
    pub runc_root: Option<PathBuf>,
    /// Stop after SECS seconds [default: at Ctrl-C].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// tcprtt: print the histograms every SECS seconds (and at the end).
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// tcprtt: one histogram per remote address, not only per container.
    #[arg(long)]
    pub by_remote: bool,
    /// traceloop: system calls kept per container (the last N are dumped
    /// on SIGUSR1, and when a container's init exits with a non-zero
    /// status).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub calls: usize,
    /// exec-alert rules: a YAML file of allowed/denied binary paths per
    /// container (see the README).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (port 0 picks
    /// a free one; the address is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Output: table or json (one event per line) [default: table on a
    /// terminal, else json].
    #[arg(short, long, value_name = "FORMAT", value_parser = ["table", "json"])]
    pub output: Option<String>,
}

/// Run the gadgets until Ctrl-C or the duration.
pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let json = match args.output.as_deref() {
        Some(o) => o == "json",
        None => !std::io::stdout().is_terminal(),
    };
    kiln_runtime::runc::catch_signals();
    let opts = Options {
        gadgets: args
            .gadgets
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        roots: kiln_runtime::container::roots(args.runc_root.as_deref()),
        containers: (!args.containers.is_empty())
            .then(|| args.containers.iter().cloned().collect()),
        duration: args.duration.map(Duration::from_secs_f64),
        stop: &kiln_runtime::runc::INTERRUPTED,
        rules: match &args.rules {
            Some(p) => Rules::load(p)?,
            None => Rules::default(),
        },
        metrics: args.metrics.as_ref().map(|_| Arc::new(Metrics::default())),
        rtt_by_remote: args.by_remote,
        rtt_interval: args.interval.map(Duration::from_secs_f64),
        loop_calls: args.calls,
    };
    kiln_trace::traceloop::dump_on_sigusr1();
    let served = match (&args.metrics, &opts.metrics) {
        (Some(addr), Some(m)) => Some(kiln_trace::metrics::serve(addr, m.clone())?),
        _ => None,
    };
    let names: Vec<&str> = opts.gadgets.iter().map(|g| g.name()).collect();
    let names = names.join(", ");
    if !json && opts.gadgets.iter().any(|g| *g != Gadget::Tcprtt) {
        let _ = writeln!(
            std::io::stdout(),
            "{:<20} {:>8} {:>8} {:<16} {:<10} DETAILS",
            "CONTAINER",
            "PID",
            "PPID",
            "COMM",
            "EVENT"
        );
    }
    let mut ready = || {
        if !quiet {
            let at = served
                .map(|a| format!("; metrics at http://{a}/metrics"))
                .unwrap_or_default();
            eprintln!("kiln: tracing {names}{at}; Ctrl-C to stop");
        }
    };
    // Buffered, flushed after each batch: a write per event would cost more
    // than the event.
    let out = std::cell::RefCell::new(std::io::BufWriter::with_capacity(
        1 << 16,
        std::io::stdout(),
    ));
    let mut on_event = |e: &Event| {
        let mut out = out.borrow_mut();
        let _ = if json {
            serde_json::to_writer(&mut *out, e)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out))
        } else {
            writeln!(out, "{}", row(e))
        };
    };
    let mut batch_done = || {
        let _ = out.borrow_mut().flush();
    };
    let mut on_rtt = |t: &kiln_trace::rtt::Table, _done: bool| {
        let _ = out.borrow_mut().flush();
        print_rtt(t, json);
    };
    let mut on_dump = |d: &kiln_trace::traceloop::Dump| {
        let _ = out.borrow_mut().flush();
        print_dump(d, json);
    };
    let summary = session::run(
        &opts,
        Sinks {
            ready: &mut ready,
            event: &mut on_event,
            rtt: &mut on_rtt,
            dump: &mut on_dump,
            batch_done: &mut batch_done,
        },
    )?;
    for (g, n) in &summary.lost {
        if *n > 0 {
            eprintln!("kiln: warning: {n} {g} events were lost (the kernel's buffers were full)");
        }
    }
    if !quiet {
        let total: u64 = summary.events.values().flat_map(|m| m.values()).sum();
        let lost: u64 = summary.lost.values().sum();
        eprintln!(
            "kiln: {total} events from {} containers, {lost} lost",
            summary.containers.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn row(e: &Event) -> String {
    let detail = match &e.detail {
        Detail::Exec {
            args,
            error,
            entered,
            ..
        } => {
            let mut s = args.join(" ");
            if *entered {
                s = format!("[entered] {s}");
            }
            if let Some(err) = error {
                s += &format!("  ({err})");
            }
            s
        }
        Detail::Tcp {
            event,
            saddr,
            sport,
            daddr,
            dport,
            oldstate,
            newstate,
            ..
        } => {
            let states = match oldstate {
                Some(o) => format!("{o} -> {newstate}"),
                None => newstate.to_string(),
            };
            format!("{event} {saddr}:{sport} -> {daddr}:{dport} {states}")
        }
        Detail::Open {
            path,
            flags,
            fd,
            error,
        } => match (fd, error) {
            (Some(fd), _) => format!("{path} {} = {fd}", flags.join("|")),
            (None, Some(err)) => format!("{path} {} ({err})", flags.join("|")),
            _ => path.clone(),
        },
    };
    format!(
        "{:<20} {:>8} {:>8} {:<16} {:<10} {detail}",
        e.container,
        e.pid,
        e.ppid,
        e.comm,
        e.gadget.name()
    )
}

/// tcprtt histograms: JSON lines, or text histograms.
fn print_rtt(table: &kiln_trace::rtt::Table, json: bool) {
    let mut out = std::io::stdout().lock();
    for ((container, remote), h) in table {
        let _ = if json {
            let v = serde_json::json!({
                "gadget": "tcprtt",
                "container": container,
                "remote": remote.map(|r| r.to_string()),
                "count": h.count,
                "sum_us": h.sum_us,
                "buckets": h.buckets.iter().enumerate().filter(|(_, n)| **n > 0)
                    .map(|(i, n)| serde_json::json!({ "le_us": (1u64 << (i + 1)) - 1, "count": n }))
                    .collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")
        } else {
            let title = match remote {
                Some(r) => format!("{container} to {r}"),
                None => container.clone(),
            };
            writeln!(out, "{}", kiln_trace::rtt::render(&title, h))
        };
    }
}

/// A traceloop dump: one JSON document, or a listing.
fn print_dump(d: &kiln_trace::traceloop::Dump, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(d).unwrap_or_default();
        v["gadget"] = "traceloop".into();
        let _ = writeln!(out, "{v}");
        return;
    }
    let _ = writeln!(
        out,
        "traceloop {}: {} ({} calls)",
        d.container,
        d.reason,
        d.calls.len()
    );
    for c in &d.calls {
        let ret = match (&c.ret, &c.error) {
            (Some(_), Some(e)) => format!(" = {} ({e})", c.ret.unwrap_or_default()),
            (Some(r), None) => format!(" = {r}"),
            (None, _) => " = ?".into(),
        };
        let _ = writeln!(
            out,
            "{:>8} {:<16} {}({}){ret}",
            c.tid,
            c.comm,
            c.syscall,
            c.args.join(", ")
        );
    }
}
