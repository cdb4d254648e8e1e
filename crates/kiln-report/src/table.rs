//! The human table: NAME, VERSION, TYPE, as Syft prints it.

use std::io::Write;

use crate::Sbom;

pub(crate) fn write(sbom: &Sbom, out: &mut dyn Write) -> std::io::Result<()> {
    let versions: Vec<String> = sbom
        .catalog
        .packages
        .iter()
        .map(|p| match &p.evidence {
            Some(e) if e.resolution == "version-not-in-db" => match &e.version_range {
                Some(r) => format!(
                    "(not in DB; nearest {}; {r})",
                    e.nearest_version.as_deref().unwrap_or("?")
                ),
                None => format!(
                    "(not in DB; nearest {})",
                    e.nearest_version.as_deref().unwrap_or("?")
                ),
            },
            _ => p.version.clone(),
        })
        .collect();
    let rows: Vec<[&str; 3]> = sbom
        .catalog
        .packages
        .iter()
        .zip(&versions)
        .map(|(p, v)| [p.name.as_str(), v.as_str(), p.ecosystem.label()])
        .collect();
    if rows.is_empty() {
        return writeln!(out, "No packages discovered");
    }
    let header = ["NAME", "VERSION", "TYPE"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |out: &mut dyn Write, r: &[&str; 3]| {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}",
            r[0],
            r[1],
            r[2],
            w0 = widths[0],
            w1 = widths[1]
        )
    };
    line(out, &header)?;
    for r in &rows {
        line(out, r)?;
    }
    if !sbom.catalog.unexplained_files.is_empty() {
        writeln!(
            out,
            "\n{} file(s) explained by no package (see -o json: unexplained_files)",
            sbom.catalog.unexplained_files.len()
        )?;
    }
    Ok(())
}
