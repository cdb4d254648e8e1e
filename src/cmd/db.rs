//! `kiln db build` and `kiln db stats`: the signature database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_rainbow::{apt, deb, Db};

use crate::progress;

/// Where the database lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArg {
    /// Signature database file [default: $XDG_DATA_HOME/kiln/kiln.db].
    #[arg(long, env = "KILN_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
}

impl DbArg {
    /// The path to use.
    pub fn path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(kiln_rainbow::default_db_path)
    }
}

/// `kiln db …`
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add packages to the signature database (incremental, atomic).
    Build(BuildArgs),
    /// Print package, version, file and unique-content counts and the size.
    Stats(StatsArgs),
    /// Manage vulnerability advisories.
    #[command(subcommand)]
    Vuln(super::advisories::Command),
}

/// `kiln db build`
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    db: DbArg,
    /// A .deb file, or a directory of them. Repeatable.
    #[arg(long = "deb", value_name = "PATH")]
    debs: Vec<PathBuf>,
    /// Fetch NAME[=VERSION] through the machine's apt sources. Repeatable.
    #[arg(long = "apt", value_name = "NAME[=VERSION]")]
    apt: Vec<String>,
    /// With --apt NAME: take every version apt knows of each package.
    #[arg(long)]
    apt_all_versions: bool,
    /// A Python wheel (.whl), or a directory of them. Repeatable. Wheels
    /// identify installed Python packages whose *.dist-info is gone.
    #[arg(long = "wheel", value_name = "PATH")]
    wheels: Vec<PathBuf>,
    /// Fetch NAME==VERSION with `pip download --no-deps` (binary wheels,
    /// through the machine's pip configuration). Repeatable.
    #[arg(long = "pip", value_name = "NAME==VERSION")]
    pip: Vec<String>,
}

/// `kiln db stats`
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    db: DbArg,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = StatsFormat::Table)]
    output: StatsFormat,
}

/// How `kiln db stats` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsFormat {
    /// Aligned lines for people.
    Table,
    /// A JSON object.
    Json,
}

pub fn run(cmd: Command, quiet: bool) -> Result<ExitCode> {
    match cmd {
        Command::Build(a) => build(a, quiet),
        Command::Stats(a) => stats(a),
        Command::Vuln(c) => super::advisories::run(c, quiet),
    }
}

fn build(args: BuildArgs, quiet: bool) -> Result<ExitCode> {
    if args.debs.is_empty() && args.apt.is_empty() && args.wheels.is_empty() && args.pip.is_empty()
    {
        bail!("nothing to add: give --deb PATH, --apt NAME, --wheel PATH or --pip NAME==VERSION");
    }
    let mut debs = deb::expand_paths(&args.debs, "deb")?;
    debs.extend(deb::expand_paths(&args.wheels, "whl")?);
    let download_dir = tempfile::tempdir().context("cannot create a download directory")?;
    if !args.apt.is_empty() {
        let specs: Vec<apt::AptSpec> = args.apt.iter().map(|s| apt::AptSpec::parse(s)).collect();
        let bar = progress::spinner("apt-get download", quiet);
        let fetched = apt::download(&specs, args.apt_all_versions, download_dir.path())?;
        bar.finish_and_clear();
        debs.extend(fetched);
    }
    if !args.pip.is_empty() {
        let bar = progress::spinner("pip download", quiet);
        let fetched = kiln_rainbow::wheel::pip_download(&args.pip, download_dir.path())?;
        bar.finish_and_clear();
        debs.extend(fetched);
    }
    if debs.is_empty() {
        bail!(
            "no .deb or .whl files found in {:?}",
            [&args.debs[..], &args.wheels[..]].concat()
        );
    }
    let path = args.db.path();
    let mut db = Db::open(&path)?;
    let bar = progress::count("reading packages", debs.len() as u64, quiet);
    let ticker = bar.clone();
    let report = db.ingest_debs(&debs, &move |_| ticker.inc(1))?;
    bar.finish_and_clear();
    let stats = db.stats()?;
    eprintln!(
        "kiln: added {} package(s) ({} files), {} already present; {} now holds {} versions of {} packages",
        report.added,
        report.files,
        report.skipped,
        path.display(),
        stats.versions,
        stats.packages
    );
    if !report.failed.is_empty() {
        for (p, why) in &report.failed {
            eprintln!("kiln: error: {}: {why}", p.display());
        }
        bail!(
            "{} archive(s) could not be read; the others were added",
            report.failed.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(args: StatsArgs) -> Result<ExitCode> {
    let db = Db::open_readonly(&args.db.path())?;
    let s = db.stats()?;
    match args.output {
        StatsFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        StatsFormat::Table => println!("{s}"),
    }
    Ok(ExitCode::SUCCESS)
}
