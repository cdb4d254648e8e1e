//! `kiln sbom`: what the image's package metadata declares.

use std::process::ExitCode;

use anyhow::Result;
use kiln_report::Sbom;
use kiln_tree::BuildOptions;

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
    let opts = BuildOptions {
        capture: Box::new(kiln_catalog::wants),
        progress: Some(Box::new(move |n| ticker.inc(n))),
        ..Default::default()
    };
    let (tree, source) = args.source.open_tree(&opts)?;
    bar.finish_and_clear();
    let catalog = kiln_catalog::catalog(&tree);
    args.out.emit(&Sbom { source, catalog })?;
    Ok(ExitCode::SUCCESS)
}
