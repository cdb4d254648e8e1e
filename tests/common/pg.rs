//! A real PostgreSQL server for a test: Debian's `initdb` in a temporary
//! directory, `pg_ctl` on a free loopback port, stopped when dropped. As
//! root (CI), the server runs as the `postgres` user, as PostgreSQL
//! insists.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{is_root, sh};

/// A running server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Debian's PostgreSQL programs directory, if installed.
fn bindir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Postgres {
    /// Start one, or `None` (skip) where PostgreSQL is not installed;
    /// in CI, where `.ci/run` installs it, its absence fails the test.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bindir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is missing in CI: scripts/setup.sh must install it"
            );
            eprintln!("skipping: PostgreSQL is not installed (scripts/setup.sh installs it)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("kiln-pg-")
            .tempdir()
            .unwrap();
        if is_root() {
            sh(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let data = dir.path().join("data");
        let pg = Postgres {
            port: free_port(),
            bin,
            dir,
        };
        pg.as_owner(
            &pg.bin.join("initdb"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "kiln",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            pg.port,
            pg.dir.path().display()
        );
        pg.as_owner(
            &pg.bin.join("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &pg.dir.path().join("log").to_string_lossy(),
                "-w",
                "start",
            ],
        );
        Some(pg)
    }

    fn as_owner(&self, program: &Path, args: &[&str]) {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        sh(cmd.args(args));
    }

    /// Create database `name`; its URL.
    pub fn create(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://kiln@127.0.0.1:{}/{name}", self.port)
    }

    /// Run SQL in database `db` with psql; its output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = sh(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "kiln",
            ])
            .args(["-d", db, "-c", sql]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args([
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
