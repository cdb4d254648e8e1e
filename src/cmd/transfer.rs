//! `kiln db push` / `kiln db pull`: the signature DB as an OCI artifact in
//! a registry, so every scanner of a team uses the same table. The DB is
//! snapshotted (`VACUUM INTO`), zstd-compressed and pushed with its schema
//! version and stats as annotations; a pull verifies the digest while it
//! streams, checks the schema, and replaces the local DB atomically.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use kiln_image::registry::{pull_artifact, push_artifact, ArtifactSpec, RegistryRef, Repository};
use kiln_image::SourceRef;
use kiln_rainbow::{Db, SCHEMA_VERSION};
use kiln_store::Location;

use super::db::DbArg;
use super::net::NetArgs;

/// The artifact type of a kiln signature DB.
pub const ARTIFACT_TYPE: &str = "application/vnd.dev.kiln.signature-db.v1";
/// Its one layer: the SQLite file, zstd-compressed.
pub const LAYER_TYPE: &str = "application/vnd.dev.kiln.signature-db.v1.sqlite+zstd";
const SCHEMA_KEY: &str = "dev.kiln.db.schema";

/// `kiln db push REF` / `kiln db pull REF`
#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// registry:HOST[:PORT]/REPO:TAG (or docker://…).
    reference: String,
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    net: NetArgs,
}

fn registry_ref(text: &str) -> Result<RegistryRef> {
    match SourceRef::parse(text)? {
        SourceRef::Registry(r) => Ok(r),
        _ => bail!("{text}: expected registry:HOST[:PORT]/REPO:TAG"),
    }
}

fn connect(r: &RegistryRef, net: &NetArgs) -> Result<Repository> {
    Ok(Repository::connect(
        &r.host,
        &r.repository,
        &net.registry()?,
    )?)
}

/// `kiln db push`
pub fn push(args: TransferArgs, quiet: bool) -> Result<ExitCode> {
    let dest = registry_ref(&args.reference)?;
    let path = args.db.location();
    let db = Db::open_readonly(path.clone())?;
    let stats = db.stats()?;
    let schema = db.schema_version()?;
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let snap = tmp.path().join("kiln.db");
    match path {
        Location::Sqlite(_) => db.snapshot(&snap)?,
        // A shared PostgreSQL DB travels as the SQLite file scanners use.
        Location::Postgres(_) => {
            super::dump::copy(&path, &Location::Sqlite(snap.clone()))?;
        }
    }
    drop(db);
    let packed = tmp.path().join("kiln.db.zst");
    compress(&snap, &packed)?;
    let mut annotations = BTreeMap::new();
    annotations.insert(SCHEMA_KEY.to_string(), schema.to_string());
    annotations.insert(
        "dev.kiln.db.stats".to_string(),
        serde_json::to_string(&stats_json(&stats)?)?,
    );
    let spec = ArtifactSpec {
        artifact_type: ARTIFACT_TYPE.into(),
        layer_media_type: LAYER_TYPE.into(),
        title: "kiln.db".into(),
        annotations,
    };
    let repo = connect(&dest, &args.net)?;
    let report = push_artifact(&repo, &dest, &packed, &spec)
        .with_context(|| format!("cannot push {path} to {dest}"))?;
    if !quiet {
        eprintln!(
            "kiln: pushed {path} (schema {schema}, {} packages, {} versions) to {dest} ({}), {} bytes uploaded",
            stats.packages,
            stats.versions,
            report.manifest_digest,
            report.uploaded_bytes
        );
    }
    println!("{}", report.manifest_digest);
    Ok(ExitCode::SUCCESS)
}

/// The stats without the local path (it means nothing on another machine).
fn stats_json(stats: &kiln_rainbow::Stats) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(stats)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("path");
    }
    Ok(v)
}

fn compress(from: &Path, to: &Path) -> Result<()> {
    let input = std::fs::File::open(from).with_context(|| from.display().to_string())?;
    let output = std::fs::File::create(to).with_context(|| to.display().to_string())?;
    zstd::stream::copy_encode(input, output, 9)
        .with_context(|| format!("compressing {}", from.display()))?;
    Ok(())
}

/// `kiln db pull`
pub fn pull(args: TransferArgs, quiet: bool) -> Result<ExitCode> {
    let src = registry_ref(&args.reference)?;
    let location = args.db.location();
    // Into PostgreSQL: pull the file aside, then load it.
    let staging = tempfile::tempdir().context("cannot make a temporary directory")?;
    let path = match &location {
        Location::Sqlite(p) => p.clone(),
        Location::Postgres(_) => staging.path().join("kiln.db"),
    };
    let repo = Arc::new(connect(&src, &args.net)?);
    let mut art = pull_artifact(repo, &src, ARTIFACT_TYPE)?;
    let schema: i64 = art
        .annotations
        .get(SCHEMA_KEY)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{src}: no {SCHEMA_KEY} annotation"))?;
    if schema > SCHEMA_VERSION {
        bail!(
            "{src} holds a signature DB of schema {schema}; this kiln reads schema {SCHEMA_VERSION} \
             or older: upgrade kiln to use it (the local DB is unchanged)"
        );
    }
    kiln_rainbow::require_blake3_keys(&src, schema).context("the local DB is unchanged")?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    // Readable as a plain create would leave it (umask 022), not 0600.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-db-pull-")
        .permissions(mode)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    unpack(&mut art.layer, tmp.as_file()).with_context(|| format!("cannot pull {src}"))?;
    tmp.as_file().sync_all()?;
    let stats = Db::open_readonly(tmp.path())
        .and_then(|db| db.stats())
        .with_context(|| format!("{src}: the pulled file is not a usable signature DB"))?;
    replace(tmp, &path)?;
    if let Location::Postgres(_) = location {
        super::dump::copy(&Location::Sqlite(path.clone()), &location)
            .with_context(|| format!("cannot load {src} into {location}"))?;
    }
    if !quiet {
        eprintln!(
            "kiln: pulled {src} ({}) into {location}: schema {schema}, {} packages, {} versions",
            art.manifest_digest, stats.packages, stats.versions
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Decompress the layer into `out`, then read the layer to its end so its
/// digest is checked before anything is used.
fn unpack(layer: &mut Box<dyn Read + Send>, out: &std::fs::File) -> Result<()> {
    {
        let mut decoder = zstd::stream::read::Decoder::new(&mut *layer)?;
        std::io::copy(&mut decoder, &mut std::io::BufWriter::new(out))?;
    }
    std::io::copy(layer, &mut std::io::sink())?;
    Ok(())
}

/// Move the pulled DB over `path`. A stale write-ahead log of the old DB
/// would be replayed onto the new file, so it goes first.
pub(super) fn replace(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("cannot remove {}", Path::new(&side).display()))
            }
            _ => {}
        }
    }
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
