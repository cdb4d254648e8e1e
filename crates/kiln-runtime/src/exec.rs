//! The last step of a session: credentials, capabilities, environment,
//! then `exec` of the command.

use std::os::unix::process::CommandExt;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::attach::{Mode, Session, CHROOT_TOOLS};
use crate::error::{sys, RuntimeError};

/// Become the session's command; returns only on failure.
pub fn exec(s: &Session) -> RuntimeError {
    for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGPIPE] {
        crate::sys::on_signal(sig, libc::SIG_DFL);
    }
    if let Err(e) = crate::sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "set the parent-death signal",
    ) {
        return e;
    }
    if let Err(e) = credentials(s.user) {
        return e;
    }
    let args: Vec<String> = if s.args.is_empty() {
        vec!["sh".into()]
    } else {
        s.args.clone()
    };
    let err = std::process::Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(environment(s))
        .current_dir("/")
        .exec();
    RuntimeError::Sys {
        what: format!("run {} in the debug session", args[0]),
        err,
    }
}

fn environment(s: &Session) -> Vec<(String, String)> {
    let (path, home) = match s.mode {
        Mode::Toolbox => (s.toolbox_path.clone(), "/tmp"),
        Mode::Chroot => {
            let mut p: Vec<String> = crate::toolbox::SYSTEM_PATH
                .iter()
                .map(|d| d.to_string())
                .collect();
            p.extend(s.toolbox_path.iter().map(|d| format!("/{CHROOT_TOOLS}{d}")));
            (p, "/")
        }
    };
    let mut env = vec![
        ("PATH".to_string(), path.join(":")),
        ("HOME".to_string(), home.to_string()),
    ];
    env.extend(
        s.env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// Root with a default runc container's capabilities, or the given user
/// with none; never more than the default bounding set, and no new
/// privileges through setuid files.
fn credentials(user: Option<(u32, u32)>) -> Result<(), RuntimeError> {
    let keep: CapsHashSet = crate::runc::CAPS
        .iter()
        .filter_map(|c| Capability::from_str(c).ok())
        .collect();
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(cap_err)?;
        }
    }
    let (uid, gid) = user.unwrap_or((0, 0));
    // SAFETY: plain credential system calls.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(sys("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(sys(format!("set group {gid}")));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(sys(format!("set user {uid}")));
        }
    }
    if user.is_none() {
        caps::clear(None, CapSet::Ambient).map_err(cap_err)?;
        for set in [CapSet::Inheritable, CapSet::Effective] {
            caps::set(None, set, &keep).map_err(cap_err)?;
        }
        caps::set(None, CapSet::Permitted, &keep).map_err(cap_err)?;
    }
    crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")
}

fn cap_err(e: caps::errors::CapsError) -> RuntimeError {
    RuntimeError::Sys {
        what: "set capabilities".into(),
        err: std::io::Error::other(e.to_string()),
    }
}
