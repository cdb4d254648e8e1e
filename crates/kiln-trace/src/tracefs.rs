//! tracefs, where libbpf finds the ids of the syscall tracepoints. It is
//! not mounted by default on these machines: mount it when needed and
//! unmount only what kiln mounted.

use std::path::Path;

use crate::error::{Result, TraceError};

const TRACEFS: &str = "/sys/kernel/tracing";

/// Unmounts tracefs on drop if this process mounted it.
pub(crate) struct Tracefs {
    mounted: bool,
}

impl Tracefs {
    pub(crate) fn ensure() -> Result<Tracefs> {
        if Path::new(TRACEFS).join("events/syscalls").is_dir() {
            return Ok(Tracefs { mounted: false });
        }
        // SAFETY: constant, valid C strings.
        let r = unsafe {
            libc::mount(
                c"tracefs".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(TraceError::Tracefs {
                path: TRACEFS.into(),
                err: std::io::Error::last_os_error(),
            });
        }
        Ok(Tracefs { mounted: true })
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if self.mounted {
            // SAFETY: constant path; a lazy unmount never blocks.
            unsafe { libc::umount2(c"/sys/kernel/tracing".as_ptr(), libc::MNT_DETACH) };
        }
    }
}
