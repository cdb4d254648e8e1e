//! Ending a session without leftovers: the session's init is a child
//! subreaper, so everything its command started and orphaned becomes its
//! child; it kills the command's whole process tree and reaps it.

use std::collections::BTreeMap;
use std::time::Duration;

/// Kill every descendant of this process, without reaping them (safe in
/// the middle of waiting for one).
pub fn kill_all() -> usize {
    let doomed = descendants(std::process::id() as i32);
    for pid in &doomed {
        crate::sys::kill(*pid, libc::SIGKILL);
    }
    doomed.len()
}

/// Kill every descendant of this process and reap them, until none is
/// left (a descendant may fork while it is being killed).
pub fn kill_descendants() {
    for _ in 0..1000 {
        let killed = kill_all();
        if !reap_all() && killed == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reap whatever has exited; false once this process has no children.
fn reap_all() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match r {
            0 => return true,
            r if r > 0 => continue,
            _ => return std::io::Error::last_os_error().raw_os_error() != Some(libc::ECHILD),
        }
    }
}

/// All processes below `root`, from the parent links in `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push(*c);
            stack.push(*c);
        }
    }
    out
}

fn parent(pid: i32) -> Option<i32> {
    crate::container::stat_field(pid, 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_parent_is_read() {
        let me = std::process::id() as i32;
        assert_eq!(
            super::parent(me),
            Some(std::os::unix::process::parent_id() as i32)
        );
    }
}
