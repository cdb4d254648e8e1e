//! Deriving the `template` table from the raw observations, at the end of
//! every build and inside its transaction.
//!
//! A string template is *specific* when no string of another project's
//! files matches it: `^OpenSSL\s+(VER)\s+\d+\s+[A-Z][a-z]{2}\s+\d+$` names
//! OpenSSL, a bare `^(VER)$` names nothing. `others` records how many other
//! projects it also matches, so scans can demand corroboration for weak
//! templates instead of dropping them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{params, Connection};

use crate::learn::{libname_relation, TemplateKind};
use crate::patterns::PatternSets;
use crate::project::project_name;

/// Why deriving failed.
pub(crate) enum DeriveError {
    /// SQLite failed.
    Sql(rusqlite::Error),
    /// The learned string patterns do not compile.
    Pattern(String),
}

impl From<rusqlite::Error> for DeriveError {
    fn from(e: rusqlite::Error) -> Self {
        DeriveError::Sql(e)
    }
}

/// Rebuild `template` from `template_seen`, `libname_seen` and `elf_string`.
pub(crate) fn derive(conn: &Connection) -> Result<(), DeriveError> {
    conn.execute("DELETE FROM template", [])?;
    conn.execute(
        "INSERT INTO template (project, kind, symbol, pattern, versions, others) \
         SELECT project, kind, symbol, pattern, count(DISTINCT version), 0 \
         FROM template_seen GROUP BY project, kind, symbol, pattern",
        [],
    )?;
    drop_incredible(conn)?;
    string_specificity(conn)?;
    libnames(conn)?;
    Ok(functions(conn)?)
}

/// Remove function templates that are coincidences: a constant some
/// function returns or stores that happened to encode the version once
/// (`gss_import_sec_context` returning `0x2000000`, a C++ method storing
/// `0x10000`). A version function says so in its name, or the template
/// held for two releases.
fn drop_incredible(conn: &Connection) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String, String, String, i64)> = conn
        .prepare("SELECT id, kind, symbol, pattern, versions FROM template WHERE kind IN (?1, ?2, ?3, ?4)")?
        .query_map(
            params![
                TemplateKind::FnInt,
                TemplateKind::FnStr,
                TemplateKind::StoreInt,
                TemplateKind::StoreArgs
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut del = conn.prepare("DELETE FROM template WHERE id = ?1")?;
    for (id, kind, symbol, pattern, versions) in rows {
        let kind = TemplateKind::parse(&kind).unwrap_or(TemplateKind::FnInt);
        if !crate::learn::credible(kind, &symbol, &pattern, versions) {
            del.execute([id])?;
        }
    }
    Ok(())
}

/// Mark common hashes (shipped by more than one project) and count each
/// (project, version)'s distinctive ones, in one pass over the postings.
fn functions(conn: &Connection) -> rusqlite::Result<()> {
    use crate::funcmatch::postings;
    let project: HashMap<u32, String> = conn
        .prepare("SELECT id, project FROM func_version")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut distinctive: HashMap<u32, i64> = HashMap::new();
    let mut flips: Vec<(i64, bool)> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT hash, common, versions FROM func_hash")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (hash, was, blob): (i64, bool, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let ids = postings::decode(&blob);
            let first = ids.first().and_then(|i| project.get(i));
            let common = ids.iter().any(|i| project.get(i) != first);
            if common != was {
                flips.push((hash, common));
            }
            if !common {
                for i in ids {
                    *distinctive.entry(i).or_default() += 1;
                }
            }
        }
    }
    let mut set = conn.prepare("UPDATE func_hash SET common = ?2 WHERE hash = ?1")?;
    for (hash, common) in flips {
        set.execute(params![hash, common])?;
    }
    conn.execute("UPDATE func_version SET distinctive = 0", [])?;
    let mut count = conn.prepare("UPDATE func_version SET distinctive = ?2 WHERE id = ?1")?;
    for (id, n) in distinctive {
        count.execute(params![id, n])?;
    }
    Ok(())
}

fn string_specificity(conn: &Connection) -> Result<(), DeriveError> {
    let mut stmt = conn.prepare("SELECT id, project, pattern FROM template WHERE kind = ?1")?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([TemplateKind::String], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    let patterns: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    let set = PatternSets::build(&patterns).map_err(DeriveError::Pattern)?;
    let own = own_versions(conn, &rows)?;
    // Each distinct string once, with the projects whose files hold it.
    let mut holders: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut strings = conn.prepare(
        "SELECT DISTINCT p.source, s.s FROM elf_string s \
         JOIN file f ON f.content_id = s.content_id \
         JOIN package p ON p.id = f.package_id",
    )?;
    let mut projects: HashMap<String, String> = HashMap::new();
    let mut q = strings.query([])?;
    while let Some(r) = q.next()? {
        let source: String = r.get(0)?;
        let project = projects
            .entry(source.clone())
            .or_insert_with(|| project_name(&source))
            .clone();
        holders.entry(r.get(1)?).or_default().insert(project);
    }
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
            let read = set.regex(*i).captures(s).and_then(|c| c.get(1));
            if read.is_some_and(|v| own[*i].contains(v.as_str())) {
                continue;
            }
            others[*i].extend(ps.iter().map(String::as_str).filter(|p| *p != rows[*i].1));
        }
    }
    let mut update = conn.prepare("UPDATE template SET others = ?1 WHERE id = ?2")?;
    for (row, o) in rows.iter().zip(&others) {
        if !o.is_empty() {
            update.execute(params![o.len() as i64, row.0])?;
        }
    }
    Ok(())
}

/// The versions each string template was learned from, by row.
fn own_versions(
    conn: &Connection,
    rows: &[(i64, String, String)],
) -> rusqlite::Result<Vec<BTreeSet<String>>> {
    let mut by_id: HashMap<i64, BTreeSet<String>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT t.id, s.version FROM template t JOIN template_seen s \
         ON s.project = t.project AND s.kind = t.kind AND s.pattern = t.pattern \
         WHERE t.kind = ?1",
    )?;
    let mut q = stmt.query([TemplateKind::String])?;
    while let Some(r) = q.next()? {
        by_id.entry(r.get(0)?).or_default().insert(r.get(1)?);
    }
    Ok(rows
        .iter()
        .map(|r| by_id.remove(&r.0).unwrap_or_default())
        .collect())
}

fn libnames(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT project, base, file_version, version FROM libname_seen")?;
    let mut by: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        by.entry((r.get(0)?, r.get(1)?))
            .or_default()
            .push((r.get(2)?, r.get(3)?));
    }
    let mut bases: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (project, base) in by.keys() {
        bases
            .entry(base.clone())
            .or_default()
            .insert(project.clone());
    }
    let mut add = conn.prepare(
        "INSERT OR IGNORE INTO template (project, kind, symbol, pattern, versions, others) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for ((project, base), pairs) in &by {
        let versioned: Vec<(String, String)> = pairs
            .iter()
            .filter(|(_, u)| !u.is_empty())
            .cloned()
            .collect();
        let relation = libname_relation(&versioned).unwrap_or_default();
        let distinct: BTreeSet<&String> = versioned.iter().map(|(_, u)| u).collect();
        let others = bases.get(base).map_or(0, |p| p.len() - 1);
        add.execute(params![
            project,
            TemplateKind::Libname,
            base,
            relation,
            distinct.len() as i64,
            others as i64
        ])?;
    }
    Ok(())
}
