//! `kiln db …`: the signature database (`db build` is in `build.rs`,
//! `db vuln` in `advisories.rs`).

use std::process::ExitCode;

use anyhow::Result;
use kiln_rainbow::Db;
use kiln_store::Location;

/// Where the database lives.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArg {
    /// Signature database: a SQLite file, or a shared PostgreSQL database
    /// as postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME
    /// [default: $XDG_DATA_HOME/kiln/kiln.db].
    #[arg(long, env = "KILN_DB", value_name = "FILE|URL")]
    pub db: Option<String>,
}

impl DbArg {
    /// The database to use.
    pub fn location(&self) -> Location {
        match &self.db {
            Some(s) => Location::parse(s),
            None => Location::Sqlite(kiln_rainbow::default_db_path()),
        }
    }
}

/// `kiln db …`
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add packages to the signature database (incremental, atomic).
    Build(super::build::BuildArgs),
    /// Print package, version, file and unique-content counts and the size.
    Stats(StatsArgs),
    /// Manage vulnerability advisories.
    #[command(subcommand)]
    Vuln(super::advisories::Command),
    /// Push the DB to a registry as an OCI artifact (registry:HOST/REPO:TAG).
    Push(super::transfer::TransferArgs),
    /// Pull a DB pushed with `db push`, replacing the local one atomically
    /// (or loading it into an empty PostgreSQL database).
    Pull(super::transfer::TransferArgs),
    /// Write every table (signatures, advisories) as a zstd-compressed
    /// JSON-lines stream that `db import` reads into SQLite or PostgreSQL.
    Export(super::dump::ExportArgs),
    /// Load a `db export` stream into an empty database, atomically.
    Import(super::dump::ImportArgs),
}

/// `kiln db stats`
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    db: DbArg,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = StatsFormat::Table)]
    output: StatsFormat,
}

/// How `kiln db stats` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsFormat {
    /// Aligned lines for people.
    Table,
    /// A JSON object.
    Json,
}

pub fn run(cmd: Command, quiet: bool) -> Result<ExitCode> {
    match cmd {
        Command::Build(a) => super::build::run(a, quiet),
        Command::Stats(a) => stats(a),
        Command::Vuln(c) => super::advisories::run(c, quiet),
        Command::Push(a) => super::transfer::push(a, quiet),
        Command::Pull(a) => super::transfer::pull(a, quiet),
        Command::Export(a) => super::dump::export(a, quiet),
        Command::Import(a) => super::dump::import(a, quiet),
    }
}

fn stats(args: StatsArgs) -> Result<ExitCode> {
    let db = Db::open_readonly(args.db.location())?;
    db.check()?;
    let s = db.stats()?;
    match args.output {
        StatsFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        StatsFormat::Table => println!("{s}"),
    }
    Ok(ExitCode::SUCCESS)
}
