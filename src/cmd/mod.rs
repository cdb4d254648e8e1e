//! One module per subcommand, plus what they share.

pub mod db;
pub mod sbom;
pub mod scan;
pub mod slim;
pub mod source;
pub mod strip;
pub mod vuln;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use kiln_report::{Format, Sbom};

/// Where and how to write a document.
#[derive(clap::Args, Debug)]
pub struct OutputArgs {
    /// Output format: table, json, cyclonedx-json, spdx-json. Defaults to
    /// table on a terminal and json otherwise.
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<Format>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
}

impl OutputArgs {
    /// Write `sbom` as asked.
    pub fn emit(&self, sbom: &Sbom) -> Result<()> {
        let format = self.output.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        });
        emit(sbom, format, self.file.as_deref())
    }
}

/// Write `sbom` in `format` (default: table on a terminal, else JSON).
pub fn emit_as(sbom: &Sbom, format: Option<Format>, file: Option<&Path>) -> Result<()> {
    OutputArgs {
        output: format,
        file: file.map(Path::to_path_buf),
    }
    .emit(sbom)
}

/// Write a document to `file` or stdout (a closed pipe is not an error).
fn emit(sbom: &Sbom, format: Format, file: Option<&Path>) -> Result<()> {
    match file {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            kiln_report::write(sbom, format, &mut f)?;
            f.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match kiln_report::write(sbom, format, &mut lock) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    Ok(())
}
