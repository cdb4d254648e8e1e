//! The `kiln` command: flag parsing and wiring over kiln's library crates.

mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Identify, slim and scan minimal container images from the bytes of
/// their files.
#[derive(Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    /// Print no progress on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the packages an image's metadata declares (SBOM).
    Sbom(cmd::sbom::Args),
    /// Identify packages and exact versions from the bytes of the files.
    Scan(cmd::scan::Args),
    /// Match an image's packages (from bytes and metadata) against advisories.
    Vuln(cmd::vuln::Args),
    /// Write an obfuscated copy of an image: package DBs and docs deleted,
    /// ELF executables padded, app metadata hidden (the adversary images).
    Strip(cmd::strip::Args),
    /// Write a smaller image that still works: static ELF closure plus
    /// traced runs under runc, verified under runc.
    Slim(cmd::slim::Args),
    /// Build and inspect the signature database (the rainbow table).
    #[command(subcommand)]
    Db(cmd::db::Command),
    /// Enter a running container, a process or an image with a toolbox,
    /// changing nothing of it.
    Debug(cmd::debug::Args),
    /// Copy files between the host and a target, confined to its root.
    Cp(cmd::cp::CpArgs),
    /// Forward a local port to a port inside a target's network namespace.
    PortForward(cmd::cp::ForwardArgs),
    /// Trace containers with eBPF gadgets: exec, open, exec-alert, tcp,
    /// tcprtt, traceloop.
    Trace(cmd::trace::Args),
    /// List the runc containers kiln can enter.
    Ps(cmd::debug::PsArgs),
    /// Run a host's agent for microVMs and their migration.
    #[command(subcommand)]
    Host(cmd::vm::HostCommand),
    /// Run, list, inspect, stop and remove microVMs on a host.
    #[command(subcommand)]
    Vm(cmd::vm::VmCommand),
    /// Live-migrate a running microVM to another host.
    Migrate(cmd::vm::MigrateArgs),
}

/// Exit status when kiln did its job and a policy (`--fail-on`) failed.
pub const EXIT_POLICY: u8 = 1;
/// Exit status when kiln could not do its job (bad input, I/O, a bug);
/// clap uses it for usage errors too.
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(kiln_runtime::attach::HELPER_ARG.as_ref()) {
        let code = kiln_runtime::attach::helper_main();
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Sbom(_) | Command::Scan(_) | Command::Vuln(_)
    ) {
        // Before any other thread starts, so all of them inherit it; a
        // refusal costs only speed (see kiln_image::sched).
        let _ = kiln_image::sched::batch_from_here();
    }
    let result = match cli.command {
        Command::Sbom(args) => cmd::sbom::run(args, cli.quiet),
        Command::Scan(args) => cmd::scan::run(args, cli.quiet),
        Command::Strip(args) => cmd::strip::run(args, cli.quiet),
        Command::Slim(args) => cmd::slim::run(args, cli.quiet),
        Command::Vuln(args) => cmd::vuln::run(args, cli.quiet),
        Command::Db(c) => cmd::db::run(c, cli.quiet),
        Command::Debug(args) => cmd::debug::run(args),
        Command::Ps(args) => cmd::debug::ps(args),
        Command::Trace(args) => cmd::trace::run(args, cli.quiet),
        Command::Cp(args) => cmd::cp::cp(args),
        Command::PortForward(args) => cmd::cp::port_forward(args),
        Command::Host(c) => cmd::vm::serve(c),
        Command::Vm(c) => cmd::vm::vm(c, cli.quiet),
        Command::Migrate(args) => cmd::vm::migrate(args, cli.quiet),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
