//! `kiln migrate` end to end: three network namespaces joined at layer 2
//! (hosts A and B, each with its agent and bridge, and a client), a
//! PostgreSQL image made from Debian's `postgresql-15` with `mmdebstrap`
//! and `umoci`, booted with `kiln vm run` on A under QEMU (TCG here).
//!
//! While pgbench (4 clients, per-transaction log) and a writer inserting
//! increasing ids in autocommit run from the client:
//! 1. B's agent is killed during a migration's pre-copy: the VM must keep
//!    running on A, and every id acknowledged so far must be there;
//! 2. with B's agent back, B's network is cut during a migration: it is
//!    retried, then aborted, the VM still running on A, and B drops what
//!    it had received;
//! 3. with the network back, `kiln migrate` moves the VM to B: every
//!    acknowledged id must be on B, pgbench must report no failed
//!    transaction and no aborted client (its connections survived), and
//!    B must have received exactly A's final disk (root digests).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{have, is_root, sh, Umoci};
use serde_json::Value;

/// Namespaces: switch, host A, host B, client.
const SW: usize = 0;
const A: usize = 1;
const B: usize = 2;
const C: usize = 3;

/// Three namespaces joined through a bridge in a fourth (the switch);
/// hosts have a bridge of their own that VM taps join. Deleted on drop.
struct Net {
    ns: [String; 4],
    /// The /24's first three octets.
    net: String,
}

impl Net {
    fn up() -> Net {
        let id = std::process::id();
        let ns = ["sw", "a", "b", "c"].map(|n| format!("kiln{n}{id}"));
        let net = Net {
            ns,
            net: format!("10.{}.{}", 100 + id % 100, id / 100 % 250),
        };
        for n in &net.ns {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let sw = &net.ns[SW];
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", sw, "link", "set", "br0", "up"]);
        for (i, n) in [A, B, C].into_iter().enumerate() {
            let (inner, outer) = (format!("v{i}{id}"), format!("p{i}{id}"));
            let (inner, outer) = (&inner[..inner.len().min(15)], &outer[..outer.len().min(15)]);
            ip(&["link", "add", inner, "type", "veth", "peer", "name", outer]);
            ip(&["link", "set", inner, "netns", &net.ns[n]]);
            ip(&["-n", &net.ns[n], "link", "set", inner, "name", "uplink"]);
            ip(&["link", "set", outer, "netns", sw]);
            ip(&["-n", sw, "link", "set", outer, "master", "br0", "up"]);
            let ns = &net.ns[n];
            let addr = format!("{}/24", net.host(n));
            if n == C {
                ip(&["-n", ns, "addr", "add", &addr, "dev", "uplink"]);
            } else {
                // A bridge takes the lowest MAC of its ports unless given
                // one: taps coming and going would change the host's
                // address under the client's ARP cache.
                let mac = format!("02:00:00:00:00:{n:02x}");
                ip(&[
                    "-n", ns, "link", "add", "br0", "address", &mac, "type", "bridge",
                ]);
                ip(&["-n", ns, "link", "set", "uplink", "master", "br0"]);
                ip(&["-n", ns, "addr", "add", &addr, "dev", "br0"]);
                ip(&["-n", ns, "link", "set", "br0", "up"]);
            }
            ip(&["-n", ns, "link", "set", "uplink", "up"]);
        }
        net
    }

    /// Address of host A, B or the client.
    fn host(&self, n: usize) -> String {
        format!("{}.{n}", self.net)
    }

    fn vm_ip(&self) -> String {
        format!("{}.10", self.net)
    }

    /// `program` run inside namespace `n`.
    fn exec(&self, n: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[n], program]);
        c
    }

    /// `kiln ARGS` from the client namespace.
    fn kiln(&self, args: &[&str]) -> Output {
        let mut c = self.exec(C, env!("CARGO_BIN_EXE_kiln"));
        c.args(args).output().unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// A host agent in its namespace, killed on drop.
struct Agent {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Agent {
    fn start(net: &Net, n: usize, state: &Path) -> Agent {
        let addr = format!("{}:7100", net.host(n));
        let log = state.with_extension("log");
        let mut cmd = net.exec(n, env!("CARGO_BIN_EXE_kiln"));
        cmd.args(["host", "serve", "--listen", &addr, "--bridge", "br0"])
            .arg("--state")
            .arg(state)
            .arg("--kernel-cache")
            .arg(kernel_cache())
            .args(["--metrics", &format!("{}:9100", net.host(n))])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        let agent = Agent { child, addr, log };
        let start = Instant::now();
        while !net
            .kiln(&["vm", "ls", "--host", &agent.addr])
            .status
            .success()
        {
            assert!(start.elapsed() < Duration::from_secs(30), "{}", agent.log());
            thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's guest kernel, fetched here (the agents' namespaces have no
/// route to the package mirror) into the cache the kiln-vm tests share.
fn kernel_cache() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-kernel");
    std::fs::create_dir_all(&cache).unwrap();
    cache
}

/// The PostgreSQL image: a minbase Debian 12 with `postgresql-15` from
/// the machine's own bookworm mirror, its cluster made by the package,
/// trusting the test network; built once and kept beside the tests.
fn pg_image() -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-image");
    let done = dir.join("done");
    let image = format!("oci-dir:{}:pg", dir.join("layout").display());
    if done.exists() {
        return image;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sites =
        sh(Command::new("apt-get").args(["indextargets", "--format", "$(SITE) $(RELEASE)"]));
    let text = String::from_utf8_lossy(&sites.stdout);
    let mirror = text
        .lines()
        .find_map(|l| l.strip_suffix(" bookworm"))
        .expect("apt has a bookworm source");
    let tar = dir.join("rootfs.tar");
    sh(Command::new("mmdebstrap")
        .args(["--quiet", "--variant=minbase", "--include=postgresql-15"])
        .arg("--customize-hook=echo 'host all all 0.0.0.0/0 trust' >> \"$1\"/etc/postgresql/15/main/pg_hba.conf")
        .arg("bookworm")
        .arg(&tar)
        .arg(format!("deb {mirror} bookworm main")));
    let img = Umoci::new(&dir, "pg");
    sh(Command::new("tar")
        .args(["-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(img.rootfs())
        .arg("--numeric-owner"));
    img.repack();
    let mut args = vec!["--config.user", "postgres"];
    args.extend([
        "--config.env",
        "PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    args.extend(["--config.entrypoint", "/usr/lib/postgresql/15/bin/postgres"]);
    for c in [
        "-D",
        "/var/lib/postgresql/15/main",
        "-c",
        "config_file=/etc/postgresql/15/main/postgresql.conf",
        "-c",
        "listen_addresses=*",
        "-c",
        "ssl=off",
        "-c",
        "unix_socket_directories=/tmp",
    ] {
        args.extend(["--config.cmd", c]);
    }
    img.config(&args);
    std::fs::remove_file(&tar).unwrap();
    std::fs::remove_dir_all(&img.bundle).unwrap();
    std::fs::write(&done, "").unwrap();
    image
}

/// `psql -c SQL` from the client; its stdout.
fn psql(net: &Net, sql: &str) -> Option<String> {
    let out = net
        .exec(C, "psql")
        .args(["-h", &net.vm_ip(), "-U", "postgres", "-qAtc", sql])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One psql session inserting 1, 2, 3… in autocommit, 20 ms apart; the
/// ids PostgreSQL acknowledged.
struct Writer {
    child: Child,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    feeder: thread::JoinHandle<()>,
    reader: thread::JoinHandle<()>,
}

impl Writer {
    fn start(net: &Net) -> Writer {
        let mut child = net
            .exec(C, "psql")
            .args([
                "-h",
                &net.vm_ip(),
                "-U",
                "postgres",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (mut stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let flag = Arc::clone(&stop);
        let feeder = thread::spawn(move || {
            let mut id = 1u64;
            while !flag.load(Ordering::SeqCst) {
                let line = format!("insert into ids values ({id}) returning id;\n");
                if stdin
                    .write_all(line.as_bytes())
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
                id += 1;
                thread::sleep(Duration::from_millis(20));
            }
        });
        let seen = Arc::clone(&acked);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(id) = line.trim().parse() {
                    seen.lock().unwrap().push(id);
                }
            }
        });
        Writer {
            child,
            stop,
            acked,
            feeder,
            reader,
        }
    }

    fn acked(&self) -> Vec<u64> {
        self.acked.lock().unwrap().clone()
    }

    /// Stop writing; whether psql's session lasted to the end.
    fn finish(mut self) -> (Vec<u64>, bool) {
        let alive = self.child.try_wait().unwrap().is_none();
        self.stop.store(true, Ordering::SeqCst);
        self.feeder.join().unwrap();
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let acked = self.acked.lock().unwrap().clone();
        (acked, alive && status.success())
    }
}

/// Every id in the table now.
fn ids_in_db(net: &Net) -> Vec<u64> {
    let out = psql(net, "select id from ids order by id").expect("the database answers");
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn assert_all_present(acked: &[u64], present: &[u64], when: &str) {
    let set: std::collections::HashSet<_> = present.iter().collect();
    let lost: Vec<_> = acked.iter().filter(|i| !set.contains(i)).collect();
    assert!(
        lost.is_empty(),
        "{when}: {} acknowledged id(s) lost: {lost:?}",
        lost.len()
    );
}

fn inspect(net: &Net, host: &str) -> Value {
    let out = net.kiln(&["vm", "inspect", "pg", "--host", host, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The agent's metrics text.
fn metrics(net: &Net, n: usize) -> String {
    let url = format!("http://{}:9100/metrics", net.host(n));
    let out = net.exec(n, "curl").args(["-sf", &url]).output().unwrap();
    assert!(out.status.success(), "GET {url}");
    String::from_utf8(out.stdout).unwrap()
}

/// Prometheus, run on the client's side of the switch, scrapes both
/// agents: what it reads back proves the text parsed as it should.
fn scraped_by_prometheus(net: &Net) {
    let targets = [A, B].map(|n| format!("{}:9100", net.host(n)));
    let prom = Prometheus::start_in(Some(&net.ns[C]), 9090, &[&targets[0], &targets[1]]);
    let within = Duration::from_secs(30);
    prom.expect("sum(up)", 2.0, within);
    for (role, result, n) in [
        ("source", "ok", 1.0),
        ("source", "failed", 2.0),
        ("destination", "ok", 1.0),
    ] {
        let q = format!("sum(kiln_migrations_total{{role=\"{role}\",result=\"{result}\"}})");
        prom.expect(&q, n, within);
    }
    prom.expect("sum(kiln_migration_downtime_seconds_count)", 1.0, within);
    prom.expect("sum(kiln_vms_running)", 1.0, within);
}

fn ready(net: &Net, console: &Path) {
    let start = Instant::now();
    while psql(net, "select 1").as_deref().map(str::trim) != Some("1") {
        let log = std::fs::read_to_string(console).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "PostgreSQL never answered:\n{log}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// Wait until `host` lists a VM arriving (`arriving`), or none at all.
fn wait_listed(net: &Net, host: &str, arriving: bool) {
    let start = Instant::now();
    loop {
        let ls = net.kiln(&["vm", "ls", "--host", host, "-o", "json"]);
        let text = String::from_utf8_lossy(&ls.stdout);
        let done = if arriving {
            text.contains("\"incoming\"")
        } else {
            ls.status.success() && text.trim() == "[]"
        };
        if done {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{host}: {text}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn tools_present() -> bool {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipping: network namespaces and taps need root");
        return false;
    }
    [
        "qemu-system-x86_64",
        "mmdebstrap",
        "umoci",
        "psql",
        "pgbench",
        "curl",
        "prometheus",
    ]
    .iter()
    .all(|t| have(t))
}

#[test]
fn postgres_under_load_moves_between_hosts_and_failed_moves_leave_it_on_the_source() {
    if !tools_present() {
        return;
    }
    let image = pg_image();
    kiln_vm::guest::fetch_kernel(&kernel_cache(), kiln_vm::guest::ROOT_MODULES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::up();
    let a = Agent::start(&net, A, &dir.path().join("a"));
    let mut b = Some(Agent::start(&net, B, &dir.path().join("b")));
    let vm_ip = format!("{}/24", net.vm_ip());
    let out = net.kiln(&[
        "vm", "run", &image, "--host", &a.addr, "--name", "pg", "--ip", &vm_ip, "-o", "json",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    let console = dir.path().join("a/vms/pg/console.log");
    ready(&net, &console);
    psql(&net, "create table ids (id bigint primary key)").unwrap();
    sh(net.exec(C, "pgbench").args([
        "-i",
        "-q",
        "-s",
        "2",
        "-h",
        &net.vm_ip(),
        "-U",
        "postgres",
        "postgres",
    ]));
    let writer = Writer::start(&net);
    thread::sleep(Duration::from_secs(3));

    // 1. B's agent dies during pre-copy: the VM stays on A, untouched.
    let migrate = {
        let mut c = net.exec(C, env!("CARGO_BIN_EXE_kiln"));
        c.args([
            "migrate",
            "pg",
            "--from",
            &a.addr,
            "--to",
            &b.as_ref().unwrap().addr,
        ]);
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    wait_listed(&net, &b.as_ref().unwrap().addr, true);
    drop(b.take()); // SIGKILL
    let failed = migrate.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "the migration fails: {err}");
    assert!(err.contains("cannot migrate pg"), "{err}");
    let on_a = inspect(&net, &a.addr);
    assert_eq!(on_a["state"], "running", "{on_a}");
    assert_eq!(on_a["last_migration"]["result"], "aborted", "{on_a}");
    assert_eq!(on_a["last_migration"]["source_resumed"], true, "{on_a}");
    thread::sleep(Duration::from_secs(2));
    let so_far = writer.acked();
    assert!(so_far.len() > 20, "the writer kept going: {}", so_far.len());
    assert_all_present(&so_far, &ids_in_db(&net), "after the aborted migration");
    assert!(metrics(&net, A).contains("kiln_migrations_total{role=\"source\",result=\"failed\"} 1"));

    // 2. The network to B is cut during a migration: retries, then a
    // clean abort; B drops what it received once it sees its peer gone.
    let b = Agent::start(&net, B, &dir.path().join("b2"));
    let migrate = {
        let mut c = net.exec(C, env!("CARGO_BIN_EXE_kiln"));
        c.args(["migrate", "pg", "--from", &a.addr, "--to", &b.addr]);
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    wait_listed(&net, &b.addr, true);
    ip(&["-n", &net.ns[B], "link", "set", "uplink", "down"]);
    let failed = migrate.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "the migration fails: {err}");
    let on_a = inspect(&net, &a.addr);
    assert_eq!(on_a["state"], "running", "{on_a}");
    let tries = on_a["last_migration"]["failed_attempts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(tries, 2, "two retries before the abort: {on_a}");
    ip(&["-n", &net.ns[B], "link", "set", "uplink", "up"]);
    wait_listed(&net, &b.addr, false);
    assert_all_present(&writer.acked(), &ids_in_db(&net), "after the network cut");

    // 3. The real move, under pgbench and the writer.
    let logs = dir.path().join("pgbench");
    std::fs::create_dir_all(&logs).unwrap();
    let pgbench = net
        .exec(C, "pgbench")
        .args([
            "-h",
            &net.vm_ip(),
            "-U",
            "postgres",
            "-c",
            "4",
            "-j",
            "2",
            "-T",
            "40",
            "-n",
            "-l",
        ])
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
        .arg("postgres")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(8));
    let before = writer.acked().len();
    let out = net.kiln(&[
        "migrate", "pg", "--from", &a.addr, "--to", &b.addr, "--verify", "--report", "json",
    ]);
    assert!(
        out.status.success(),
        "{}\nA: {}\nB: {}",
        String::from_utf8_lossy(&out.stderr),
        a.log(),
        b.log()
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let bench = pgbench.wait_with_output().unwrap();
    let bench_out = String::from_utf8_lossy(&bench.stdout);
    let bench_err = String::from_utf8_lossy(&bench.stderr);
    let (acked, alive) = writer.finish();
    assert!(bench.status.success(), "pgbench: {bench_out}\n{bench_err}");
    assert!(
        bench_out.contains("number of failed transactions: 0 "),
        "{bench_out}"
    );
    assert!(!bench_err.contains("aborted"), "{bench_err}");
    assert!(alive, "the writer's session survived the move");
    assert!(
        acked.len() > before + 20,
        "the writer kept committing on B: {before} -> {}",
        acked.len()
    );

    // The VM is on B only, with every acknowledged id.
    let listed = net.kiln(&["vm", "ls", "--host", &a.addr, "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );
    assert_all_present(&acked, &ids_in_db(&net), "on B");
    // B received exactly A's final disk.
    let start = Instant::now();
    let on_b = loop {
        let v = inspect(&net, &b.addr);
        if v["last_migration"]["result"] == "ok" {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "B never owned every block: {v}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(on_b["state"], "running");
    // What B received is what A sent, and what A sent is A's final disk.
    let received = &on_b["last_migration"]["disk_root"];
    assert!(received.is_string(), "{on_b}");
    assert_eq!(received, &report["disk"]["sent_root"], "{report}");
    assert_eq!(received, &report["disk"]["source_root"], "{report}");
    assert_eq!(report["result"], "ok");
    assert!(report["downtime_ms"].as_u64().unwrap() > 0, "{report}");
    let m = metrics(&net, B);
    assert!(
        m.contains("kiln_migrations_total{role=\"destination\",result=\"ok\"} 1"),
        "{m}"
    );
    assert!(metrics(&net, A).contains("kiln_migrations_total{role=\"source\",result=\"ok\"} 1"));
    eprintln!("pgbench: {bench_out}\nkiln: {report}");
    scraped_by_prometheus(&net);

    // Stop (a power-off), start again from B's copy of the disk, which
    // PostgreSQL recovers with every acknowledged id; then stop and remove.
    let running_again = net.kiln(&["vm", "start", "pg", "--host", &b.addr]);
    assert_eq!(
        running_again.status.code(),
        Some(2),
        "only a stopped VM starts"
    );
    assert!(net
        .kiln(&["vm", "stop", "pg", "--host", &b.addr])
        .status
        .success());
    assert_eq!(inspect(&net, &b.addr)["state"], "stopped");
    let started = net.kiln(&["vm", "start", "pg", "--host", &b.addr]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    ready(&net, &dir.path().join("b2/vms/pg/console.log"));
    assert_all_present(&acked, &ids_in_db(&net), "after a stop and start on B");
    assert!(net
        .kiln(&["vm", "stop", "pg", "--host", &b.addr])
        .status
        .success());
    assert_eq!(inspect(&net, &b.addr)["state"], "stopped");
    assert!(net
        .kiln(&["vm", "rm", "pg", "--host", &b.addr])
        .status
        .success());
    let gone = net.kiln(&["vm", "inspect", "pg", "--host", &b.addr]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no VM named \"pg\""));
}
