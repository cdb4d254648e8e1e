//! `kiln sbom`: what the image's package metadata declares.

use std::process::ExitCode;

use anyhow::Result;
use kiln_report::{Format, Sbom};
use kiln_tree::BuildOptions;

use super::source::SourceArgs;
use crate::progress;

/// `kiln sbom SOURCE [-o FORMAT]`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Output format: table, json, cyclonedx-json, spdx-json. Defaults to
    /// table on a terminal and json otherwise.
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<Format>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let format = super::default_format(args.output);
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
    super::emit(&Sbom { source, catalog }, format, args.file.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
