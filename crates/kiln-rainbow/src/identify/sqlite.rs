//! [`SignatureLookup`] over the SQLite signature DB. Keys go to SQLite as
//! arrays (carray, as `rarray(?1)`), so one query per kind looks a whole
//! batch up through the indexes; `CROSS JOIN` pins the array as the outer
//! loop, so each key is one index probe whatever the size of the DB.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kiln_catalog::Ecosystem;

use super::lookup::{Build, BuildId, ContentId, KeyHit, PathHit, SignatureLookup, StoredCode};
use crate::db::{rarray, Db};
use crate::error::{RainbowError, Result};
use crate::funcmatch::{postings, Posting, SignatureVersion};

const BY_CONTENT: &str = "SELECT c.sha256, f.package_id, p.path FROM rarray(?1) AS a
     CROSS JOIN content c ON c.sha256 = a.value
     JOIN file f ON f.content_id = c.id
     JOIN path p ON p.id = f.path_id";

const BY_BUILD_ID: &str = "SELECT x.build_id, f.package_id, p.path FROM rarray(?1) AS a
     CROSS JOIN elf x ON x.build_id = a.value
     JOIN file f ON f.content_id = x.content_id
     JOIN path p ON p.id = f.path_id";

const BY_PATH: &str = "SELECT p.path, f.package_id, f.conffile, f.content_id FROM rarray(?1) AS a
     CROSS JOIN path p ON p.path = a.value
     JOIN file f ON f.path_id = p.id
     WHERE f.kind IN ('f', 'h')";

const POSTINGS: &str = "SELECT h.versions, h.common FROM rarray(?1) AS a
     CROSS JOIN func_hash h ON h.hash = a.value";

const SIGNATURE_VERSIONS: &str =
    "SELECT v.id, v.project, v.version, v.distinctive FROM rarray(?1) AS a
     CROSS JOIN func_version v ON v.id = a.value";

const BUILD: &str = "SELECT name, version, arch, source, source_version,
        (SELECT count(*) FROM file f WHERE f.package_id = package.id AND f.kind IN ('f', 'h')),
        ecosystem
     FROM package WHERE id = ?1";

impl Db {
    fn key_hits(&self, sql: &str, keys: &[&[u8]]) -> Result<Vec<KeyHit>> {
        let e = |err| self.err(err);
        rusqlite::vtab::array::load_module(&self.conn).map_err(e)?;
        let mut q = self.conn.prepare_cached(sql).map_err(e)?;
        let rows = q
            .query_map([rarray(keys.iter().map(|k| k.to_vec()))], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    }
}

impl SignatureLookup for Db {
    fn by_content(&self, digests: &[&[u8]]) -> Result<Vec<KeyHit>> {
        self.key_hits(BY_CONTENT, digests)
    }

    fn by_build_id(&self, ids: &[&[u8]]) -> Result<Vec<KeyHit>> {
        self.key_hits(BY_BUILD_ID, ids)
    }

    fn by_path(&self, paths: &[&str]) -> Result<Vec<PathHit>> {
        let e = |err| self.err(err);
        rusqlite::vtab::array::load_module(&self.conn).map_err(e)?;
        let mut q = self.conn.prepare_cached(BY_PATH).map_err(e)?;
        let rows = q
            .query_map([rarray(paths.iter().map(|p| p.to_string()))], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    }

    fn builds(&self, ids: &BTreeSet<BuildId>) -> Result<HashMap<BuildId, Build>> {
        let e = |err| self.err(err);
        let mut stmt = self.conn.prepare_cached(BUILD).map_err(e)?;
        let mut out = HashMap::new();
        for id in ids {
            let (build, ecosystem) = stmt
                .query_row([id], |r| {
                    let build = Build {
                        ecosystem: Ecosystem::Deb,
                        name: r.get(0)?,
                        version: r.get(1)?,
                        arch: r.get(2)?,
                        source: r.get(3)?,
                        source_version: r.get(4)?,
                        regular_files: r.get::<_, i64>(5)? as usize,
                    };
                    Ok((build, r.get::<_, String>(6)?))
                })
                .map_err(e)?;
            let ecosystem =
                Ecosystem::from_label(&ecosystem).ok_or_else(|| RainbowError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("package {id} has unknown ecosystem {ecosystem:?}"),
                })?;
            out.insert(*id, Build { ecosystem, ..build });
        }
        Ok(out)
    }

    fn has_code_identities(&self) -> Result<bool> {
        crate::funcmatch::has_file_functions(self)
    }

    fn has_function_signatures(&self) -> Result<bool> {
        crate::funcmatch::has_signatures(self)
    }

    fn code_identities(
        &self,
        contents: &BTreeSet<ContentId>,
    ) -> Result<HashMap<ContentId, StoredCode>> {
        let e = |err| self.err(err);
        rusqlite::vtab::array::load_module(&self.conn).map_err(e)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.content_id, f.hashes, f.loaded, e.build_id FROM rarray(?1) AS a
                 CROSS JOIN elf_functions f ON f.content_id = a.value
                 LEFT JOIN elf e ON e.content_id = f.content_id",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map([rarray(contents.iter().copied())], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })
            .map_err(e)?;
        let mut out = HashMap::new();
        for row in rows {
            let (c, blob, loaded, build_id) = row.map_err(e)?;
            let functions = Arc::new(crate::funcmatch::unpack(&blob));
            out.insert(
                c,
                StoredCode {
                    functions,
                    loaded,
                    build_id,
                },
            );
        }
        Ok(out)
    }

    fn function_postings(&self, hashes: &[u64]) -> Result<Vec<Posting>> {
        let e = |err| self.err(err);
        rusqlite::vtab::array::load_module(&self.conn).map_err(e)?;
        let mut stmt = self.conn.prepare_cached(POSTINGS).map_err(e)?;
        let rows = stmt
            .query_map([rarray(hashes.iter().map(|h| *h as i64))], |r| {
                Ok(Posting {
                    versions: postings::decode(&r.get::<_, Vec<u8>>(0)?),
                    common: r.get::<_, i64>(1)? != 0,
                })
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    }

    fn signature_versions(&self, ids: &BTreeSet<u32>) -> Result<HashMap<u32, SignatureVersion>> {
        let e = |err| self.err(err);
        rusqlite::vtab::array::load_module(&self.conn).map_err(e)?;
        let mut stmt = self.conn.prepare_cached(SIGNATURE_VERSIONS).map_err(e)?;
        let rows = stmt
            .query_map([rarray(ids.iter().map(|i| i64::from(*i)))], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    SignatureVersion {
                        project: r.get(1)?,
                        version: r.get(2)?,
                        distinctive: r.get::<_, i64>(3)? as usize,
                    },
                ))
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    }

    fn project_versions(&self, project: &str) -> Result<Vec<(u32, String)>> {
        let e = |err| self.err(err);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, version FROM func_version WHERE project = ?1")
            .map_err(e)?;
        let rows = stmt
            .query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<_>>().map_err(e)
    }

    fn second_reader(&self) -> Result<Self> {
        self.reopen()
    }
}
