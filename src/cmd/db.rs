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
    Vuln(VulnCommand),
}

/// `kiln db vuln …`
#[derive(clap::Subcommand, Debug)]
pub enum VulnCommand {
    /// Import advisories (atomic: a failed import keeps the old ones).
    Import(ImportArgs),
}

/// `kiln db vuln import`
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    db: DbArg,
    /// OSV records: a directory of JSON, a JSON file or an OSV zip export,
    /// or an http(s) URL of one (downloaded with resume). Repeatable.
    #[arg(long = "osv", value_name = "PATH_OR_URL")]
    osv: Vec<String>,
    /// The Debian security tracker's JSON export, as a path or URL.
    /// Replaces earlier tracker data.
    #[arg(long = "debian-tracker", value_name = "PATH_OR_URL")]
    debian_tracker: Vec<String>,
    /// NVD CVE JSON 2.0 (API response or feed file), as a path or URL, for
    /// vendored upstream components. Repeatable; records upsert by CVE.
    #[arg(long = "nvd", value_name = "PATH_OR_URL")]
    nvd: Vec<String>,
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
    /// Output format: table or json.
    #[arg(short, long, default_value = "table")]
    output: String,
}

pub fn run(cmd: Command, quiet: bool) -> Result<ExitCode> {
    match cmd {
        Command::Build(a) => build(a, quiet),
        Command::Stats(a) => stats(a),
        Command::Vuln(VulnCommand::Import(a)) => import(a, quiet),
    }
}

/// A local path for a path-or-URL argument, downloading URLs (with resume).
fn local(arg: &str, quiet: bool) -> Result<PathBuf> {
    if !kiln_vuln::fetch::is_url(arg) {
        return Ok(PathBuf::from(arg));
    }
    let bar = progress::download(arg, quiet);
    let ticker = bar.clone();
    let path =
        kiln_vuln::fetch::fetch(arg, &kiln_vuln::fetch::cache_dir(), &move |done, total| {
            if let Some(t) = total {
                ticker.set_length(t);
            }
            ticker.set_position(done);
        })?;
    bar.finish_and_clear();
    Ok(path)
}

fn import(args: ImportArgs, quiet: bool) -> Result<ExitCode> {
    if args.osv.is_empty() && args.debian_tracker.is_empty() && args.nvd.is_empty() {
        bail!("nothing to import: give --osv, --debian-tracker or --nvd");
    }
    let path = args.db.path();
    let mut store = kiln_vuln::Store::open(&path)?;
    for arg in &args.osv {
        let p = &local(arg, quiet)?;
        let n = store.import_with("osv", false, &mut |add| {
            kiln_vuln::load::osv_each(p, &mut |a| add(&a).map_err(Into::into))
        })?;
        eprintln!("kiln: imported {n} OSV record(s) from {}", p.display());
    }
    for arg in &args.debian_tracker {
        let p = &local(arg, quiet)?;
        let records = kiln_vuln::load::debian_tracker(p)?;
        let n = store.import("debian-tracker", &records, true)?;
        eprintln!(
            "kiln: imported {n} Debian tracker CVE(s) from {}",
            p.display()
        );
    }
    for arg in &args.nvd {
        let p = &local(arg, quiet)?;
        let records = kiln_vuln::load::nvd(p)?;
        let n = store.import("nvd", &records, false)?;
        eprintln!("kiln: imported {n} NVD CVE(s) from {}", p.display());
    }
    for (source, n) in store.counts()? {
        eprintln!(
            "kiln: {} now holds {n} advisories from {source}",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn build(args: BuildArgs, quiet: bool) -> Result<ExitCode> {
    if args.debs.is_empty() && args.apt.is_empty() && args.wheels.is_empty() && args.pip.is_empty()
    {
        bail!("nothing to add: give --deb PATH, --apt NAME, --wheel PATH or --pip NAME==VERSION");
    }
    let mut debs = deb::expand_paths(&args.debs)?;
    debs.extend(expand_wheels(&args.wheels)?);
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

/// Wheel files, and the `.whl` files directly inside directories.
fn expand_wheels(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "whl"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such wheel", p.display());
        }
    }
    Ok(out)
}

fn stats(args: StatsArgs) -> Result<ExitCode> {
    let db = Db::open_readonly(&args.db.path())?;
    let s = db.stats()?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("database        {}", s.path.display());
        println!("packages        {}", s.packages);
        println!("versions        {}", s.versions);
        println!("files           {}", s.files);
        println!("paths           {}", s.paths);
        println!("unique contents {}", s.contents);
        println!("ELF contents    {}", s.elf_contents);
        println!("code identities {}", s.code_identities);
        println!(
            "function hashes {} ({} common to several projects), in {} project versions",
            s.function_hashes, s.common_function_hashes, s.function_versions
        );
        println!(
            "size            {} bytes ({:.1} MiB)",
            s.size_bytes,
            s.size_bytes as f64 / 1048576.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
