//! Shared helpers for kiln's end-to-end tests: running the binary, finding
//! optional tools and the shared corpus, and building real fixtures with
//! real tools (`dpkg-deb`, `dpkg`, `umoci`, `skopeo`, GNU `tar`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod pg;
pub mod prometheus;
pub mod registry;

/// A `kiln` command.
pub fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// Is the test running as root (mounts, runc)?
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run kiln under GNU time: its output and its peak RSS in KiB.
pub fn run_measured(args: &[&str]) -> (Output, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak=%M"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln under /usr/bin/time");
    let peak = String::from_utf8_lossy(&out.stderr)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("peak=")?.trim().parse().ok())
        .unwrap_or(0);
    (out, peak)
}

/// Run kiln and return its output.
pub fn run(args: &[&str]) -> Output {
    kiln().args(args).output().expect("run kiln")
}

/// Run kiln, insist on success, and parse stdout as JSON.
pub fn json(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kiln printed JSON")
}

/// Run kiln, insist on failure with the error status (2, not the policy
/// status 1), and return stderr.
pub fn failure(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}");
    assert!(
        !out.status.success(),
        "kiln {args:?} should fail; stderr: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a clean error exit, not a crash: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "kiln panicked: {stderr}");
    stderr
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Is `tool` on PATH? Outside CI a missing tool skips the test with a
/// message; in CI (where `.ci/run` installs everything) it fails it.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(!in_ci(), "{tool} is missing in CI: .ci/run must install it");
        eprintln!("skipping: {tool} is not installed (see .ci/run for the install line)");
    }
    found
}

/// The read-only corpus beside the project, if present.
pub fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/corpus is not present on this machine");
        None
    }
}

/// Run a command and insist it succeeds.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Python with the validators: the project's `.venv` made by
/// `scripts/setup.sh`, else whatever `python3` is on PATH.
pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Run a validator script from tests/validators on `doc`. Returns false
/// (skip) when the validator's Python package is absent outside CI.
pub fn validate(script: &str, doc: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validators")
        .join(script);
    let out = Command::new(python())
        .arg(path)
        .arg(doc)
        .output()
        .expect("python3");
    if out.status.code() == Some(3) {
        assert!(
            !in_ci(),
            "{script}: validator missing in CI: .ci/run must pip install it"
        );
        eprintln!(
            "skipping {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(
        out.status.success(),
        "{script} rejects {}: {}{}",
        doc.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real `.deb` built with `dpkg-deb --build`.
pub struct Deb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub source: Option<&'a str>,
    pub files: &'a [(&'a str, &'a [u8])],
}

impl Deb<'_> {
    pub fn build(&self, dir: &Path) -> PathBuf {
        self.build_for(dir, "amd64")
    }

    /// Build for another Debian architecture (`arm64`).
    pub fn build_for(&self, dir: &Path, arch: &str) -> PathBuf {
        let stage = dir.join(format!("stage-{}-{}-{arch}", self.name, self.version));
        std::fs::create_dir_all(stage.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {arch}\nMaintainer: kiln tests <tests@kiln.invalid>\n",
            self.name, self.version
        );
        if let Some(s) = self.source {
            control.push_str(&format!("Source: {s}\n"));
        }
        control.push_str("Description: kiln test fixture\n built by the test suite\n");
        std::fs::write(stage.join("DEBIAN/control"), control).unwrap();
        for (path, data) in self.files {
            let p = stage.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            if path.contains("bin/") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // As dh_md5sums does: md5sums of every shipped file.
        sh(Command::new("sh").arg("-c").arg(
            "cd \"$0\" && find . -type f ! -path './DEBIAN/*' -printf '%P\\0' | sort -z | xargs -0 -r md5sum > DEBIAN/md5sums",
        ).arg(&stage));
        let out = dir.join(format!("{}_{}_{arch}.deb", self.name, self.version));
        sh(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&stage)
            .arg(&out));
        out
    }
}

/// Prepare an empty dpkg database under `root`.
pub fn dpkg_root(root: &Path) {
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    let status = root.join("var/lib/dpkg/status");
    if !status.exists() {
        std::fs::write(status, "").unwrap();
    }
}

/// `dpkg --root ROOT ARGS…`, the real dpkg writing a real database.
pub fn dpkg(root: &Path, args: &[&str]) {
    sh(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless")
        .arg("--force-not-root")
        .args(args));
}

/// An image built layer by layer with umoci.
pub struct Umoci {
    pub layout: PathBuf,
    pub bundle: PathBuf,
    pub tag: String,
}

impl Umoci {
    pub fn new(dir: &Path, tag: &str) -> Self {
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        let image = format!("{}:{tag}", layout.display());
        sh(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout));
        sh(Command::new("umoci").args(["new", "--image", &image]));
        sh(Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle));
        Umoci {
            layout,
            bundle,
            tag: tag.into(),
        }
    }

    pub fn image(&self) -> String {
        format!("{}:{}", self.layout.display(), self.tag)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Commit the bundle's changes as a new layer.
    pub fn repack(&self) {
        sh(Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image", &self.image()])
            .arg(&self.bundle));
    }

    /// Add a hand-made layer tar as it is (for whiteout forms umoci does not write).
    pub fn add_raw_layer(&self, tar: &Path) {
        sh(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &self.image()])
            .arg(tar));
    }

    pub fn config(&self, args: &[&str]) {
        sh(Command::new("umoci")
            .args(["config", "--image", &self.image()])
            .args(args));
    }
}

/// `kiln ARGS… --file OUT`: must succeed, and the document it writes must
/// pass `validator` (a script in `tests/validators`). Returns the document.
pub fn write_validated(args: &[&str], out: &Path, validator: &str) -> Value {
    let mut all = args.to_vec();
    all.extend(["--file", out.to_str().unwrap()]);
    let o = run(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    validate(validator, out);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// `kiln db build -q --db DB --deb DEBS` (one `.deb` or a directory of them).
pub fn db_build_debs(db: &Path, debs: &Path) {
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(db)
        .arg("--deb")
        .arg(debs));
}

/// `kiln scan SOURCE --db DB -o json`, parsed.
pub fn scan_json(db: &Path, source: &str) -> Value {
    json(&["scan", source, "--db", db.to_str().unwrap(), "-o", "json"])
}

/// The sorted (name, version) pairs of the packages of one `type` in an
/// SBOM's JSON.
pub fn typed(doc: &Value, kind: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["type"] == kind)
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The (name, version, arch) rows of an SBOM's JSON packages.
pub fn rows(doc: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["arch"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Validate a SARIF log with Microsoft's SARIF multitool (npm
/// `@microsoft/sarif-multitool`), which reports schema errors as
/// `… error …` lines (its exit status stays 0).
pub fn validate_sarif(doc: &Path) {
    if !have("sarif-multitool") {
        return;
    }
    let out = sh(Command::new("sarif-multitool").arg("validate").arg(doc));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": error ")).collect();
    assert!(
        errors.is_empty(),
        "SARIF validator errors in {}:\n{}",
        doc.display(),
        errors.join("\n")
    );
    assert!(text.contains("Analysis completed successfully"), "{text}");
}

/// Write `text` at `path`, creating parent directories.
pub fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `apt-get download SPECS` into `dir` through the machine's apt sources.
/// False (skip) when that fails outside CI; in CI it fails the test.
pub fn apt_download(dir: &Path, specs: &[&str]) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("apt-get")
        .arg("download")
        .args(specs)
        .current_dir(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        assert!(
            !in_ci(),
            "apt-get download {specs:?} failed in CI: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("skipping: apt-get download {specs:?} failed (no package registry?)");
    }
    out.status.success()
}

/// Copy a host file into `root` at the same (canonical) path, with the
/// symlink chain that names it.
pub fn copy_in(root: &Path, host: &Path) {
    let mut p = host.to_path_buf();
    for _ in 0..10 {
        let dest = root.join(p.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(&target, &dest).unwrap();
            p = p.parent().unwrap().join(target);
        } else {
            sh(Command::new("cp").arg("-a").arg(&p).arg(&dest));
            return;
        }
    }
}

/// The libraries `ldd` reports for a host binary.
pub fn ldd(bin: &Path) -> Vec<PathBuf> {
    let out = sh(Command::new("ldd").arg(bin));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// Root, as the runtime tests need; otherwise a skip (a failure in CI,
/// which runs the suite as root).
pub fn root_or_skip(why: &str) -> bool {
    if !is_root() {
        assert!(!in_ci(), "CI runs the suite as root");
        eprintln!("skipping: {why}, which needs root");
    }
    is_root()
}

/// A runc container started with `runc run -d`, deleted on drop.
pub struct RuncContainer {
    pub id: String,
    /// Host pid of its init.
    pub pid: i32,
}

impl RuncContainer {
    /// `runc run -d --bundle BUNDLE ID`; runc's output goes to
    /// `BUNDLE/log` (the container's init keeps runc's stdio open).
    pub fn run(bundle: &Path, id: &str) -> RuncContainer {
        let log = std::fs::File::create(bundle.join("log")).unwrap();
        let status = Command::new("runc")
            .args(["run", "-d", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "runc run {id}: {}",
            std::fs::read_to_string(bundle.join("log")).unwrap_or_default()
        );
        let state = sh(Command::new("runc").args(["state", id]));
        let v: Value = serde_json::from_slice(&state.stdout).unwrap();
        RuncContainer {
            id: id.into(),
            pid: v["pid"].as_i64().unwrap() as i32,
        }
    }
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .status();
    }
}
