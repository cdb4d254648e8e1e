//! `kiln debug`: a toolbox inside a running container, a process, or an
//! image started just for the session; and `kiln ps`, the containers it
//! can enter.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kiln_image::{OpenOptions, Source, SourceRef};
use kiln_runtime::attach::{self, Mode, Session};
use kiln_runtime::container::{self, Target};
use kiln_runtime::toolbox::Toolbox;
use kiln_runtime::RuntimeError;
use kiln_tree::{BuildOptions, Tree};

/// Enter TARGET with a toolbox, changing nothing of it.
///
/// By default the session runs as root inside the target's user namespace
/// with the capabilities of a default runc container (never more), in the
/// target's pid, network, IPC, UTS and cgroup namespaces. Its root is the
/// toolbox; the target's root is at /target, mounted in a private mount
/// namespace so nothing propagates to the target or the host. With
/// --chroot, the target's root is / and the toolbox is at /.kiln (on
/// PATH). When the command exits (or on Ctrl-C or SIGTERM), everything it
/// started is killed; no process or mount is left behind. Needs root.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kiln debug web                                  # a shell in container 'web'\n  \
    kiln debug web -- sh -c 'ps; netstat -tln'\n  \
    kiln debug --chroot web -- ls /                 # the target's root as /\n  \
    kiln debug --user pid:4242                      # any process, as its own user\n  \
    kiln debug oci-archive:app.tar                  # an image, started only for the session\n  \
    kiln debug web --toolbox registry:reg.example/tools:1 -- curl -s localhost:8080")]
pub struct Args {
    /// A runc container id, pid:N for any process, or an image source
    /// (oci-archive:FILE, oci-dir:DIR, docker-archive:FILE, registry:REF)
    /// to start in a throwaway container with no network and no
    /// entrypoint.
    pub target: String,
    /// The tools: any image source, or dir:PATH. Images are unpacked once
    /// into a cache keyed by digest. Default: the host's busybox-static.
    #[arg(long, value_name = "SOURCE")]
    pub toolbox: Option<String>,
    /// Run with the target's root as / and the (static) toolbox at /.kiln.
    #[arg(long)]
    pub chroot: bool,
    /// Run as the target's own user instead of root (--user), or as any
    /// --user=UID[:GID]. Either way the user has no capabilities.
    #[arg(long, value_name = "UID[:GID]", num_args = 0..=1, require_equals = true,
          default_missing_value = "target")]
    pub user: Option<String>,
    /// runc state root to find the container in [default: /run/runc,
    /// /run/docker/runtime-runc/moby, /run/containerd/runc/k8s.io,
    /// /run/containerd/runc/default].
    #[arg(long, value_name = "DIR")]
    pub runc_root: Option<PathBuf>,
    #[command(flatten)]
    pub net: super::net::NetArgs,
    /// The command and its arguments [default: an interactive shell].
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Is `target` an image source rather than a container id or `pid:N`?
/// Container ids have no '/' or ':'.
fn is_image(target: &str) -> bool {
    !target.starts_with("pid:") && target.contains([':', '/'])
}

/// Run the session; its exit code is kiln's.
pub fn run(args: Args) -> Result<ExitCode> {
    if !kiln_runtime::runc::is_root() {
        return Err(RuntimeError::NotRoot("kiln debug").into());
    }
    let toolbox = toolbox(args.toolbox.as_deref(), &args.net)?;
    let mode = if args.chroot {
        Mode::Chroot
    } else {
        Mode::Toolbox
    };
    let code = if is_image(&args.target) {
        debug_image(&args, toolbox, mode)?
    } else {
        let roots = container::roots(args.runc_root.as_deref());
        let target = Target::resolve(&args.target, &roots)?;
        let session = session(&args, target.pid(), &target.name(), toolbox, mode)?;
        attach::run(&exe()?, &session)?
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the kiln executable")
}

fn session(args: &Args, pid: i32, name: &str, toolbox: Toolbox, mode: Mode) -> Result<Session> {
    let user = match args.user.as_deref() {
        None => None,
        Some("target") => Some(target_user(pid)?),
        Some(spec) => Some(parse_user(spec)?),
    };
    let mut env = vec![format!("PS1=[kiln debug {name}] \\w \\$ ")];
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    Ok(Session {
        pid,
        toolbox: toolbox.root,
        toolbox_path: toolbox.path,
        mode,
        user,
        args: args.command.clone(),
        env,
        stage: std::env::temp_dir(),
        tty: args.command.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stdin()),
    })
}

fn parse_user(spec: &str) -> Result<(u32, u32)> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => bail!("--user={spec}: expected UID[:GID] (numbers), or --user alone for the target's own user"),
    }
}

/// The target's real uid and gid, as its own user namespace numbers them.
fn target_user(pid: i32) -> Result<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the user of process {pid}"))?;
    let field = |key: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (Some(uid), Some(gid)) = (field("Uid:"), field("Gid:")) else {
        bail!("cannot read the user of process {pid}");
    };
    Ok((map_id(pid, "uid_map", uid), map_id(pid, "gid_map", gid)))
}

/// A host id as the target's user namespace sees it (unchanged without
/// one: the map is then the identity).
fn map_id(pid: i32, map: &str, host: u32) -> u32 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{map}")).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..] {
            let h = u64::from(host);
            if h >= outside && h < outside + count {
                return (inside + h - outside) as u32;
            }
        }
    }
    host
}

/// The toolbox the user named, or the host's busybox-static.
fn toolbox(spec: Option<&str>, net: &super::net::NetArgs) -> Result<Toolbox> {
    let cache = kiln_vuln::fetch::cache_dir().with_file_name("toolbox");
    let Some(spec) = spec else {
        return Ok(Toolbox::busybox(&cache)?);
    };
    let not_image = || format!("--toolbox {spec}: not an image or a directory");
    let reference = SourceRef::parse(spec).with_context(not_image)?;
    let opts = OpenOptions {
        registry: net.registry()?,
        ..OpenOptions::default()
    };
    match Source::open(&reference, &opts).with_context(not_image)? {
        Source::Dir(dir) => Ok(Toolbox::dir(&dir)?),
        Source::Image(image) => {
            let key = image.config_digest.to_string();
            if let Some(t) = Toolbox::cached(&cache, &key) {
                return Ok(t);
            }
            let tree = Tree::build(Source::Image(image), &BuildOptions::default())
                .with_context(not_image)?;
            Ok(Toolbox::unpack(&cache, &key, &tree)?)
        }
    }
}

/// An image that isn't running: its root unpacked into a temporary
/// directory, a container created over it with `runc create` (namespaces,
/// no network, the entrypoint never started), entered, and deleted.
fn debug_image(args: &Args, toolbox: Toolbox, mode: Mode) -> Result<i32> {
    let runc = kiln_runtime::runc::Runc::find()?;
    // Until the session starts, Ctrl-C and SIGTERM stop the set-up and
    // clean up (the work directory and the container are dropped).
    kiln_runtime::runc::catch_signals();
    let source = super::source::SourceArgs {
        source: args.target.clone(),
        options: super::source::SourceOptions {
            platform: None,
            max_layer_size: kiln_image::Limits::default().max_layer_size,
            max_expansion_ratio: kiln_image::Limits::default().max_expansion_ratio,
            net: args.net.clone(),
        },
    };
    let (tree, _) = source.open_tree(&BuildOptions::default())?;
    let work = tempfile::Builder::new()
        .prefix(".kiln-debug-")
        .tempdir()
        .context("cannot create a work directory")?;
    let rootfs = work.path().join("rootfs");
    kiln_runtime::rootfs::unpack(&tree, &rootfs, &|_| true)?;
    let hold = placeholder(&rootfs)?;
    let process = kiln_runtime::runc::Process {
        args: vec![hold],
        env: Vec::new(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        seccomp_listener: None,
    };
    let created = kiln_runtime::runc::create(&runc, work.path(), &rootfs, &process)?;
    if kiln_runtime::runc::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(RuntimeError::Interrupted.into());
    }
    let name = format!("image {}", args.target);
    let session = session(args, created.pid, &name, toolbox, mode)?;
    let code = attach::run(&exe()?, &session);
    drop(created);
    Ok(code?)
}

/// runc refuses to create a container whose command does not exist; the
/// session never starts it, so an empty executable file stands in.
fn placeholder(rootfs: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let name = ".kiln-never-run";
    let p = rootfs.join(name);
    std::fs::write(&p, b"").with_context(|| format!("cannot write {}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(format!("/{name}"))
}

/// `kiln ps`: the runc containers kiln can see.
#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// runc state root to list [default: the usual roots, as kiln debug].
    #[arg(long, value_name = "DIR")]
    pub runc_root: Option<PathBuf>,
    /// Output format: table or json [default: table on a terminal, else json].
    #[arg(short, long, value_name = "FORMAT", value_parser = ["table", "json"])]
    pub output: Option<String>,
}

/// List the containers under the state roots.
pub fn ps(args: PsArgs) -> Result<ExitCode> {
    let roots = container::roots(args.runc_root.as_deref());
    let found = container::list(&roots);
    let table = match args.output.as_deref() {
        Some(o) => o == "table",
        None => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    super::write_to(None, |out| {
        if !table {
            for c in &found {
                serde_json::to_writer(&mut *out, c)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        writeln!(
            out,
            "{:<24} {:>8} {:<8} {:<32} {:<32} ROOT",
            "ID", "PID", "STATUS", "IMAGE", "BUNDLE"
        )?;
        for c in &found {
            writeln!(
                out,
                "{:<24} {:>8} {:<8} {:<32} {:<32} {}",
                c.id,
                c.pid,
                c.status,
                c.image.as_deref().unwrap_or("-"),
                c.bundle.as_deref().unwrap_or("-"),
                c.root.display()
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
