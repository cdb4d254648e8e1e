//! `kiln host serve`, `kiln vm run|ls|inspect|stop|start|rm` and `kiln migrate`:
//! microVMs from OCI images, and their live migration between hosts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use kiln_vm::host::proto::{Client, MigrateRequest, Request, RunRequest};
use kiln_vm::host::{Agent, Config};
use kiln_vm::machine::Accel;
use kiln_vm::ram::Postcopy;
use serde_json::Value;

use crate::progress;

/// `kiln host …`.
#[derive(Subcommand, Debug)]
pub enum HostCommand {
    /// Run this host's agent: it runs microVMs, serves their disks, and
    /// sends and receives migrations.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on for clients and other agents.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: String,
    /// Directory for VM disks, their files and the guest kernel cache.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Bridge each VM's tap joins (it must exist).
    #[arg(long, value_name = "BRIDGE")]
    bridge: String,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
    /// Where Debian's guest kernel is fetched to (default: STATE/kernel).
    #[arg(long, value_name = "DIR")]
    kernel_cache: Option<PathBuf>,
    /// kiln's guest init (default: `kiln-init` beside this binary).
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
}

/// `kiln vm …`.
#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Boot an image in a microVM on a host.
    Run(RunArgs),
    /// List a host's VMs.
    Ls(ListArgs),
    /// Show one VM: state, host, address, disk and memory.
    Inspect(NameArgs),
    /// Power a VM off, keeping its disk.
    Stop(NameArgs),
    /// Boot a stopped VM again from its disk.
    Start(NameArgs),
    /// Delete a stopped VM and its disk.
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The image (any kiln source; the host's agent opens it).
    source: String,
    /// The host's agent.
    #[arg(long, value_name = "ADDR:PORT")]
    host: String,
    /// The VM's name, unique on its host.
    #[arg(long)]
    name: String,
    /// Guest memory.
    #[arg(long, value_name = "MiB", default_value_t = 512)]
    memory: u32,
    /// Guest CPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    cpus: u32,
    /// Root disk size.
    #[arg(long, value_name = "GiB", default_value_t = 2)]
    disk_size: u64,
    /// The guest's address on the bridge's network.
    #[arg(long, value_name = "CIDR")]
    ip: String,
    /// The guest's default gateway.
    #[arg(long, value_name = "IP")]
    gateway: Option<String>,
    /// Environment over the image's own, `K=V` (repeatable).
    #[arg(long, value_name = "K=V")]
    env: Vec<String>,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_name = "ADDR:PORT")]
    host: String,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    name: String,
    #[arg(long, value_name = "ADDR:PORT")]
    host: String,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    name: String,
    #[arg(long, value_name = "ADDR:PORT")]
    host: String,
    /// Power a running VM off first.
    #[arg(long)]
    force: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostcopyArg {
    /// When memory stops converging.
    Auto,
    /// Never: stop-and-copy.
    Off,
    /// Right after the first round.
    Always,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The VM.
    name: String,
    /// The agent it runs on.
    #[arg(long, value_name = "ADDR:PORT")]
    from: String,
    /// The agent to move it to.
    #[arg(long, value_name = "ADDR:PORT")]
    to: String,
    /// When to switch to post-copy.
    #[arg(long, value_enum, default_value_t = PostcopyArg::Auto)]
    postcopy: PostcopyArg,
    /// Longest pause QEMU may plan for the final memory copy.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    max_downtime: u64,
    /// Copy at most this fast (memory, and the post-copy disk pull).
    #[arg(long, value_name = "MiB/s")]
    bandwidth: Option<u64>,
    /// After the move, re-read the source's whole disk and report its
    /// root digest beside the one of what was sent (`vm inspect` on the
    /// destination shows the root of what it received).
    #[arg(long)]
    verify: bool,
    /// Print the migration report on stdout.
    #[arg(long, value_enum)]
    report: Option<ReportFormat>,
}

pub fn serve(c: HostCommand) -> Result<ExitCode> {
    let HostCommand::Serve(a) = c;
    let init = match a.init {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("kiln-init"),
    };
    if !init.is_file() {
        bail!("{}: kiln's guest init is not there (build it with `cargo build --bins`, or pass --init)", init.display());
    }
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    let agent = Agent::open(Config {
        listen: a.listen.clone(),
        state: a.state.clone(),
        bridge: a.bridge,
        init,
        kernel_cache: a.kernel_cache.unwrap_or_else(|| a.state.join("kernel")),
        accel: Accel::detect(),
    })
    .with_context(|| format!("cannot open the state directory {}", a.state.display()))?;
    if let Some(m) = &a.metrics {
        let metrics = agent.metrics();
        kiln_runtime::metrics::serve(m, move || metrics.render())?;
    }
    eprintln!(
        "kiln: host agent on {} ({:?}), state in {}",
        a.listen,
        Accel::detect(),
        a.state.display()
    );
    agent.serve(listener);
    Ok(ExitCode::SUCCESS)
}

fn call(host: &str, req: &Request) -> Result<Value> {
    let mut c = Client::connect(host)?;
    Ok(c.call(req, |_| {})?)
}

pub fn vm(c: VmCommand, quiet: bool) -> Result<ExitCode> {
    match c {
        VmCommand::Run(a) => {
            let bar = progress::spinner(
                &format!("building {} and booting it on {}", a.name, a.host),
                quiet,
            );
            let req = Request::Run(RunRequest {
                name: a.name,
                source: absolute_source(&a.source),
                memory_mib: a.memory,
                cpus: a.cpus,
                disk_size: a.disk_size << 30,
                ip: a.ip,
                gateway: a.gateway,
                env: a.env,
            });
            let v = call(&a.host, &req);
            bar.finish_and_clear();
            show(&[v?], a.output);
        }
        VmCommand::Ls(a) => {
            let v = call(&a.host, &Request::List)?;
            let list = v.as_array().cloned().unwrap_or_default();
            if a.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                show(&list, a.output);
            }
        }
        VmCommand::Inspect(a) => show(
            &[call(&a.host, &Request::Inspect { name: a.name })?],
            a.output,
        ),
        VmCommand::Stop(a) => show(&[call(&a.host, &Request::Stop { name: a.name })?], a.output),
        VmCommand::Start(a) => show(
            &[call(&a.host, &Request::Start { name: a.name })?],
            a.output,
        ),
        VmCommand::Rm(a) => {
            call(
                &a.host,
                &Request::Rm {
                    name: a.name.clone(),
                    force: a.force,
                },
            )?;
            if !quiet {
                eprintln!("kiln: removed {}", a.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON object each, or a table.
fn show(vms: &[Value], output: Output) {
    if output == Output::Json {
        for v in vms {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
        return;
    }
    println!(
        "{:<20} {:<10} {:<18} {:>7} {:>5} {:>9}  SOURCE",
        "NAME", "STATE", "ADDRESS", "MEMORY", "CPUS", "DISK"
    );
    for v in vms {
        let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20} {:<10} {:<18} {:>6}M {:>5} {:>8}G  {}",
            s("name"),
            s("state"),
            s("address"),
            v["memory_mib"],
            v["cpus"],
            v["disk_size"].as_u64().unwrap_or(0) >> 30,
            s("source"),
        );
    }
}

/// A local source as an absolute path, since the agent opens it from
/// its own working directory; other sources as given.
fn absolute_source(source: &str) -> String {
    match std::env::current_dir() {
        Ok(cwd) => absolute_in(source, &cwd),
        Err(_) => source.to_string(),
    }
}

/// [`absolute_source`] with relative paths taken from `base`.
fn absolute_in(source: &str, base: &Path) -> String {
    let local = [
        "oci-dir:",
        "oci-archive:",
        "docker-archive:",
        "dir:",
        "oci:",
    ];
    let (prefix, rest) = match local.iter().find(|p| source.starts_with(*p)) {
        Some(p) => (*p, &source[p.len()..]),
        None if base.join(source).exists() => ("", source),
        None => return source.to_string(),
    };
    // FILE[:REF]: the longest part that names something here.
    let (path, suffix) = match rest.rsplit_once(':') {
        Some((p, r)) if !base.join(rest).exists() => (p, format!(":{r}")),
        _ => (rest, String::new()),
    };
    match std::fs::canonicalize(base.join(path)) {
        Ok(abs) => format!("{prefix}{}{suffix}", abs.display()),
        Err(_) => source.to_string(),
    }
}

pub fn migrate(a: MigrateArgs, quiet: bool) -> Result<ExitCode> {
    let req = Request::Migrate(MigrateRequest {
        name: a.name.clone(),
        to: a.to.clone(),
        postcopy: match a.postcopy {
            PostcopyArg::Auto => Postcopy::Auto,
            PostcopyArg::Off => Postcopy::Off,
            PostcopyArg::Always => Postcopy::Always,
        },
        max_downtime_ms: a.max_downtime,
        bandwidth: a.bandwidth.map(|b| b << 20),
        verify: a.verify,
    });
    let bar = progress::spinner(&format!("migrating {} to {}", a.name, a.to), quiet);
    let mut c = Client::connect(&a.from)?;
    let mut last_phase = String::new();
    let report = c.call(&req, |ev| {
        let phase = ev["phase"].as_str().unwrap_or("").to_string();
        bar.set_message(describe(&ev));
        if phase != last_phase && !quiet {
            bar.suspend(|| eprintln!("kiln: {}", describe(&ev)));
        }
        last_phase = phase;
    });
    bar.finish_and_clear();
    let report =
        report.with_context(|| format!("cannot migrate {} from {} to {}", a.name, a.from, a.to))?;
    if a.report == Some(ReportFormat::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        eprintln!(
            "kiln: {} runs on {}: paused {} ms, {} MiB of memory and {} MiB of disk sent, {} block(s) fetched on demand, {} ms in all",
            a.name,
            a.to,
            report["downtime_ms"],
            report["memory"]["transferred"].as_u64().unwrap_or(0) >> 20,
            report["disk"]["bytes"].as_u64().unwrap_or(0) >> 20,
            report["disk"]["blocks_on_demand"],
            report["total_ms"],
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One progress event in words.
fn describe(ev: &Value) -> String {
    match ev["phase"].as_str().unwrap_or("") {
        "connect" => format!(
            "attempt {}: connecting to {}",
            ev["attempt"],
            ev["to"].as_str().unwrap_or("")
        ),
        "retry" => format!(
            "attempt {} failed ({}); retrying",
            ev["attempt"],
            ev["error"].as_str().unwrap_or("")
        ),
        "disk-precopy" => format!(
            "disk pre-copy round {}: {} blocks, {} dirty after",
            ev["round"], ev["sent"]["blocks"], ev["dirty_after"]
        ),
        "memory" => format!(
            "memory round {}: {} MiB sent, {} MiB left, {} pages/s dirtied",
            ev["round"]["round"],
            ev["round"]["transferred"].as_u64().unwrap_or(0) >> 20,
            ev["round"]["remaining"].as_u64().unwrap_or(0) >> 20,
            ev["round"]["dirty_rate"],
        ),
        "switchover" => format!(
            "switchover: guest paused, {} disk block(s) stale",
            ev["stale_blocks"]
        ),
        "resumed-at-destination" => format!(
            "resumed at the destination after a {} ms pause; finishing the disk",
            ev["downtime_ms"]
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_sources_become_absolute_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("img")).unwrap();
        let abs = std::fs::canonicalize(dir.path().join("img")).unwrap();
        let base = dir.path();
        assert_eq!(
            absolute_in("oci-dir:img:pg", base),
            format!("oci-dir:{}:pg", abs.display())
        );
        assert_eq!(absolute_in("img", base), abs.display().to_string());
        assert_eq!(
            absolute_in("registry:localhost:5000/pg", base),
            "registry:localhost:5000/pg"
        );
    }
}
