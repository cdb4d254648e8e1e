//! `kiln slim`: a smaller image that still works, by static ELF analysis
//! and by tracing real runs under runc (no container engine).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use kiln_image::SourceRef;
use kiln_slim::{Mode, SlimOptions};
use kiln_tree::BuildOptions;

use super::source::SourceArgs;
use crate::progress;

/// `kiln slim SOURCE DEST`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Where to write: oci-archive:FILE[:REF], oci-dir:DIR[:REF] or
    /// registry:HOST/REPO:TAG (pushed; --creds and TLS flags apply).
    dest: String,
    /// static (read the image), dynamic (trace runs under runc) or both.
    #[arg(long, default_value = "both")]
    mode: Mode,
    /// Replace the image's entrypoint (shell words).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Replace the image's cmd (shell words).
    #[arg(long, value_name = "ARGS")]
    cmd: Option<String>,
    /// A command to run in the container, as shell words (no shell is
    /// needed in the image). Repeatable.
    #[arg(long = "probe-cmd", value_name = "CMD")]
    probe_cmd: Vec<String>,
    /// PORT[/PATH]: run the entrypoint as a server and GET this URL from
    /// inside its network namespace (loopback only). Repeatable.
    #[arg(long = "http-probe", value_name = "PORT[/PATH]")]
    http_probe: Vec<String>,
    /// A path or glob always kept. Repeatable.
    #[arg(long, value_name = "PATH|GLOB")]
    include: Vec<String>,
    /// A glob never kept. Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Keep dpkg/apk databases, docs and Python *.dist-info.
    #[arg(long)]
    keep_packages_metadata: bool,
    /// Rerun every probe on the slimmed image under runc; fail when exit
    /// code or stdout differ from the original's.
    #[arg(long)]
    verify: bool,
    /// Time limit per container run, in seconds (`--timeout` is the
    /// network timeout, shared with every command that reads a registry).
    #[arg(long, default_value_t = 60)]
    run_timeout: u64,
    /// Print the report on stdout in this format instead of the summary
    /// on stderr.
    #[arg(long, value_name = "FORMAT", value_enum)]
    report: Option<ReportFormat>,
}

/// How `--report` prints the slim report.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// The report as JSON.
    Json,
}

fn words(s: &Option<String>, what: &str) -> Result<Option<Vec<String>>> {
    s.as_ref()
        .map(|s| shlex::split(s).with_context(|| format!("cannot split {what} {s:?} into words")))
        .transpose()
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let destination = super::dest::Destination::parse(&args.dest)?;
    let dest = destination.target.clone();
    let bar = progress::bytes("reading layers", quiet);
    let ticker = bar.clone();
    let opts = BuildOptions {
        progress: Some(Box::new(move |n| ticker.inc(n))),
        ..Default::default()
    };
    let (tree, _) = args.source.open_tree(&opts)?;
    bar.finish_and_clear();
    let config = tree.image().map(|i| i.config.clone());
    let options = SlimOptions {
        mode: args.mode,
        entrypoint: words(&args.entrypoint, "--entrypoint")?,
        cmd: words(&args.cmd, "--cmd")?,
        probes: args.probe_cmd.clone(),
        http_probes: args.http_probe.clone(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        keep_packages_metadata: args.keep_packages_metadata,
        verify: args.verify,
        timeout: Duration::from_secs(args.run_timeout),
        work_dir: None,
    };
    let bar = progress::spinner("slimming", quiet);
    let report = kiln_slim::slim(&tree, config.as_ref(), &dest, &options);
    bar.finish_and_clear();
    let report =
        report.with_context(|| format!("cannot slim {} into {}", args.source.source, args.dest))?;
    let source = SourceRef::parse(&args.source.source)?;
    if let Some(p) = destination.finish(&args.source.options.net, &source)? {
        if !quiet {
            eprintln!(
                "kiln: pushed {} ({}): {} blob(s) uploaded, {} already there, {} mounted",
                args.dest, p.manifest_digest, p.uploaded, p.present, p.mounted
            );
        }
    }
    if args.report == Some(ReportFormat::Json) {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        let mib = |b: u64| b as f64 / 1048576.0;
        eprintln!(
            "kiln: wrote {}: {} files, {:.1} MiB -> {} files, {:.1} MiB ({:.1}x smaller; mode {:?}, {:.2} s static, {:.2} s traced runs)",
            args.dest,
            report.files_before,
            mib(report.bytes_before),
            report.files_after,
            mib(report.bytes_after),
            report.ratio,
            report.mode,
            report.seconds_static,
            report.seconds_dynamic,
        );
        for m in &report.missing_commands {
            eprintln!("kiln: warning: command {m:?} is not in the image");
        }
        eprintln!("largest removed directories:");
        for r in report.largest_removed.iter().take(5) {
            eprintln!(
                "  {:>9.1} MiB  {:>6} files  {}",
                mib(r.bytes),
                r.files,
                r.path
            );
        }
        for p in &report.probes {
            let verdict = match p.same {
                Some(true) => "same on the slimmed image",
                Some(false) => "DIFFERS on the slimmed image",
                None => "traced",
            };
            let exit = p.original.as_ref().map_or(-1, |o| o.exit);
            eprintln!("probe `{}`: exit {exit}, {verdict}", p.args.join(" "));
        }
    }
    kiln_slim::check_verified(&report)?;
    Ok(ExitCode::SUCCESS)
}
