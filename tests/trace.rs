//! `kiln trace exec,open` against real runc containers (a static busybox
//! root): `runc exec` calls counted and flagged as entering from outside,
//! a named file's open seen with its path, and a container started after
//! tracing began attributed from its entrypoint's first exec.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::*;
use serde_json::Value;

fn ready() -> bool {
    root_or_skip("kiln trace loads eBPF programs") && have("runc") && have("busybox")
}

/// A busybox root with a marker file, run detached with `args`.
fn start(dir: &Path, id: &str, args: &[&str]) -> RuncContainer {
    let bundle = dir.join(id);
    let root = bundle.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for d in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    write_file(&root.join("etc/kiln-marker"), "marker\n");
    sh(Command::new("runc").arg("spec").current_dir(&bundle));
    let path = bundle.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(args);
    c["root"]["readonly"] = true.into();
    std::fs::write(&path, c.to_string()).unwrap();
    RuncContainer::run(&bundle, id)
}

/// A running trace: the process, its stderr, and its stdout read by a
/// thread as it comes (a full pipe would stall kiln).
struct Trace {
    child: Child,
    err: BufReader<std::process::ChildStderr>,
    out: std::thread::JoinHandle<String>,
}

fn spawn_trace(mut cmd: Command) -> Trace {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = BufReader::new(child.stderr.take().unwrap());
    Trace { child, err, out }
}

/// `kiln trace ARGS -o json`, returned once its programs are attached.
fn trace(args: &[&str]) -> Trace {
    let mut cmd = kiln();
    cmd.arg("trace").args(args).args(["-o", "json"]);
    let mut t = spawn_trace(cmd);
    let mut line = String::new();
    t.err.read_line(&mut line).unwrap();
    assert!(line.contains("tracing"), "kiln trace did not start: {line}");
    t
}

/// As `trace`, with `--metrics` on a free port; also returns ADDR:PORT.
fn trace_with_metrics(args: &[&str]) -> (Trace, String) {
    let mut cmd = kiln();
    cmd.arg("trace")
        .args(args)
        .args(["-o", "json", "--metrics", "127.0.0.1:0"]);
    let mut t = spawn_trace(cmd);
    let mut line = String::new();
    t.err.read_line(&mut line).unwrap();
    let addr = line
        .split("metrics at http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"))
        .to_string();
    (t, addr)
}

/// Stop a trace with Ctrl-C; its events and its closing line.
fn stop(mut t: Trace) -> (Vec<Value>, String) {
    Command::new("kill")
        .args(["-INT", &t.child.id().to_string()])
        .status()
        .unwrap();
    let mut tail = String::new();
    t.err.read_to_string(&mut tail).unwrap();
    assert!(t.child.wait().unwrap().success(), "{tail}");
    let out = t.out.join().unwrap();
    let events = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, tail)
}

fn exec_in(id: &str, args: &[&str]) {
    sh(Command::new("runc").args(["exec", id]).args(args));
}

#[test]
fn exec_and_open_events_are_attributed_to_containers() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id();
    let a = start(
        dir.path(),
        &format!("kiln-trace-a-{tag}"),
        &["/bin/busybox", "sleep", "1000"],
    );
    let rules = dir.path().join("rules.yaml");
    write_file(
        &rules,
        &format!(
            "rules:\n  - name: no-cat\n    containers: [\"{}\"]\n    deny: [\"/bin/busybox\"]\n",
            a.id
        ),
    );
    let (tracing, metrics) =
        trace_with_metrics(&["exec,open,exec-alert", "--rules", rules.to_str().unwrap()]);
    let prom = Prometheus::start(&[&metrics]);
    for _ in 0..20 {
        exec_in(&a.id, &["/bin/busybox", "true"]);
    }
    exec_in(&a.id, &["/bin/busybox", "cat", "/etc/kiln-marker"]);
    // Started while tracing: its entrypoint's first exec is seen.
    let b = start(
        dir.path(),
        &format!("kiln-trace-b-{tag}"),
        &["/bin/busybox", "sh", "-c", "exec /bin/busybox sleep 1000"],
    );
    // Prometheus scrapes the counters: wait until it has what kiln serves.
    let query = format!(
        "kiln_trace_events_total{{gadget=\"exec\",container=\"{}\"}}",
        a.id
    );
    let served = |q: &str| -> Option<u64> {
        let body = String::from_utf8(
            sh(Command::new("curl").args(["-sf", &format!("http://{metrics}/metrics")])).stdout,
        )
        .ok()?;
        body.lines()
            .find(|l| l.starts_with(q))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let start = Instant::now();
    let scraped = loop {
        let (p, k) = (prom.value(&query), served(&query));
        // kiln delivers asynchronously: wait for all 21 execs (20 + cat).
        if let (Some(p), Some(21)) = (p, k) {
            if p == 21.0 {
                break p;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Prometheus never caught up: {p:?} vs {k:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let alerts_scraped = prom.value(&format!(
        "sum(kiln_trace_alerts_total{{container=\"{}\"}})",
        a.id
    ));
    let (events, tail) = stop(tracing);
    assert!(tail.contains(", 0 lost"), "{tail}");

    let execs: Vec<&Value> = events
        .iter()
        .filter(|e| e["gadget"] == "exec" && e["container"] == a.id.as_str())
        .collect();
    let trues: Vec<_> = execs
        .iter()
        .filter(|e| e["args"] == serde_json::json!(["/bin/busybox", "true"]))
        .collect();
    assert_eq!(trues.len(), 20, "{execs:#?}");
    assert!(trues.iter().all(|e| e["entered"] == true && e["ret"] == 0));

    // Every exec in a is 21 (20 + cat); Prometheus saw the same count.
    assert_eq!(
        scraped as usize,
        execs.len(),
        "Prometheus against the events"
    );
    let alerts: Vec<&Value> = events
        .iter()
        .filter(|e| e["gadget"] == "exec-alert" && e["container"] == a.id.as_str())
        .collect();
    let entered = alerts
        .iter()
        .filter(|e| e["alert"]["reason"] == "entered")
        .count();
    let denied = alerts
        .iter()
        .filter(|e| e["alert"]["rule"] == "no-cat")
        .count();
    assert_eq!((entered, denied), (21, 21), "{alerts:#?}");
    assert_eq!(alerts_scraped, Some(42.0));

    let opens: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["gadget"] == "open"
                && e["container"] == a.id.as_str()
                && e["path"] == "/etc/kiln-marker"
        })
        .collect();
    assert_eq!(opens.len(), 1, "{events:#?}");
    assert!(opens[0]["fd"].as_i64().unwrap() >= 0);
    assert_eq!(opens[0]["comm"], "busybox");

    let b_execs: Vec<&Value> = events
        .iter()
        .filter(|e| e["gadget"] == "exec" && e["container"] == b.id.as_str())
        .collect();
    assert!(!b_execs.is_empty(), "container b unseen: {events:#?}");
    assert_eq!(
        b_execs[0]["args"],
        serde_json::json!(["/bin/busybox", "sh", "-c", "exec /bin/busybox sleep 1000"]),
        "the entrypoint is the first exec seen"
    );
    assert_eq!(
        b_execs[0]["entered"], false,
        "the entrypoint did not enter from outside"
    );
    // Nothing from the host: every event is some runc container's.
    let ids: Vec<String> = String::from_utf8_lossy(&run(&["ps", "-o", "json"]).stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect();
    for e in &events {
        let c = e["container"].as_str().unwrap_or_default();
        // (or the other test's container, deleted by now)
        assert!(
            ids.iter().any(|id| id == c) || c.starts_with("kiln-trace-"),
            "{e}"
        );
    }
}

#[test]
fn a_failed_open_and_a_failed_exec_carry_their_errors() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = format!("kiln-trace-c-{}", std::process::id());
    let c = start(dir.path(), &id, &["/bin/busybox", "sleep", "1000"]);
    let tracing = trace(&["open,exec", "--container", &c.id]);
    let _ = Command::new("runc")
        .args(["exec", &c.id, "/bin/busybox", "cat", "/no/such/file"])
        .output();
    let _ = Command::new("runc")
        .args([
            "exec",
            &c.id,
            "/bin/busybox",
            "sh",
            "-c",
            "/no/such/program; true",
        ])
        .output();
    std::thread::sleep(Duration::from_millis(300));
    let (events, _) = stop(tracing);
    let open = events
        .iter()
        .find(|e| e["path"] == "/no/such/file")
        .expect("the failed open");
    assert_eq!(open["error"], "No such file or directory");
    assert!(open.get("fd").is_none());
    let exec = events
        .iter()
        .find(|e| e["gadget"] == "exec" && e["args"][0] == "/no/such/program")
        .expect("the failed exec");
    assert_eq!(exec["ret"], -2);
    assert_eq!(
        exec["entered"], false,
        "run by a shell inside the container"
    );
}

#[test]
fn trace_refuses_clearly() {
    let out = run(&["trace", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown gadget 'nosuch'"));
    if !is_root() || !have("setpriv") {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_kiln"),
            "trace",
            "exec",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

#[test]
fn tcp_events_and_rtt_histograms_from_http_requests() {
    if !ready() || !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = format!("kiln-trace-http-{}", std::process::id());
    let www = dir.path().join(&id).join("rootfs/www");
    write_file(&www.join("index.html"), "hello from busybox httpd\n");
    let c = start(
        dir.path(),
        &id,
        &[
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "127.0.0.1:8080",
            "-h",
            "/www",
        ],
    );
    let (tracing, metrics) = trace_with_metrics(&["tcp,tcprtt", "--container", &c.id]);
    for _ in 0..5 {
        let out = Command::new("runc")
            .args([
                "exec",
                &c.id,
                "/bin/busybox",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from busybox httpd\n"
        );
    }
    // IPv6: a second server on ::1, started inside the container.
    sh(Command::new("runc").args([
        "exec",
        &c.id,
        "/bin/busybox",
        "httpd",
        "-p",
        "[::1]:8081",
        "-h",
        "/www",
    ]));
    let out = Command::new("runc")
        .args([
            "exec",
            &c.id,
            "/bin/busybox",
            "wget",
            "-qO-",
            "http://[::1]:8081/",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from busybox httpd\n"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let body = String::from_utf8(
        sh(Command::new("curl").args(["-sf", &format!("http://{metrics}/metrics")])).stdout,
    )
    .unwrap();
    let (events, tail) = stop(tracing);
    assert!(tail.contains(", 0 lost"), "{tail}");
    let tcp = |kind: &str| {
        events
            .iter()
            .filter(|e| {
                e["gadget"] == "tcp" && e["event"] == kind && e["container"] == c.id.as_str()
            })
            .count()
    };
    assert!(tcp("connect") >= 5, "{events:#?}");
    let accepts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "accept" && e["family"] == "ipv4")
        .collect();
    assert_eq!(accepts.len(), 5, "{events:#?}");
    let v6: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "accept" && e["family"] == "ipv6")
        .collect();
    assert_eq!(v6.len(), 1, "{events:#?}");
    assert_eq!(
        (v6[0]["saddr"].as_str(), v6[0]["sport"].as_u64()),
        (Some("::1"), Some(8081))
    );
    assert!(accepts
        .iter()
        .all(|e| e["sport"] == 8080 && e["saddr"] == "127.0.0.1" && e["comm"] == "busybox"));
    assert!(
        tcp("close") >= 10,
        "both ends of 5 connections close: {events:#?}"
    );
    let rtt = events
        .iter()
        .find(|e| e["gadget"] == "tcprtt")
        .expect("a tcprtt histogram");
    assert_eq!(rtt["container"], c.id.as_str());
    assert!(rtt["count"].as_u64().unwrap() > 0, "{rtt}");
    let count_line = format!(
        "kiln_trace_tcp_rtt_microseconds_count{{container=\"{}\"}}",
        c.id
    );
    let served: u64 = body
        .lines()
        .find(|l| l.starts_with(&count_line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no RTT histogram in the metrics: {body}"));
    assert!(served > 0);
    assert!(
        body.contains("kiln_trace_tcp_rtt_microseconds_bucket{"),
        "{body}"
    );
}

#[test]
fn traceloop_dumps_a_failing_init_and_on_request() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = std::process::id();
    let busy = start(
        dir.path(),
        &format!("kiln-trace-loop-a-{tag}"),
        &["/bin/busybox", "sleep", "1000"],
    );
    let tracing = trace(&["traceloop", "--calls", "64"]);
    // Started while tracing; its program fails right after a known call.
    let failing = start(
        dir.path(),
        &format!("kiln-trace-loop-b-{tag}"),
        &["/bin/busybox", "test", "-e", "/kiln-missing"],
    );
    exec_in(&busy.id, &["/bin/busybox", "cat", "/etc/kiln-marker"]);
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-USR1", &tracing.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (events, tail) = stop(tracing);
    assert!(tail.contains(", 0 lost"), "{tail}");
    let dump = |container: &str, reason: &str| {
        events
            .iter()
            .find(|e| {
                e["container"] == container
                    && e["reason"].as_str().is_some_and(|r| r.contains(reason))
            })
            .unwrap_or_else(|| panic!("no '{reason}' dump for {container}: {events:#?}"))
            .clone()
    };
    let d = dump(&failing.id, "init exited with status 1");
    let calls = d["calls"].as_array().unwrap();
    assert!(calls.len() <= 64);
    let last = calls.last().unwrap();
    assert_eq!(last["syscall"], "exit_group", "{d:#}");
    let returned: Vec<&Value> = calls.iter().filter(|c| c.get("ret").is_some()).collect();
    let known = returned.last().unwrap();
    assert!(known["syscall"].as_str().unwrap().contains("stat"), "{d:#}");
    assert_eq!(known["args"][1], "\"/kiln-missing\"");
    assert_eq!(known["ret"], -2);
    assert_eq!(known["error"], "No such file or directory");
    // On request: the busy container's ring holds the cat's open.
    let d = dump(&busy.id, "requested");
    let opened = d["calls"].as_array().unwrap().iter().any(|c| {
        c["args"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "\"/etc/kiln-marker\""))
    });
    assert!(opened, "{d:#}");
}
