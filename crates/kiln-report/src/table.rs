//! The human table: NAME, VERSION, TYPE, as Syft prints it.

use std::io::Write;

use kiln_catalog::Resolution;

use crate::Sbom;

pub(crate) fn write(sbom: &Sbom, out: &mut dyn Write) -> std::io::Result<()> {
    let versions: Vec<String> = sbom
        .catalog
        .packages
        .iter()
        .map(|p| match &p.evidence {
            Some(e) if e.resolution == Resolution::VersionNotInDb => match &e.version_range {
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
    columns(&["NAME", "VERSION", "TYPE"], &rows, out)?;
    if !sbom.catalog.unexplained_files.is_empty() {
        writeln!(
            out,
            "\n{} file(s) explained by no package (see -o json: unexplained_files)",
            sbom.catalog.unexplained_files.len()
        )?;
    }
    Ok(())
}

/// Rows in aligned columns two spaces apart, the header first; the last
/// column is not padded.
pub(crate) fn columns<S: AsRef<str>, const N: usize>(
    header: &[S; N],
    rows: &[[S; N]],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut widths = [0usize; N];
    for r in std::iter::once(header).chain(rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.as_ref().len());
        }
    }
    for r in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{:<w$}", c.as_ref()))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
