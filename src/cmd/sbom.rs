//! `kiln sbom`: what the image's package metadata declares.

use std::process::ExitCode;

use anyhow::Result;

use super::source::SourceArgs;
use crate::progress;

/// `kiln sbom SOURCE [-o FORMAT]`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    out: super::OutputArgs,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let bar = progress::bytes("reading layers", quiet);
    let ticker = bar.clone();
    let sbom = kiln_scan::catalog(
        &args.source.source,
        &args.source.open_options()?,
        Some(Box::new(move |n| ticker.inc(n))),
    )?;
    bar.finish_and_clear();
    super::emit_sbom(&sbom, args.out.output, args.out.file.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
