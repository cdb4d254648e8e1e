//! Writing packages into the signature tables, the same way on both
//! engines: a package's rows go in a few set-wise statements (paths and
//! contents looked up and added as batches, files, strings and ELF facts as
//! bulk inserts), with caches so what earlier packages stored is never
//! asked for again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kiln_catalog::Ecosystem;
use kiln_store::{Column, Conn, Result, Rows, Value};

use crate::deb::{DebFile, DebRecord, FileKind};

type Digest = kiln_tree::ContentDigest;
/// Content ids by digest.
type ContentIds = HashMap<Digest, i64>;

/// One ingest's caches and pending function postings.
pub(crate) struct Writer<'c> {
    conn: &'c Conn,
    paths: HashMap<String, i64>,
    contents: HashMap<[u8; 32], i64>,
    /// (project, upstream version) -> func_version id.
    func_versions: HashMap<(String, String), u32>,
    /// Function hash -> versions this ingest saw it in, merged into
    /// `func_hash` by [`Writer::flush_functions`].
    new_postings: HashMap<u64, Vec<u32>>,
}

use kiln_store::Kind::{Blob, Int, Text};

impl<'c> Writer<'c> {
    pub(crate) fn new(conn: &'c Conn) -> Self {
        Writer {
            conn,
            paths: HashMap::new(),
            contents: HashMap::new(),
            func_versions: HashMap::new(),
            new_postings: HashMap::new(),
        }
    }

    /// Add one package; `false` when the DB already holds it (perhaps
    /// added meanwhile by another builder).
    pub(crate) fn add(&mut self, rec: &DebRecord) -> Result<bool> {
        let Some(package_id) = self.add_package(rec)? else {
            return Ok(false);
        };
        let project = crate::project::project_name(&rec.source);
        let upstream = crate::project::upstream_version(&rec.source_version).unwrap_or_default();
        self.learn(rec, &project, &upstream)?;
        let path_ids = self.path_ids(&rec.files)?;
        let (content_ids, new) = self.content_ids(&rec.files)?;
        self.add_content_facts(&rec.files, &content_ids, &new)?;
        // One row per path: a later entry for the same path wins, as it
        // does when dpkg unpacks.
        let mut by_path: BTreeMap<i64, &DebFile> = BTreeMap::new();
        for f in &rec.files {
            by_path.insert(path_ids[f.path.as_str()], f);
        }
        let mut files = Rows::new(&[Int, Int, Text, Int, Int, Text, Int]);
        for (path_id, f) in by_path {
            let content = f.digest.map(|s| content_ids[&s]);
            files.push([
                package_id.into(),
                path_id.into(),
                f.kind.code().into(),
                i64::from(f.mode).into(),
                content.into(),
                f.link_target.clone().into(),
                f.conffile.into(),
            ])?;
        }
        self.conn.insert_rows(
            "INSERT INTO file (package_id, path_id, kind, mode, content_id, link_target, conffile)",
            "ON CONFLICT (package_id, path_id) DO NOTHING",
            files.columns(),
        )?;
        Ok(true)
    }

    fn add_package(&self, rec: &DebRecord) -> Result<Option<i64>> {
        let row = self.conn.query_row(
            "INSERT INTO package (ecosystem, name, version, arch, source, source_version, depends, archive_sha256) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (ecosystem, name, version, arch) DO NOTHING RETURNING id",
            &[
                rec.ecosystem.label().into(),
                (&rec.name).into(),
                (&rec.version).into(),
                (&rec.arch).into(),
                (&rec.source).into(),
                (&rec.source_version).into(),
                rec.depends.join(" ").into(),
                (&rec.archive_sha256).into(),
            ],
        )?;
        row.map(|r| r.int(0)).transpose()
    }

    /// Template observations, library names and function postings.
    /// Only distro packages teach library names and function signatures:
    /// a wheel's vendored copies are what they identify.
    fn learn(&mut self, rec: &DebRecord, project: &str, upstream: &str) -> Result<()> {
        let mut seen = BTreeSet::new();
        let mut libnames = BTreeSet::new();
        let learns = rec.ecosystem == Ecosystem::Deb;
        for f in &rec.files {
            for t in &f.templates {
                seen.insert((t.kind.as_str(), t.symbol.as_str(), t.pattern.as_str()));
            }
            if learns && !upstream.is_empty() && !f.functions.is_empty() {
                let v = self.func_version(project, upstream)?;
                for h in &f.functions {
                    let p = self.new_postings.entry(*h).or_default();
                    if p.last() != Some(&v) {
                        p.push(v);
                    }
                }
            }
            let soname = f.elf.as_ref().and_then(|e| e.soname.as_ref());
            if learns && soname.is_some() && f.kind == FileKind::File {
                let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
                if let Some(pair) = crate::project::library_name(file_name) {
                    libnames.insert(pair);
                }
            }
        }
        let mut rows = Rows::new(&[Text, Text, Text, Text, Text]);
        for (kind, symbol, pattern) in seen {
            rows.push([
                project.into(),
                kind.into(),
                symbol.into(),
                pattern.into(),
                upstream.into(),
            ])?;
        }
        self.conn.insert_rows(
            "INSERT INTO template_seen (project, kind, symbol, pattern, version)",
            "ON CONFLICT DO NOTHING",
            rows.columns(),
        )?;
        let mut rows = Rows::new(&[Text, Text, Text, Text]);
        for (base, fv) in libnames {
            rows.push([project.into(), base.into(), fv.into(), upstream.into()])?;
        }
        self.conn.insert_rows(
            "INSERT INTO libname_seen (project, base, file_version, version)",
            "ON CONFLICT DO NOTHING",
            rows.columns(),
        )?;
        Ok(())
    }

    fn func_version(&mut self, project: &str, version: &str) -> Result<u32> {
        let key = (project.to_string(), version.to_string());
        if let Some(id) = self.func_versions.get(&key) {
            return Ok(*id);
        }
        let params = [project.into(), version.into()];
        self.conn.execute(
            "INSERT INTO func_version (project, version) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &params,
        )?;
        let id = self.conn.query_int(
            "SELECT id FROM func_version WHERE project = ?1 AND version = ?2",
            &params,
        )?;
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        self.func_versions.insert(key, id);
        Ok(id)
    }

    /// Ids of the package's paths, adding the new ones.
    fn path_ids(&mut self, files: &[DebFile]) -> Result<HashMap<String, i64>> {
        let wanted: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|p| !self.paths.contains_key(**p))
            .map(|p| p.to_string())
            .collect();
        if !missing.is_empty() {
            let found = self.conn.query(
                "SELECT p.path, p.id FROM rarray(?1) AS a CROSS JOIN path p ON p.path = a.value",
                &[Value::Texts(missing.clone())],
            )?;
            for r in found {
                self.paths.insert(r.text(0)?, r.int(1)?);
            }
            let new: Vec<Option<String>> = missing
                .into_iter()
                .filter(|p| !self.paths.contains_key(p))
                .map(Some)
                .collect();
            let added = self.conn.insert_rows(
                "INSERT INTO path (path)",
                "RETURNING path, id",
                &[Column::Text(new)],
            )?;
            for r in added {
                self.paths.insert(r.text(0)?, r.int(1)?);
            }
        }
        Ok(wanted
            .into_iter()
            .filter_map(|p| self.paths.get(p).map(|id| (p.to_string(), *id)))
            .collect())
    }

    /// Ids of the package's contents, adding the new ones; also which
    /// were new (their facts are stored once, with them).
    fn content_ids(&mut self, files: &[DebFile]) -> Result<(ContentIds, BTreeSet<Digest>)> {
        let wanted: BTreeMap<[u8; 32], u64> = files
            .iter()
            .filter_map(|f| f.digest.map(|s| (s, f.size)))
            .collect();
        let missing: Vec<Vec<u8>> = wanted
            .keys()
            .filter(|s| !self.contents.contains_key(*s))
            .map(|s| s.to_vec())
            .collect();
        let mut new = BTreeSet::new();
        if !missing.is_empty() {
            let found = self.conn.query(
                "SELECT c.digest, c.id FROM rarray(?1) AS a CROSS JOIN content c ON c.digest = a.value",
                &[Value::Blobs(missing.clone())],
            )?;
            for r in found {
                if let Ok(sha) = <[u8; 32]>::try_from(r.blob(0)?.as_slice()) {
                    self.contents.insert(sha, r.int(1)?);
                }
            }
            let mut rows = Rows::new(&[Blob, Int]);
            for sha in missing {
                let Ok(key) = <[u8; 32]>::try_from(sha.as_slice()) else {
                    continue;
                };
                if !self.contents.contains_key(&key) {
                    let size = i64::try_from(wanted[&key]).unwrap_or(i64::MAX);
                    rows.push([sha.into(), size.into()])?;
                }
            }
            let added = self.conn.insert_rows(
                "INSERT INTO content (digest, size)",
                "RETURNING digest, id",
                rows.columns(),
            )?;
            for r in added {
                if let Ok(sha) = <[u8; 32]>::try_from(r.blob(0)?.as_slice()) {
                    self.contents.insert(sha, r.int(1)?);
                    new.insert(sha);
                }
            }
        }
        let ids = wanted
            .keys()
            .filter_map(|s| self.contents.get(s).map(|id| (*s, *id)))
            .collect();
        Ok((ids, new))
    }

    /// Strings, ELF facts and code identity of contents stored for the
    /// first time.
    fn add_content_facts(
        &self,
        files: &[DebFile],
        ids: &HashMap<[u8; 32], i64>,
        new: &BTreeSet<[u8; 32]>,
    ) -> Result<()> {
        let mut strings = Rows::new(&[Int, Text]);
        let mut elfs = Rows::new(&[Int, Int, Int, Blob, Text, Text, Text, Text]);
        let mut code = Rows::new(&[Int, Blob, Blob]);
        let mut done = BTreeSet::new();
        for f in files {
            let Some(sha) = f.digest.filter(|s| new.contains(s) && done.insert(*s)) else {
                continue;
            };
            let id = ids[&sha];
            let distinct: BTreeSet<&String> = f.strings.iter().collect();
            for s in distinct {
                strings.push([id.into(), s.into()])?;
            }
            let Some(elf) = &f.elf else { continue };
            elfs.push([
                id.into(),
                i64::from(elf.machine).into(),
                i64::from(elf.kind).into(),
                elf.build_id.clone().into(),
                elf.soname.clone().into(),
                elf.note_package.clone().into(),
                elf.needed.join("\n").into(),
                elf.verdefs.join("\n").into(),
            ])?;
            if !f.functions.is_empty() || elf.loaded.is_some() {
                code.push([
                    id.into(),
                    crate::funcmatch::pack(&f.functions).into(),
                    elf.loaded.map(|d| d.to_vec()).into(),
                ])?;
            }
        }
        self.conn.insert_rows(
            "INSERT INTO elf_string (content_id, s)",
            "ON CONFLICT DO NOTHING",
            strings.columns(),
        )?;
        self.conn.insert_rows(
            "INSERT INTO elf (content_id, machine, kind, build_id, soname, note_package, needed, verdefs)",
            "ON CONFLICT DO NOTHING",
            elfs.columns(),
        )?;
        self.conn.insert_rows(
            "INSERT INTO elf_functions (content_id, hashes, loaded)",
            "ON CONFLICT DO NOTHING",
            code.columns(),
        )?;
        Ok(())
    }

    /// Merge this ingest's function postings into `func_hash`: each hash
    /// once, its posting list the union of old and new versions.
    pub(crate) fn flush_functions(&mut self) -> Result<()> {
        use crate::funcmatch::postings;
        let mut hashes: Vec<(u64, Vec<u32>)> = self.new_postings.drain().collect();
        hashes.sort_unstable_by_key(|h| h.0 as i64);
        for chunk in hashes.chunks(10_000) {
            let keys: Vec<i64> = chunk.iter().map(|(h, _)| *h as i64).collect();
            let mut old: HashMap<i64, Vec<u8>> = HashMap::new();
            for r in self.conn.query(
                "SELECT h.hash, h.versions FROM rarray(?1) AS a CROSS JOIN func_hash h ON h.hash = a.value",
                &[Value::Ints(keys)],
            )? {
                old.insert(r.int(0)?, r.blob(1)?);
            }
            let mut rows = Rows::new(&[Int, Blob]);
            for (hash, ids) in chunk {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                let merged = match old.get(&(*hash as i64)) {
                    Some(o) => postings::merge(&postings::decode(o), &ids),
                    None => ids,
                };
                rows.push([(*hash as i64).into(), postings::encode(&merged).into()])?;
            }
            self.conn.insert_rows(
                "INSERT INTO func_hash (hash, versions)",
                "ON CONFLICT (hash) DO UPDATE SET versions = excluded.versions",
                rows.columns(),
            )?;
        }
        Ok(())
    }
}
