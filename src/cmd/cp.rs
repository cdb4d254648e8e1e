//! `kiln cp` and `kiln port-forward`: reaching into a target's files and
//! ports from the host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use kiln_runtime::container::{self, Target};
use kiln_runtime::copy::{self, Side};
use kiln_runtime::forward;
use kiln_runtime::RuntimeError;

/// Copy files between the host and a target, as `cp -a` would.
///
/// The path inside the target resolves as in a chroot: symlinks, absolute
/// ones too, stay inside the target's root, and a path that climbs above
/// it through '..' is refused. Modes, ownership, times and holes are kept.
/// LOCAL '-' writes (or reads) a tar stream on stdout (stdin). Needs root.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kiln cp web:/etc/nginx ./nginx-conf\n  \
    kiln cp ./fix.conf web:/etc/nginx/conf.d/\n  \
    kiln cp pid:4242:/var/log/app.log .\n  \
    kiln cp web:/var/lib/app - | tar -tv")]
pub struct CpArgs {
    /// Source: TARGET:PATH (TARGET a container id or pid:N) or a local
    /// path.
    pub from: String,
    /// Destination: a local path, or TARGET:PATH.
    pub to: String,
    /// runc state root to find the container in [default: the usual roots].
    #[arg(long, value_name = "DIR")]
    pub runc_root: Option<PathBuf>,
}

/// `ID:PATH` or `pid:N:PATH`; anything else is local. A container id has
/// no '/', so `./a:b` and `/x:y` are local paths.
fn target_part(arg: &str) -> Option<(&str, &str)> {
    if let Some(rest) = arg.strip_prefix("pid:") {
        let (n, path) = rest.split_once(':')?;
        return Some((&arg[..4 + n.len()], path));
    }
    let (id, path) = arg.split_once(':')?;
    (!id.is_empty() && !id.contains('/')).then_some((id, path))
}

fn side(arg: &str, roots: &[PathBuf]) -> Result<(Side, bool)> {
    match target_part(arg) {
        Some((t, path)) => {
            let target = Target::resolve(t, roots)?;
            let path = if path.is_empty() { "/" } else { path };
            Ok((
                Side::Target {
                    pid: target.pid(),
                    path: path.to_string(),
                },
                true,
            ))
        }
        None => Ok((Side::Host(PathBuf::from(arg)), false)),
    }
}

/// Run the copy.
pub fn cp(args: CpArgs) -> Result<ExitCode> {
    if !kiln_runtime::runc::is_root() {
        return Err(RuntimeError::NotRoot("kiln cp").into());
    }
    let roots = container::roots(args.runc_root.as_deref());
    let (from, from_target) = side(&args.from, &roots)?;
    let (to, to_target) = side(&args.to, &roots)?;
    if from_target == to_target {
        bail!("kiln cp copies between the host and a target: name exactly one side as TARGET:PATH (a container id or pid:N)");
    }
    copy::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", args.from, args.to))?;
    Ok(ExitCode::SUCCESS)
}

/// Forward a local port to a port inside a target's network namespace.
///
/// Listens on the host ([ADDR:]LOCAL_PORT, default address 127.0.0.1;
/// LOCAL_PORT 0 or empty picks a free port) and connects each connection
/// to 127.0.0.1:PORT inside the target, several at once, until Ctrl-C.
/// Needs root.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kiln port-forward web 8080:80\n  \
    kiln port-forward pid:4242 0.0.0.0:9090:9090\n  \
    kiln port-forward web :80            # a free local port, printed")]
pub struct ForwardArgs {
    /// A container id or pid:N.
    pub target: String,
    /// [ADDR:]LOCAL_PORT:PORT.
    #[arg(value_parser = forward::parse_spec)]
    pub ports: (std::net::SocketAddr, u16),
    /// runc state root to find the container in [default: the usual roots].
    #[arg(long, value_name = "DIR")]
    pub runc_root: Option<PathBuf>,
}

/// Forward until interrupted.
pub fn port_forward(args: ForwardArgs) -> Result<ExitCode> {
    if !kiln_runtime::runc::is_root() {
        return Err(RuntimeError::NotRoot("kiln port-forward").into());
    }
    let roots = container::roots(args.runc_root.as_deref());
    let target = Target::resolve(&args.target, &roots)?;
    let (addr, port) = args.ports;
    let connector = forward::Connector::new(target.pid(), port)?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("listening socket")?;
    kiln_runtime::runc::catch_signals();
    eprintln!("Forwarding from {local} -> {port} in {}", target.name());
    let n = forward::serve(listener, connector, &kiln_runtime::runc::INTERRUPTED)?;
    eprintln!(
        "kiln: stopped: {} connections, {} bytes, {} refused by the target",
        n.connections.load(Ordering::Relaxed),
        n.bytes.load(Ordering::Relaxed),
        n.failed.load(Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides() {
        assert_eq!(target_part("web:/etc/x"), Some(("web", "/etc/x")));
        assert_eq!(target_part("pid:42:/etc/x"), Some(("pid:42", "/etc/x")));
        assert_eq!(target_part("./a:b"), None);
        assert_eq!(target_part("/x:y"), None);
        assert_eq!(target_part("plain"), None);
    }
}
