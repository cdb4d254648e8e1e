//! One module per subcommand, plus what they share.

pub mod db;
pub mod sbom;
pub mod scan;
pub mod source;
pub mod strip;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use kiln_report::{Format, Sbom};

/// The format to use: the one asked for, else table on a terminal and
/// JSON when piped.
pub fn default_format(asked: Option<Format>) -> Format {
    asked.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    })
}

/// Write a document to `file` or stdout (a closed pipe is not an error).
pub fn emit(sbom: &Sbom, format: Format, file: Option<&Path>) -> Result<()> {
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
