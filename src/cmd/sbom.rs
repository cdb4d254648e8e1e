//! `kiln sbom`: what the image's package metadata declares.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
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
    let format = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let bar = progress::bytes("reading layers", quiet);
    let ticker = bar.clone();
    let opts = BuildOptions {
        capture: Box::new(kiln_catalog::wants),
        hash: false,
        progress: Some(Box::new(move |n| ticker.inc(n))),
        inspect: None,
    };
    let (tree, source) = args.source.open_tree(&opts)?;
    bar.finish_and_clear();
    let catalog = kiln_catalog::catalog(&tree);
    let sbom = Sbom { source, catalog };
    match &args.file {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            kiln_report::write(&sbom, format, &mut f)?;
            f.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match kiln_report::write(&sbom, format, &mut lock) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
