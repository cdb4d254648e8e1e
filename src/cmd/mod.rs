//! One module per subcommand, plus what they share: output formats and
//! where documents go.

pub mod advisories;
pub mod build;
pub mod cp;
pub mod db;
pub mod debug;
pub mod dest;
pub mod dump;
pub mod many;
pub mod net;
pub mod sbom;
pub mod scan;
pub mod slim;
pub mod source;
pub mod strip;
pub mod trace;
pub mod transfer;
pub mod vm;
pub mod vuln;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_report::{Format, Sbom, SBOM_FORMATS};

/// `-o` for SBOMs: table, json, cyclonedx-json, spdx-json.
pub fn sbom_format(s: &str) -> Result<Format, String> {
    Format::parse_among(s, SBOM_FORMATS)
}

/// `-o` for vulnerability reports: table, json, sarif, cyclonedx-json.
pub fn vuln_format(s: &str) -> Result<Format, String> {
    Format::parse_among(s, kiln_report::vuln::FORMATS)
}

/// `-o` where both kinds of document may be asked for (`kiln scan`, whose
/// `--vuln` makes it a vulnerability report).
pub fn any_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Where and how to write an SBOM.
#[derive(clap::Args, Debug)]
pub struct OutputArgs {
    /// Output format: table, json, cyclonedx-json, spdx-json [default:
    /// table on a terminal, else json].
    #[arg(short, long, value_name = "FORMAT", value_parser = sbom_format)]
    pub output: Option<Format>,
    /// Write the document to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// The format asked for, or table on a terminal and JSON otherwise.
pub fn format_or_default(format: Option<Format>) -> Format {
    format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    })
}

/// Write `sbom` in `format` (default: table on a terminal, else JSON).
pub fn emit_sbom(sbom: &Sbom, format: Option<Format>, file: Option<&Path>) -> Result<()> {
    let format = format_or_default(format);
    write_to(file, |out| kiln_report::write(sbom, format, out))
}

/// Write a document to `file` (atomically: a failed write leaves what was
/// there) or stdout (a closed pipe is not an error), through a buffer:
/// stdout flushes at every newline and a `File` writes every token, so a
/// pretty-printed 1.8 MB SBOM took 55,000 `write` calls and 16 ms.
pub fn write_to(
    file: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let Some(path) = file else {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        return match write(&mut out).and_then(|_| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable as a plain create would leave it (umask 022), not 0600.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-")
        .permissions(mode)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
    write(&mut out)
        .and_then(|_| out.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(out);
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
