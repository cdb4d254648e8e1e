//! Debian's Prometheus for a test, scraping kiln's `/metrics` every second,
//! killed when dropped: the real consumer of the exposition text, so a test
//! that reads a value back through a query knows the format parsed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running server, on loopback of the host or of a network namespace.
pub struct Prometheus {
    child: Child,
    port: u16,
    netns: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrape `targets` (ADDR:PORT) from the host's loopback.
    pub fn start(targets: &[&str]) -> Prometheus {
        Prometheus::start_in(None, super::registry::free_port(), targets)
    }

    /// Scrape `targets` from inside network namespace `netns` (when given),
    /// listening on its loopback at `port`.
    pub fn start_in(netns: Option<&str>, port: u16, targets: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        let list = targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kiln\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .unwrap();
        let child = in_netns(netns, "prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Prometheus {
            child,
            port,
            netns: netns.map(str::to_string),
            _dir: dir,
        };
        p.wait(Duration::from_secs(30), |p| p.curl("/-/ready").is_some());
        p
    }

    /// The value of an instant query with one result, if any.
    pub fn value(&self, query: &str) -> Option<f64> {
        let out = in_netns(self.netns.as_deref(), "curl")
            .args(["-sf", "--get", &self.url("/api/v1/query")])
            .args(["--data-urlencode", &format!("query={query}")])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Wait until `query` has the value `want`; panics with the last value
    /// seen after `within`.
    pub fn expect(&self, query: &str, want: f64, within: Duration) {
        let mut last = None;
        let ok = self.wait(within, |p| {
            last = p.value(query);
            last == Some(want)
        });
        assert!(ok, "Prometheus: {query} is {last:?}, expected {want}");
    }

    fn wait(&self, within: Duration, mut done: impl FnMut(&Prometheus) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn curl(&self, path: &str) -> Option<Vec<u8>> {
        let out = in_netns(self.netns.as_deref(), "curl")
            .args(["-sf", &self.url(path)])
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }
}

/// `program`, run inside `netns` when one is given.
fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}
