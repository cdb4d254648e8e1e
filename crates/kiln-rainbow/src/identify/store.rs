//! [`SignatureLookup`] over the signature DB, on either engine. Keys go
//! as one batch per kind (`rarray(?1)`: SQLite's carray, PostgreSQL's
//! `unnest`), so one query looks a whole batch up through the indexes;
//! `CROSS JOIN` pins the batch as SQLite's outer loop, so each key is one
//! index probe whatever the size of the DB.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kiln_catalog::Ecosystem;
use kiln_store::Value;

use super::lookup::{Build, BuildId, ContentId, KeyHit, PathHit, SignatureLookup, StoredCode};
use crate::db::Db;
use crate::error::{RainbowError, Result};
use crate::funcmatch::{postings, Posting, SignatureVersion};

const BY_CONTENT: &str = "SELECT c.digest, f.package_id, p.path FROM rarray(?1) AS a
     CROSS JOIN content c ON c.digest = a.value
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

const BUILDS: &str = "SELECT k.id, k.name, k.version, k.arch, k.source, k.source_version,
        (SELECT count(*) FROM file f WHERE f.package_id = k.id AND f.kind IN ('f', 'h')),
        k.ecosystem
     FROM rarray(?1) AS a CROSS JOIN package k ON k.id = a.value";

const CODE: &str = "SELECT f.content_id, f.hashes, f.loaded, e.build_id FROM rarray(?1) AS a
     CROSS JOIN elf_functions f ON f.content_id = a.value
     LEFT JOIN elf e ON e.content_id = f.content_id";

impl Db {
    fn key_hits(&self, sql: &str, keys: &[&[u8]]) -> Result<Vec<KeyHit>> {
        let keys = Value::Blobs(keys.iter().map(|k| k.to_vec()).collect());
        let mut out = Vec::new();
        self.conn.for_each(sql, &[keys], &mut |r| -> Result<()> {
            out.push((r.blob(0)?, r.int(1)?, r.text(2)?));
            Ok(())
        })?;
        Ok(out)
    }

    fn build(&self, r: &kiln_store::Row) -> Result<Build> {
        let (id, label) = (r.int(0)?, r.text(7)?);
        let ecosystem = Ecosystem::from_label(&label).ok_or_else(|| RainbowError::Corrupt {
            db: self.location().to_string(),
            reason: format!("package {id} has unknown ecosystem {label:?}"),
        })?;
        Ok(Build {
            ecosystem,
            name: r.text(1)?,
            version: r.text(2)?,
            arch: r.text(3)?,
            source: r.text(4)?,
            source_version: r.text(5)?,
            regular_files: usize::try_from(r.int(6)?).unwrap_or(0),
        })
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
        let keys = Value::Texts(paths.iter().map(|p| p.to_string()).collect());
        let mut out = Vec::new();
        self.conn
            .for_each(BY_PATH, &[keys], &mut |r| -> Result<()> {
                out.push((r.text(0)?, r.int(1)?, r.int(2)? != 0, r.opt_int(3)?));
                Ok(())
            })?;
        Ok(out)
    }

    fn builds(&self, ids: &BTreeSet<BuildId>) -> Result<HashMap<BuildId, Build>> {
        let keys = Value::Ints(ids.iter().copied().collect());
        let mut out = HashMap::new();
        for r in self.conn.query(BUILDS, &[keys])? {
            out.insert(r.int(0)?, self.build(&r)?);
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
        let keys = Value::Ints(contents.iter().copied().collect());
        let mut out = HashMap::new();
        self.conn.for_each(CODE, &[keys], &mut |r| -> Result<()> {
            let code = StoredCode {
                functions: Arc::new(crate::funcmatch::unpack(&r.blob(1)?)),
                loaded: r.opt_blob(2)?,
                build_id: r.opt_blob(3)?,
            };
            out.insert(r.int(0)?, code);
            Ok(())
        })?;
        Ok(out)
    }

    fn function_postings(&self, hashes: &[u64]) -> Result<Vec<Posting>> {
        let keys = Value::Ints(hashes.iter().map(|h| *h as i64).collect());
        let mut out = Vec::new();
        self.conn
            .for_each(POSTINGS, &[keys], &mut |r| -> Result<()> {
                out.push(Posting {
                    versions: postings::decode(&r.blob(0)?),
                    common: r.int(1)? != 0,
                });
                Ok(())
            })?;
        Ok(out)
    }

    fn signature_versions(&self, ids: &BTreeSet<u32>) -> Result<HashMap<u32, SignatureVersion>> {
        let keys = Value::Ints(ids.iter().map(|i| i64::from(*i)).collect());
        let mut out = HashMap::new();
        for r in self.conn.query(SIGNATURE_VERSIONS, &[keys])? {
            let version = SignatureVersion {
                project: r.text(1)?,
                version: r.text(2)?,
                distinctive: usize::try_from(r.int(3)?).unwrap_or(0),
            };
            out.insert(u32::try_from(r.int(0)?).unwrap_or(u32::MAX), version);
        }
        Ok(out)
    }

    fn project_versions(&self, project: &str) -> Result<Vec<(u32, String)>> {
        let rows = self.conn.query(
            "SELECT id, version FROM func_version WHERE project = ?1",
            &[project.into()],
        )?;
        rows.iter()
            .map(|r| Ok((u32::try_from(r.int(0)?).unwrap_or(u32::MAX), r.text(1)?)))
            .collect()
    }

    fn second_reader(&self) -> Result<Self> {
        Db::second_reader(self)
    }
}
