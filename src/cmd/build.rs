//! `kiln db build`: add packages to the signature database, from files,
//! from apt (by name, section or pattern), from pip and from npm.

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
    /// An npm package tarball (.tgz, as `npm pack` writes it), or a
    /// directory of them. Repeatable.
    #[arg(long = "npm-tarball", value_name = "PATH")]
    npm_tarballs: Vec<PathBuf>,
    /// Fetch NAME@VERSION with `npm pack` (through the machine's npm
    /// configuration). Repeatable. npm packages identify installed
    /// `node_modules` whose package.json is gone or edited.
    #[arg(long = "npm", value_name = "NAME@VERSION")]
    npm: Vec<String>,
    /// Fetch every package a package-lock.json, yarn.lock or
    /// pnpm-lock.yaml declares, with `npm pack`. Repeatable.
    #[arg(long = "npm-lockfile", value_name = "FILE")]
    npm_lockfiles: Vec<PathBuf>,
}

impl BuildArgs {
    /// Does anything besides the bulk apt selections ask for packages?
    fn has_items(&self) -> bool {
        !(self.debs.is_empty()
            && self.apt.is_empty()
            && self.wheels.is_empty()
            && self.pip.is_empty()
            && self.npm_tarballs.is_empty()
            && self.npm.is_empty()
            && self.npm_lockfiles.is_empty())
    }
}

/// `NAME@VERSION` specs for every package the lockfiles declare.
fn lockfile_specs(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut specs = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pairs = kiln_catalog::npm::declared(&name, &text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        specs.extend(pairs.into_iter().map(|(n, v)| format!("{n}@{v}")));
    }
    specs.sort();
    specs.dedup();
    Ok(specs)
}

pub fn run(args: BuildArgs, quiet: bool) -> Result<ExitCode> {
    let bulk = !(args.apt_sections.is_empty() && args.apt_patterns.is_empty());
    if !args.has_items() && !bulk {
        bail!("nothing to add: give --deb PATH, --apt NAME, --apt-section SECTION, --apt-pattern GLOB, --wheel PATH, --pip NAME==VERSION, --npm NAME@VERSION, --npm-lockfile FILE or --npm-tarball PATH");
    }
    if bulk {
        build_bulk(&args, quiet)?;
        if !args.has_items() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut debs = deb::expand_paths(&args.debs, "deb")?;
    debs.extend(deb::expand_paths(&args.wheels, "whl")?);
    debs.extend(deb::expand_paths(&args.npm_tarballs, "tgz")?);
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
    let mut npm = args.npm.clone();
    npm.extend(lockfile_specs(&args.npm_lockfiles)?);
    if !npm.is_empty() {
        let dir = download_dir.path().join("npm");
        std::fs::create_dir_all(&dir).context("cannot create a download directory")?;
        let bar = progress::spinner("npm pack", quiet);
        let fetched = kiln_rainbow::npm::npm_pack(&npm, &dir)?;
        bar.finish_and_clear();
        debs.extend(fetched);
    }
    if debs.is_empty() {
        bail!(
            "no .deb, .whl or .tgz files found in {:?}",
            [&args.debs[..], &args.wheels[..], &args.npm_tarballs[..]].concat()
        );
    }
    let path = args.db.location();
    let mut db = Db::open(path.clone())?;
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
        path,
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
    let mut db = Db::open(args.db.location())?;
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
