//! Matching function signatures: which projects' distinctive functions a
//! file contains (a statically linked library, a stripped or rebuilt
//! copy), and at which version.
//!
//! For each file, its function hashes are looked up in one batch
//! (`rarray`), hashes common to several projects are ignored, and each
//! (project, version) gets a containment score: matched / distinctive.
//! The version with the highest containment wins; equal scores give a
//! version set, never a guess.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use serde::Serialize;

use crate::db::Db;
use crate::error::Result;

/// Fewest distinctive functions that can name a project.
pub const MIN_MATCHED: usize = 10;
/// Least containment that can name a project.
pub const MIN_CONTAINMENT: f64 = 0.05;

/// A project found in one file by its functions.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionMatch {
    /// Canonical project name.
    pub project: String,
    /// Versions with the best containment (one for an exact answer).
    pub versions: Vec<String>,
    /// The file has functions of this project that the best version does
    /// not have: it is a build the DB does not know, and `versions` only
    /// names the nearest.
    pub not_in_db: bool,
    /// Distinctive functions of the best version found in the file.
    pub matched: usize,
    /// Distinctive functions that version has.
    pub distinctive: usize,
    /// matched / distinctive.
    pub containment: f64,
    /// The best other version and its containment: the margin behind the
    /// choice.
    pub runner_up: Option<(String, f64)>,
}

/// Whether `db` has function signatures; loads the `rarray` module once
/// for the [`match_functions`] calls that follow.
pub fn has_signatures(db: &Db) -> Result<bool> {
    let e = |err| db.err(err);
    rusqlite::vtab::array::load_module(&db.conn).map_err(e)?;
    let n = db
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'func_sig'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(e)?;
    Ok(n > 0)
}

/// Projects whose distinctive functions `hashes` contains (after
/// [`has_signatures`] said yes).
pub fn match_functions(db: &Db, hashes: &[u64]) -> Result<Vec<FunctionMatch>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let e = |err| db.err(err);
    let values = std::rc::Rc::new(
        hashes
            .iter()
            .map(|h| Value::Integer(*h as i64))
            .collect::<Vec<_>>(),
    );
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT s.project, s.version, count(*), g.distinctive
             FROM rarray(?1) AS a
             CROSS JOIN func_seen s ON s.hash = a.value
             JOIN func_sig g ON g.project = s.project AND g.version = s.version
             WHERE s.hash NOT IN (SELECT hash FROM func_common)
             GROUP BY s.project, s.version",
        )
        .map_err(e)?;
    let rows = stmt
        .query_map([std::rc::Rc::clone(&values)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? as usize,
                r.get::<_, i64>(3)? as usize,
            ))
        })
        .map_err(e)?;
    let mut by: BTreeMap<String, Vec<(String, usize, usize)>> = BTreeMap::new();
    for row in rows {
        let (project, version, matched, distinctive) = row.map_err(e)?;
        by.entry(project)
            .or_default()
            .push((version, matched, distinctive));
    }
    // Per project: the file's distinctive hashes of any of its versions.
    let mut any_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut stmt = db
        .conn
        .prepare_cached(
            "SELECT s.project, count(DISTINCT s.hash)
             FROM rarray(?1) AS a
             CROSS JOIN func_seen s ON s.hash = a.value
             WHERE s.hash NOT IN (SELECT hash FROM func_common)
             GROUP BY s.project",
        )
        .map_err(e)?;
    let rows = stmt
        .query_map([values], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })
        .map_err(e)?;
    for row in rows {
        let (p, n) = row.map_err(e)?;
        any_version.insert(p, n);
    }
    let mut out = Vec::new();
    for (project, vs) in by {
        let score = |m: usize, d: usize| m as f64 / d.max(1) as f64;
        let best = vs.iter().map(|(_, m, d)| score(*m, *d)).fold(0.0, f64::max);
        let top: Vec<&(String, usize, usize)> = vs
            .iter()
            .filter(|(_, m, d)| (score(*m, *d) - best).abs() < 1e-9)
            .collect();
        let Some((_, matched, distinctive)) = top.first() else {
            continue;
        };
        if *matched < MIN_MATCHED || best < MIN_CONTAINMENT {
            continue;
        }
        let mut versions: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
        versions.sort();
        let runner_up = vs
            .iter()
            .filter(|(v, _, _)| !versions.contains(v))
            .map(|(v, m, d)| (v.clone(), (score(*m, *d) * 1000.0).round() / 1000.0))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        // A build of a known version has every one of the file's functions
        // of this project; one it lacks means a version the DB has not seen.
        let not_in_db = any_version.get(&project).is_some_and(|n| n > matched);
        out.push(FunctionMatch {
            project,
            versions,
            not_in_db,
            matched: *matched,
            distinctive: *distinctive,
            containment: (best * 1000.0).round() / 1000.0,
            runner_up,
        });
    }
    Ok(out)
}
