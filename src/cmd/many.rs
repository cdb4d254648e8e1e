//! `kiln scan` of many images in one run: one DB (a pool of readers on
//! PostgreSQL, one connection per worker on SQLite) and one set of loaded
//! templates for all, images scanned in parallel, one JSON document per
//! line in the order the sources were given. An image that cannot be read
//! gets an error line (`{"source": …, "error": …}`) and the run goes on;
//! the exit status is then 2.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;
use kiln_rainbow::Db;

use super::source::SourceOptions;
use crate::progress;

/// Scan `sources` and write JSON lines to `file` or stdout.
pub fn scan(
    sources: &[String],
    options: &SourceOptions,
    db: &Db,
    jobs: Option<usize>,
    file: Option<&Path>,
    quiet: bool,
) -> Result<ExitCode> {
    let templates = kiln_scan::SharedTemplates::spawn(db);
    let open = options.open_options()?;
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = jobs.unwrap_or(cpus).clamp(1, sources.len());
    let readers = (0..jobs)
        .map(|_| db.second_reader())
        .collect::<Result<Vec<_>, _>>()?;
    let bar = progress::count("scanning images", sources.len() as u64, quiet);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, String, bool)>();
    let mut failed = 0usize;
    super::write_to(file, |out| {
        std::thread::scope(|s| {
            for reader in readers {
                let (tx, next, open, templates) = (tx.clone(), &next, &open, &templates);
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = sources.get(i) else { break };
                    let scanned =
                        kiln_scan::scan_with(source, open, Some((&reader, templates)), None);
                    let line = match scanned {
                        Ok(sbom) => (kiln_report::json_line(&sbom), true),
                        Err(e) => (
                            serde_json::json!({ "source": source, "error": e.to_string() })
                                .to_string(),
                            false,
                        ),
                    };
                    if tx.send((i, line.0, line.1)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            in_order(rx, out, &bar, &mut failed)
        })
    })?;
    bar.finish_and_clear();
    if failed > 0 {
        eprintln!(
            "kiln: error: {failed} of {} source(s) could not be scanned (see their error lines)",
            sources.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Write lines as they come, each once all before it are written.
fn in_order(
    rx: mpsc::Receiver<(usize, String, bool)>,
    out: &mut dyn Write,
    bar: &indicatif::ProgressBar,
    failed: &mut usize,
) -> std::io::Result<()> {
    let mut waiting = BTreeMap::new();
    let mut due = 0usize;
    for (i, line, ok) in rx {
        if !ok {
            *failed += 1;
        }
        bar.inc(1);
        waiting.insert(i, line);
        while let Some(line) = waiting.remove(&due) {
            writeln!(out, "{line}")?;
            due += 1;
        }
    }
    out.flush()
}
