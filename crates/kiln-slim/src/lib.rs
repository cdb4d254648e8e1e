//! `kiln slim`: a smaller image that still works, without a container
//! engine.
//!
//! - **static**: the entrypoint and cmd resolved through the image's
//!   `PATH`, its ELF closure and `#!` interpreters, the files its arguments
//!   name, and the runtime files programs read without naming them
//!   ([`closure`]); probe commands are what tracing is for;
//! - **dynamic**: the image unpacked onto a private tmpfs, run with `runc`
//!   once for the entrypoint and once per probe while fanotify records
//!   every file opened or executed (through [`kiln_runtime`]);
//! - **both** (the default): the union.
//!
//! The kept files are written as one new layer with the image config
//! (entrypoint, cmd, env, workdir, user, ports, labels) preserved.
//! `verify` reruns every probe on the slimmed image under runc and
//! compares exit code and standard output with the original's.
#![deny(missing_docs)]

pub mod closure;
mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kiln_image::spec::{History, ImageConfig};
use kiln_image::write::ImageOutput;
use kiln_image::{Compression, SourceRef};
use kiln_tree::{Export, Kind, Tree};
use serde::Serialize;

pub use error::{Result, SlimError};
use kiln_runtime::rootfs::{self, Root};
use kiln_runtime::runc::{self as runtime, Process, RunResult, Runc};
use kiln_runtime::{fanotify, seccomp, tmpfs};

/// Which analyses decide what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read the image only.
    Static,
    /// Trace real runs.
    Dynamic,
    /// The union of both.
    Both,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "static" => Ok(Mode::Static),
            "dynamic" => Ok(Mode::Dynamic),
            "both" => Ok(Mode::Both),
            _ => Err(format!("unknown mode {s:?}: static, dynamic or both")),
        }
    }
}

/// What `kiln slim` was asked to do.
#[derive(Debug, Clone)]
pub struct SlimOptions {
    /// Analyses.
    pub mode: Mode,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd.
    pub cmd: Option<Vec<String>>,
    /// Commands run in the container (shell words, no shell needed).
    pub probes: Vec<String>,
    /// `PORT[/PATH]`: HTTP GETs into the container (which then runs as a
    /// server, with probe commands run beside it by `runc exec`).
    pub http_probes: Vec<String>,
    /// Paths or globs always kept.
    pub include: Vec<String>,
    /// Globs never kept.
    pub exclude: Vec<String>,
    /// Keep dpkg/apk databases and Python `*.dist-info`.
    pub keep_packages_metadata: bool,
    /// Rerun the probes on the result and compare.
    pub verify: bool,
    /// Time limit per run.
    pub timeout: Duration,
    /// Where to put scratch files (default: the system temp dir).
    pub work_dir: Option<std::path::PathBuf>,
}

/// A directory and the bytes removed below it.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// In-image directory.
    pub path: String,
    /// Bytes of regular files removed below it.
    pub bytes: u64,
    /// Files removed below it.
    pub files: usize,
}

/// One probe, on the original and (with verify) on the slimmed image.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The command.
    pub args: Vec<String>,
    /// Run on the original image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<RunResult>,
    /// Run on the slimmed image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slimmed: Option<RunResult>,
    /// Same exit code and stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same: Option<bool>,
}

/// What slimming did.
#[derive(Debug, Clone, Serialize)]
pub struct SlimReport {
    /// Mode used.
    pub mode: Mode,
    /// Regular files before.
    pub files_before: usize,
    /// Bytes of regular files before.
    pub bytes_before: u64,
    /// Regular files kept.
    pub files_after: usize,
    /// Bytes kept.
    pub bytes_after: u64,
    /// bytes_before / bytes_after.
    pub ratio: f64,
    /// Paths kept by static analysis.
    pub static_paths: usize,
    /// Paths seen by tracing.
    pub traced_paths: usize,
    /// Commands that were not found in the image.
    pub missing_commands: Vec<String>,
    /// Largest removed directories.
    pub largest_removed: Vec<Removed>,
    /// Probe runs.
    pub probes: Vec<ProbeReport>,
    /// Seconds spent in analysis (static, dynamic).
    pub seconds_static: f64,
    /// Seconds spent tracing runs.
    pub seconds_dynamic: f64,
}

/// Package metadata dropped unless `--keep-packages-metadata`.
fn is_package_metadata(p: &str) -> bool {
    p.starts_with("var/lib/dpkg/")
        || p.starts_with("var/lib/apk/")
        || p.starts_with("lib/apk/db/")
        || p.starts_with("usr/share/doc/")
        || p.split('/')
            .any(|c| c.ends_with(".dist-info") || c.ends_with(".egg-info"))
}

/// `PORT[/PATH]` → (port, `/PATH`).
fn parse_http(p: &str) -> Result<(u16, String)> {
    let (port, path) = p.split_once('/').map_or((p, ""), |(a, b)| (a, b));
    let port = port
        .parse()
        .map_err(|_| SlimError::BadProbe(format!("--http-probe {p}: want PORT[/PATH]")))?;
    Ok((port, format!("/{path}")))
}

/// Exercise the image over `rootfs`: the entrypoint, then every probe.
/// Without HTTP probes each command gets its own container; with them
/// the entrypoint runs as a server and the probes go to it. Returns the
/// results in order (entrypoint first) and whether it ran as a server.
fn exercise(
    runc: &Runc,
    work: &Path,
    rootfs: &Path,
    main: &Process,
    probes: &[Vec<String>],
    http: &[(u16, String)],
    limit: Duration,
) -> Result<(Vec<RunResult>, bool)> {
    if http.is_empty() {
        let mut out = vec![runtime::run(runc, work, rootfs, main, limit)?];
        for p in probes {
            let proc_ = Process {
                args: p.clone(),
                ..main.clone()
            };
            out.push(runtime::run(runc, work, rootfs, &proc_, limit)?);
        }
        return Ok((out, false));
    }
    let server = runtime::start(runc, work, rootfs, main)?;
    let mut out = Vec::new();
    for (port, path) in http {
        out.push(server.http_get(*port, path, limit)?);
    }
    for p in probes {
        out.push(server.exec(p, limit)?);
    }
    let mut all = vec![server.stop()];
    all.extend(out);
    Ok((all, true))
}

fn split_probe(p: &str) -> Result<Vec<String>> {
    shlex::split(p)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| SlimError::BadProbe(p.to_string()))
}

/// What to run, and how: the entrypoint with cmd, the probes, and the
/// process settings from the image config (overridden by the options).
struct Plan {
    main: Vec<String>,
    /// The main command, then every probe command.
    runs: Vec<Vec<String>>,
    http: Vec<(u16, String)>,
    env: Vec<String>,
    cwd: String,
    user: Option<String>,
}

impl Plan {
    fn new(config: Option<&ImageConfig>, opts: &SlimOptions) -> Result<Plan> {
        let rc = config.map(|c| c.config.clone()).unwrap_or_default();
        let entrypoint = opts
            .entrypoint
            .clone()
            .or(rc.entrypoint.clone())
            .unwrap_or_default();
        let cmd = opts.cmd.clone().or(rc.cmd.clone()).unwrap_or_default();
        let main: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if main.is_empty() {
            return Err(SlimError::NoEntrypoint);
        }
        let mut runs: Vec<Vec<String>> = vec![main.clone()];
        for p in &opts.probes {
            runs.push(split_probe(p)?);
        }
        let http = opts
            .http_probes
            .iter()
            .map(|p| parse_http(p))
            .collect::<Result<_>>()?;
        let env = rc.env.clone().unwrap_or_else(|| {
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()]
        });
        let cwd = rc
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        Ok(Plan {
            main,
            runs,
            http,
            env,
            cwd,
            user: rc.user,
        })
    }

    fn process(&self, args: &[String], (uid, gid): (u32, u32)) -> Process {
        Process {
            args: args.to_vec(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            uid,
            gid,
            seccomp_listener: None,
        }
    }
}

/// runc, when the mode or `--verify` needs to run the image (as root).
fn runtime_for(opts: &SlimOptions) -> Result<Option<Runc>> {
    if opts.mode == Mode::Static && !opts.verify {
        return Ok(None);
    }
    if !runtime::is_root() {
        return Err(SlimError::NotRoot(if opts.mode == Mode::Static {
            "--verify"
        } else {
            "dynamic mode"
        }));
    }
    Ok(Some(Runc::find()?))
}

/// Slim `tree` (whose image config is `config`) into `dest`.
pub fn slim(
    tree: &Tree,
    config: Option<&ImageConfig>,
    dest: &SourceRef,
    opts: &SlimOptions,
) -> Result<SlimReport> {
    let plan = Plan::new(config, opts)?;
    let runc = runtime_for(opts)?;
    runtime::catch_signals();
    let scratch = match &opts.work_dir {
        Some(d) => tempfile::Builder::new().prefix("kiln-slim-").tempdir_in(d),
        None => tempfile::Builder::new().prefix("kiln-slim-").tempdir(),
    }
    .map_err(|err| SlimError::Io {
        path: std::env::temp_dir(),
        err,
    })?;
    let work = scratch.path();
    let rootfs_dir = work.join("rootfs");
    let total: u64 = tree
        .iter()
        .filter(|(_, e)| e.is_file())
        .map(|(_, e)| e.size)
        .sum();
    // The tmpfs makes fanotify see only this rootfs; unmounted on drop.
    let _tmpfs = match runc {
        Some(_) => Some(tmpfs::Tmpfs::mount(&rootfs_dir, tmpfs_size(total))?),
        None => None,
    };
    rootfs::unpack(tree, &rootfs_dir, &|_| true)?;
    let ids = Root { dir: &rootfs_dir }.user_ids(plan.user.as_deref());

    let t0 = Instant::now();
    let mut found = Found::default();
    if opts.mode != Mode::Dynamic {
        found.static_closure(&rootfs_dir, &plan);
    }
    let seconds_static = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut probes = Vec::new();
    let mut server = false;
    if let Some(runc) = &runc {
        (probes, server) = found.trace(runc, work, &rootfs_dir, &plan, ids, opts)?;
    }
    let seconds_dynamic = t1.elapsed().as_secs_f64();

    let mut keep = found.keep;
    user_choices(tree, &rootfs_dir, &plan.env, opts, &mut keep);
    keep_with_dirs(tree, &mut keep, &plan.cwd);
    write_image(tree, config, dest, opts, &keep)?;
    if let (true, Some(runc)) = (opts.verify, &runc) {
        let slim_dir = work.join("slim-rootfs");
        let _slim_tmpfs = tmpfs::Tmpfs::mount(&slim_dir, tmpfs_size(total))?;
        rootfs::unpack(tree, &slim_dir, &|p| keep.contains(p))?;
        let main = plan.process(&plan.main, ids);
        let (results, _) = exercise(
            runc,
            work,
            &slim_dir,
            &main,
            &plan.runs[1..],
            &plan.http,
            opts.timeout,
        )?;
        compare(&mut probes, results, server);
    }

    let mut report = sizes(tree, &keep);
    report.mode = opts.mode;
    report.static_paths = found.static_paths;
    report.traced_paths = found.traced_paths;
    report.missing_commands = found.missing;
    report.probes = probes;
    report.seconds_static = seconds_static;
    report.seconds_dynamic = seconds_dynamic;
    Ok(report)
}

/// What the analyses found to keep.
#[derive(Default)]
struct Found {
    keep: BTreeSet<String>,
    missing: Vec<String>,
    static_paths: usize,
    traced_paths: usize,
}

impl Found {
    /// Static analysis of the entrypoint and cmd (probes are what tracing
    /// is for), the files their arguments name, and the system heuristics.
    fn static_closure(&mut self, rootfs_dir: &Path, plan: &Plan) {
        let mut c = closure::Closure::new(Root { dir: rootfs_dir }, &plan.env);
        let main = &plan.runs[0];
        c.add_command(&main[0], &plan.cwd);
        // Arguments naming files in the image (`python3 /app/main.py`).
        for a in &main[1..] {
            if a.starts_with('/') && c.root().resolve(a).is_some() {
                c.add_path(a);
            }
        }
        c.add_system_heuristics();
        c.run();
        self.missing = c.missing.clone();
        self.static_paths = c.keep.len();
        self.keep.extend(c.keep);
    }

    /// Run the entrypoint and every probe; in a tracing mode, keep what
    /// fanotify and the seccomp listener saw them touch (with closures).
    /// Returns the runs' reports and whether the entrypoint ran as a server.
    fn trace(
        &mut self,
        runc: &Runc,
        work: &Path,
        rootfs_dir: &Path,
        plan: &Plan,
        ids: (u32, u32),
        opts: &SlimOptions,
    ) -> Result<(Vec<ProbeReport>, bool)> {
        let tracing = opts.mode != Mode::Static;
        let tracer = tracing
            .then(|| fanotify::Tracer::start(rootfs_dir))
            .transpose()?;
        // stat/access/readlink and failed opens, which fanotify misses.
        let listener = (tracing && cfg!(target_arch = "x86_64"))
            .then(|| seccomp::Listener::start(work))
            .transpose()?;
        let mut main = plan.process(&plan.main, ids);
        main.seccomp_listener = listener.as_ref().map(|l| l.path.clone());
        let (results, server) = exercise(
            runc,
            work,
            rootfs_dir,
            &main,
            &plan.runs[1..],
            &plan.http,
            opts.timeout,
        )?;
        if let Some(tracer) = tracer {
            let mut seen = tracer.finish();
            let prefix = rootfs_dir
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string();
            if let Some(l) = listener {
                seen.extend(l.finish().into_iter().map(|p| {
                    p.strip_prefix(&prefix)
                        .map(|q| q.trim_start_matches('/').to_string())
                        .unwrap_or(p)
                }));
            }
            self.traced_paths = seen.len();
            let mut c = closure::Closure::new(Root { dir: rootfs_dir }, &plan.env);
            for p in &seen {
                c.add_path(p);
            }
            c.run();
            self.keep.extend(c.keep);
        }
        let probes = results
            .into_iter()
            .map(|r| ProbeReport {
                args: r.args.clone(),
                original: Some(r),
                slimmed: None,
                same: None,
            })
            .collect();
        Ok((probes, server))
    }
}

/// Set each probe's result on the slimmed image beside the original's,
/// and whether exit code and stdout are the same (a server's own output,
/// logs and timestamps, is not compared).
fn compare(probes: &mut [ProbeReport], results: Vec<RunResult>, server: bool) {
    for (i, res) in results.into_iter().enumerate() {
        let Some(pr) = probes.get_mut(i) else {
            continue;
        };
        if !(server && i == 0) {
            let same = pr
                .original
                .as_ref()
                .is_some_and(|o| o.exit == res.exit && o.stdout == res.stdout);
            pr.same = Some(same);
        }
        pr.slimmed = Some(res);
    }
}

/// A tmpfs big enough for the unpacked image and what its runs write.
fn tmpfs_size(image_bytes: u64) -> u64 {
    image_bytes * 2 + (256 << 20)
}

/// What the user asked for beyond the analysis: `--include` paths and
/// globs (with their closures), `--exclude` globs, and package metadata
/// dropped unless `--keep-packages-metadata`.
fn user_choices(
    tree: &Tree,
    rootfs_dir: &Path,
    env: &[String],
    opts: &SlimOptions,
    keep: &mut BTreeSet<String>,
) {
    for inc in &opts.include {
        let mut c = closure::Closure::new(Root { dir: rootfs_dir }, env);
        if inc.contains(['*', '?', '[']) {
            if let Ok(g) = globset::Glob::new(inc.trim_start_matches('/')) {
                let m = g.compile_matcher();
                for (p, _) in tree.iter() {
                    if m.is_match(p) {
                        c.add_path(p);
                    }
                }
            }
        } else {
            c.add_tree(inc);
        }
        c.run();
        keep.extend(c.keep);
    }
    let mut excludes = globset::GlobSetBuilder::new();
    for ex in &opts.exclude {
        if let Ok(g) = globset::Glob::new(ex.trim_start_matches('/')) {
            excludes.add(g);
        }
    }
    let excludes = excludes
        .build()
        .unwrap_or_else(|_| globset::GlobSet::empty());
    keep.retain(|p| {
        !excludes.is_match(p) && (opts.keep_packages_metadata || !is_package_metadata(p))
    });
    if opts.keep_packages_metadata {
        for (p, _) in tree.iter() {
            if is_package_metadata(p) {
                keep.insert(p.to_string());
            }
        }
    }
}

/// Only paths of the image (not files the runs created), with their
/// parent directories, and the directories runtimes mount over.
fn keep_with_dirs(tree: &Tree, keep: &mut BTreeSet<String>, cwd: &str) {
    keep.retain(|p| tree.get(p).is_some());
    let mut dirs = BTreeSet::new();
    for p in keep.iter() {
        let mut d = p.as_str();
        while let Some((parent, _)) = d.rsplit_once('/') {
            dirs.insert(parent.to_string());
            d = parent;
        }
    }
    for d in [
        "tmp",
        "var/tmp",
        "run",
        "proc",
        "sys",
        "dev",
        "etc",
        cwd.trim_matches('/'),
    ] {
        if tree.get(d).is_some_and(|e| e.kind == Kind::Dir) {
            dirs.insert(d.to_string());
        }
    }
    keep.extend(dirs.into_iter().filter(|d| !d.is_empty()));
}

/// Write the kept files as one new gzip layer, the configuration kept
/// (entrypoint and cmd as given) and the slim mode recorded.
fn write_image(
    tree: &Tree,
    config: Option<&ImageConfig>,
    dest: &SourceRef,
    opts: &SlimOptions,
    keep: &BTreeSet<String>,
) -> Result<()> {
    let out = ImageOutput::create(dest)?;
    let sink = out.layer_sink(Compression::Gzip)?;
    let sink = tree.export(|p, _| keep.contains(p).then(Export::default), sink)?;
    let layer = sink.finish()?;
    let mut cfg = config.cloned().unwrap_or_else(|| ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    });
    let now = kiln_image::spec::creation_time(config);
    if opts.entrypoint.is_some() {
        cfg.config.entrypoint = opts.entrypoint.clone();
    }
    if opts.cmd.is_some() {
        cfg.config.cmd = opts.cmd.clone();
    }
    cfg.history = vec![History {
        created: Some(now.clone()),
        created_by: Some(format!("kiln slim --mode {}", mode_name(opts.mode))),
        empty_layer: false,
    }];
    cfg.created = Some(now);
    cfg.config
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("dev.kiln.slim.mode".into(), mode_name(opts.mode).into());
    out.finish(cfg, &[layer])?;
    Ok(())
}

/// The verification verdict: an error describing the first probe whose
/// slimmed run differs, with the path it missed when stderr names one.
pub fn check_verified(report: &SlimReport) -> Result<()> {
    for p in &report.probes {
        if p.same == Some(false) {
            let (Some(o), Some(s)) = (&p.original, &p.slimmed) else {
                continue;
            };
            let hint = missing_hint(&s.stderr)
                .map(|m| format!("; missing: {m}"))
                .unwrap_or_default();
            return Err(SlimError::Verify(format!(
                "`{}` exited {} with {} bytes of output on the original and {} with {} bytes on the slimmed image{hint}\n--- stderr of the slimmed run ---\n{}",
                p.args.join(" "),
                o.exit,
                o.stdout.len(),
                s.exit,
                s.stdout.len(),
                s.stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
    }
    Ok(())
}

/// A path or module name a failing program says it could not find.
fn missing_hint(stderr: &str) -> Option<String> {
    for line in stderr.lines() {
        if let Some(rest) = line.split("No module named ").nth(1) {
            return Some(format!("Python module {}", rest.trim()));
        }
        if let Some(rest) = line.split("error while loading shared libraries: ").nth(1) {
            return Some(rest.split(':').next().unwrap_or(rest).trim().to_string());
        }
        if line.contains("No such file or directory") {
            if let Some(q) = line.split(['\'', '"']).nth(1) {
                return Some(q.to_string());
            }
            return Some(line.trim().to_string());
        }
    }
    None
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Static => "static",
        Mode::Dynamic => "dynamic",
        Mode::Both => "both",
    }
}

fn sizes(tree: &Tree, keep: &BTreeSet<String>) -> SlimReport {
    let (mut fb, mut bb, mut fa, mut ba) = (0usize, 0u64, 0usize, 0u64);
    let mut removed: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for (p, e) in tree.iter() {
        if !e.is_file() {
            continue;
        }
        fb += 1;
        bb += e.size;
        if keep.contains(p) {
            fa += 1;
            ba += e.size;
        } else {
            let parts: Vec<&str> = p.split('/').collect();
            let depth = (parts.len() - 1).min(3);
            let dir = parts[..depth].join("/");
            let slot = removed.entry(format!("/{dir}")).or_default();
            slot.0 += e.size;
            slot.1 += 1;
        }
    }
    let mut largest: Vec<Removed> = removed
        .into_iter()
        .map(|(path, (bytes, files))| Removed { path, bytes, files })
        .collect();
    largest.sort_by_key(|r| std::cmp::Reverse(r.bytes));
    largest.truncate(10);
    SlimReport {
        mode: Mode::Both,
        files_before: fb,
        bytes_before: bb,
        files_after: fa,
        bytes_after: ba,
        ratio: if ba == 0 { 0.0 } else { bb as f64 / ba as f64 },
        static_paths: 0,
        traced_paths: 0,
        missing_commands: Vec::new(),
        largest_removed: largest,
        probes: Vec::new(),
        seconds_static: 0.0,
        seconds_dynamic: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert_eq!(
            missing_hint("ModuleNotFoundError: No module named 'plugins.greet'").unwrap(),
            "Python module 'plugins.greet'"
        );
        assert_eq!(
            missing_hint("curl: error while loading shared libraries: libz.so.1: cannot open shared object file").unwrap(),
            "libz.so.1"
        );
        assert_eq!(
            missing_hint("FileNotFoundError: [Errno 2] No such file or directory: '/app/data.txt'")
                .unwrap(),
            "/app/data.txt"
        );
    }

    #[test]
    fn package_metadata() {
        assert!(is_package_metadata("var/lib/dpkg/status"));
        assert!(is_package_metadata(
            "usr/lib/python3/dist-packages/x-1.dist-info/RECORD"
        ));
        assert!(!is_package_metadata(
            "usr/lib/python3/dist-packages/x/__init__.py"
        ));
    }
}
