//! Deriving the `template` table from the raw observations, at the end of
//! every build and inside its transaction.
//!
//! A string template is *specific* when no string of another project's
//! files matches it: `^OpenSSL\s+(VER)\s+\d+\s+[A-Z][a-z]{2}\s+\d+$` names
//! OpenSSL, a bare `^(VER)$` names nothing. `others` records how many other
//! projects it also matches, so scans can demand corroboration for weak
//! templates instead of dropping them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kiln_store::{Conn, Value};

use crate::error::{RainbowError, Result};
use crate::learn::{libname_relation, TemplateKind};
use crate::patterns::PatternSets;
use crate::project::project_name;

/// Rebuild `template` from `template_seen`, `libname_seen` and `elf_string`.
pub(crate) fn derive(conn: &Conn) -> Result<()> {
    conn.execute("DELETE FROM template", &[])?;
    conn.execute(
        "INSERT INTO template (project, kind, symbol, pattern, versions, others) \
         SELECT project, kind, symbol, pattern, count(DISTINCT version), 0 \
         FROM template_seen GROUP BY project, kind, symbol, pattern",
        &[],
    )?;
    drop_incredible(conn)?;
    string_specificity(conn)?;
    libnames(conn)?;
    functions(conn)
}

/// Remove function templates that are coincidences: a constant some
/// function returns or stores that happened to encode the version once
/// (`gss_import_sec_context` returning `0x2000000`, a C++ method storing
/// `0x10000`). A version function says so in its name, or the template
/// held for two releases.
fn drop_incredible(conn: &Conn) -> Result<()> {
    let kinds = [
        TemplateKind::FnInt,
        TemplateKind::FnStr,
        TemplateKind::StoreInt,
        TemplateKind::StoreArgs,
    ];
    let rows = conn.query(
        "SELECT id, kind, symbol, pattern, versions FROM template WHERE kind IN (?1, ?2, ?3, ?4)",
        &kinds.map(|k| Value::from(k.as_str())),
    )?;
    let mut doomed = Vec::new();
    for r in rows {
        let kind = TemplateKind::parse(&r.text(1)?).unwrap_or(TemplateKind::FnInt);
        if !crate::learn::credible(kind, &r.text(2)?, &r.text(3)?, r.int(4)?) {
            doomed.push(r.int(0)?);
        }
    }
    conn.execute(
        "DELETE FROM template WHERE id IN (SELECT value FROM rarray(?1) AS r)",
        &[Value::Ints(doomed)],
    )?;
    Ok(())
}

/// Mark common hashes (shipped by more than one project) and count each
/// (project, version)'s distinctive ones, in one pass over the postings.
fn functions(conn: &Conn) -> Result<()> {
    use crate::funcmatch::postings;
    let mut project: HashMap<u32, String> = HashMap::new();
    for r in conn.query("SELECT id, project FROM func_version", &[])? {
        project.insert(u32::try_from(r.int(0)?).unwrap_or(u32::MAX), r.text(1)?);
    }
    let mut distinctive: HashMap<u32, i64> = HashMap::new();
    let mut flips: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    conn.for_each(
        "SELECT hash, common, versions FROM func_hash",
        &[],
        &mut |r| -> Result<()> {
            let (hash, was) = (r.int(0)?, r.int(1)? != 0);
            let ids = postings::decode(&r.blob(2)?);
            let first = ids.first().and_then(|i| project.get(i));
            let common = ids.iter().any(|i| project.get(i) != first);
            if common != was {
                flips[usize::from(common)].push(hash);
            }
            if !common {
                for i in ids {
                    *distinctive.entry(i).or_default() += 1;
                }
            }
            Ok(())
        },
    )?;
    for (common, hashes) in flips.into_iter().enumerate() {
        conn.execute(
            "UPDATE func_hash SET common = ?2 WHERE hash IN (SELECT value FROM rarray(?1) AS r)",
            &[Value::Ints(hashes), (common as i64).into()],
        )?;
    }
    conn.execute("UPDATE func_version SET distinctive = 0", &[])?;
    let mut by_count: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (id, n) in distinctive {
        by_count.entry(n).or_default().push(i64::from(id));
    }
    for (n, ids) in by_count {
        conn.execute(
            "UPDATE func_version SET distinctive = ?2 WHERE id IN (SELECT value FROM rarray(?1) AS r)",
            &[Value::Ints(ids), n.into()],
        )?;
    }
    Ok(())
}

fn string_specificity(conn: &Conn) -> Result<()> {
    let mut rows: Vec<(i64, String, String)> = Vec::new();
    for r in conn.query(
        "SELECT id, project, pattern FROM template WHERE kind = ?1",
        &[TemplateKind::String.as_str().into()],
    )? {
        rows.push((r.int(0)?, r.text(1)?, r.text(2)?));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let patterns: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    let set = PatternSets::build(&patterns).map_err(RainbowError::Template)?;
    let own = own_versions(conn, &rows)?;
    // Each distinct string once, with the projects whose files hold it.
    let mut holders: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut projects: HashMap<String, String> = HashMap::new();
    conn.for_each(
        "SELECT DISTINCT p.source, s.s FROM elf_string s \
         JOIN file f ON f.content_id = s.content_id \
         JOIN package p ON p.id = f.package_id",
        &[],
        &mut |r| -> Result<()> {
            let source = r.text(0)?;
            let project = projects
                .entry(source.clone())
                .or_insert_with(|| project_name(&source))
                .clone();
            holders.entry(r.text(1)?).or_default().insert(project);
            Ok(())
        },
    )?;
    // Match in parallel: the set is shared, the strings are many.
    let hits: Vec<(&String, Vec<usize>, &BTreeSet<String>)> = {
        use rayon::prelude::*;
        let all: Vec<(&String, &BTreeSet<String>)> = holders.iter().collect();
        all.par_iter()
            .filter_map(|(s, ps)| {
                let m = set.matches(s);
                (!m.is_empty()).then_some((*s, m, *ps))
            })
            .collect()
    };
    let mut others: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); rows.len()];
    for (s, matched, ps) in &hits {
        for i in matched {
            // Another project's file holding this project's own string at
            // this project's own version is an embedded copy of it (a
            // statically linked HDF5): no evidence against specificity.
            let read = set
                .regex(*i)
                .and_then(|r| r.captures(s))
                .and_then(|c| c.get(1));
            if read.is_some_and(|v| own[*i].contains(v.as_str())) {
                continue;
            }
            others[*i].extend(ps.iter().map(String::as_str).filter(|p| *p != rows[*i].1));
        }
    }
    let mut by_count: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (row, o) in rows.iter().zip(&others) {
        if !o.is_empty() {
            by_count.entry(o.len() as i64).or_default().push(row.0);
        }
    }
    for (n, ids) in by_count {
        conn.execute(
            "UPDATE template SET others = ?1 WHERE id IN (SELECT value FROM rarray(?2) AS r)",
            &[n.into(), Value::Ints(ids)],
        )?;
    }
    Ok(())
}

/// The versions each string template was learned from, by row.
fn own_versions(conn: &Conn, rows: &[(i64, String, String)]) -> Result<Vec<BTreeSet<String>>> {
    let mut by_id: HashMap<i64, BTreeSet<String>> = HashMap::new();
    conn.for_each(
        "SELECT t.id, s.version FROM template t JOIN template_seen s \
         ON s.project = t.project AND s.kind = t.kind AND s.pattern = t.pattern \
         WHERE t.kind = ?1",
        &[TemplateKind::String.as_str().into()],
        &mut |r| -> Result<()> {
            by_id.entry(r.int(0)?).or_default().insert(r.text(1)?);
            Ok(())
        },
    )?;
    Ok(rows
        .iter()
        .map(|r| by_id.remove(&r.0).unwrap_or_default())
        .collect())
}

fn libnames(conn: &Conn) -> Result<()> {
    let mut by: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    conn.for_each(
        "SELECT project, base, file_version, version FROM libname_seen",
        &[],
        &mut |r| -> Result<()> {
            by.entry((r.text(0)?, r.text(1)?))
                .or_default()
                .push((r.text(2)?, r.text(3)?));
            Ok(())
        },
    )?;
    // Engines order rows differently; the relation must not depend on it.
    for pairs in by.values_mut() {
        pairs.sort();
    }
    let mut bases: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (project, base) in by.keys() {
        bases
            .entry(base.clone())
            .or_default()
            .insert(project.clone());
    }
    use kiln_store::Kind::{Int, Text};
    let mut add = kiln_store::Rows::new(&[Text, Text, Text, Text, Int, Int]);
    for ((project, base), pairs) in &by {
        let versioned: Vec<(String, String)> = pairs
            .iter()
            .filter(|(_, u)| !u.is_empty())
            .cloned()
            .collect();
        let relation = libname_relation(&versioned).unwrap_or_default();
        let distinct: BTreeSet<&String> = versioned.iter().map(|(_, u)| u).collect();
        let others = bases.get(base).map_or(0, |p| p.len() - 1);
        add.push([
            Value::from(project),
            TemplateKind::Libname.as_str().into(),
            base.into(),
            relation.into(),
            (distinct.len() as i64).into(),
            (others as i64).into(),
        ])?;
    }
    conn.insert_rows(
        "INSERT INTO template (project, kind, symbol, pattern, versions, others)",
        "ON CONFLICT DO NOTHING",
        add.columns(),
    )?;
    Ok(())
}
