//! `kiln db build`: add packages to the signature database, from files,
//! from apt (by name, section or pattern) and from pip.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_rainbow::{apt, deb, Db};

use super::db::DbArg;
use crate::progress;

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
    /// Every package of this archive section in the machine's apt indexes
    /// (e.g. `libs`: all of Debian's libraries). Repeatable.
    #[arg(long = "apt-section", value_name = "SECTION")]
    apt_sections: Vec<String>,
    /// Every package whose name matches this glob (e.g. `libxml2*`).
    /// Repeatable.
    #[arg(long = "apt-pattern", value_name = "GLOB")]
    apt_patterns: Vec<String>,
    /// With --apt, --apt-section or --apt-pattern: every version apt
    /// knows, not only the newest.
    #[arg(long)]
    apt_all_versions: bool,
    /// `apt-get download` processes at a time for --apt-section and
    /// --apt-pattern (batches are ingested while later ones download).
    #[arg(long, value_name = "N", default_value_t = 4)]
    jobs: usize,
    /// Packages per batch (one download and one transaction each) for
    /// --apt-section and --apt-pattern.
    #[arg(long, value_name = "N", default_value_t = 64)]
    batch: usize,
    /// A Python wheel (.whl), or a directory of them. Repeatable. Wheels
    /// identify installed Python packages whose *.dist-info is gone.
    #[arg(long = "wheel", value_name = "PATH")]
    wheels: Vec<PathBuf>,
    /// Fetch NAME==VERSION with `pip download --no-deps` (binary wheels,
    /// through the machine's pip configuration). Repeatable.
    #[arg(long = "pip", value_name = "NAME==VERSION")]
    pip: Vec<String>,
}

pub fn run(args: BuildArgs, quiet: bool) -> Result<ExitCode> {
    let bulk = !(args.apt_sections.is_empty() && args.apt_patterns.is_empty());
    if args.debs.is_empty()
        && args.apt.is_empty()
        && args.wheels.is_empty()
        && args.pip.is_empty()
        && !bulk
    {
        bail!("nothing to add: give --deb PATH, --apt NAME, --apt-section SECTION, --apt-pattern GLOB, --wheel PATH or --pip NAME==VERSION");
    }
    if bulk {
        build_bulk(&args, quiet)?;
        if args.debs.is_empty()
            && args.apt.is_empty()
            && args.wheels.is_empty()
            && args.pip.is_empty()
        {
            return Ok(ExitCode::SUCCESS);
        }
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

/// `--apt-section`/`--apt-pattern`: download and ingest in batches, each
/// its own transaction, skipping what the DB holds (so an interrupted
/// build resumes where it stopped).
fn build_bulk(args: &BuildArgs, quiet: bool) -> Result<()> {
    use kiln_rainbow::bulk;
    let path = args.db.path();
    let mut db = Db::open(&path)?;
    let sel = bulk::Selection {
        sections: args.apt_sections.clone(),
        patterns: args.apt_patterns.clone(),
        all_versions: args.apt_all_versions,
    };
    let (todo, present) = bulk::pending(&db, &sel)?;
    let scratch = tempfile::tempdir().context("cannot create a download directory")?;
    let bar = progress::count("downloading and reading packages", todo.len() as u64, quiet);
    let ticker = bar.clone();
    let plan = bulk::Plan {
        jobs: args.jobs.max(1),
        batch: args.batch.max(1),
    };
    let report = bulk::ingest(&mut db, &todo, scratch.path(), plan, &move |_| {
        ticker.inc(1)
    })?;
    bar.finish_and_clear();
    eprintln!(
        "kiln: selected {} package(s): {present} already in the DB, {} downloaded ({:.1} MiB), {} added ({} files)",
        todo.len() + present,
        todo.len(),
        report.downloaded as f64 / 1048576.0,
        report.ingest.added,
        report.ingest.files
    );
    for (p, why) in &report.ingest.failed {
        eprintln!("kiln: warning: {}: {why}", p.display());
    }
    Ok(())
}
