//! `kiln db vuln import`: advisories into the database, from files or
//! URLs the user gives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::progress;

/// `kiln db vuln …`
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Import advisories (atomic: a failed import keeps the old ones).
    Import(ImportArgs),
}

/// `kiln db vuln import`
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    db: super::db::DbArg,
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
    #[command(flatten)]
    net: super::net::NetArgs,
}

pub fn run(cmd: Command, quiet: bool) -> Result<ExitCode> {
    match cmd {
        Command::Import(a) => import(a, quiet),
    }
}

/// A local path for a path-or-URL argument, downloading URLs (with resume).
fn local(arg: &str, net: &super::net::NetArgs, quiet: bool) -> Result<PathBuf> {
    if !kiln_vuln::fetch::is_url(arg) {
        return Ok(PathBuf::from(arg));
    }
    let client = net.client()?;
    let bar = progress::download(arg, quiet);
    let ticker = bar.clone();
    let cache = kiln_vuln::fetch::cache_dir();
    let path = kiln_vuln::fetch::fetch(&client, arg, &cache, &move |done, total| {
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
    let path = args.db.location();
    let mut store = kiln_vuln::Store::open(path.clone())?;
    for arg in &args.osv {
        let p = &local(arg, &args.net, quiet)?;
        let n = store.import_with("osv", false, &mut |add| {
            kiln_vuln::load::osv_each(p, &mut |a| add(&a).map_err(Into::into))
        })?;
        eprintln!("kiln: imported {n} OSV record(s) from {}", p.display());
    }
    for arg in &args.debian_tracker {
        let p = &local(arg, &args.net, quiet)?;
        let records = kiln_vuln::load::debian_tracker(p)?;
        let n = store.import("debian-tracker", &records, true)?;
        eprintln!(
            "kiln: imported {n} Debian tracker CVE(s) from {}",
            p.display()
        );
    }
    for arg in &args.nvd {
        let p = &local(arg, &args.net, quiet)?;
        let records = kiln_vuln::load::nvd(p)?;
        let n = store.import("nvd", &records, false)?;
        eprintln!("kiln: imported {n} NVD CVE(s) from {}", p.display());
    }
    for (source, n) in store.counts()? {
        eprintln!("kiln: {path} now holds {n} advisories from {source}");
    }
    Ok(ExitCode::SUCCESS)
}
