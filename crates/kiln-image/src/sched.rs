//! Scheduling: keep the inflater on a CPU.
//!
//! A layer is read by a pipeline (blob read and SHA-256, inflate, tar,
//! hashing and ELF reading on a pool, signature look-ups), and inflating
//! is its critical path: every other stage has slack, buffered chunks or
//! queued files. On a 2-core machine the other stages need about as much
//! CPU as the inflater, and each time one of them was woken (a pool job
//! queued, a chunk taken), the kernel let it preempt the inflater: 248
//! preemptions in one scan of a 407 MiB layer (`perf sched`), and the
//! inflater ran 551 ms of a 641 ms span.
//!
//! `SCHED_BATCH` threads do not preempt on wake-up; they wait for the
//! running thread's slice to end, and otherwise get the same share of the
//! CPU as any thread, so this costs other processes nothing. The CLI puts
//! its scanning thread in that class before it starts any other thread
//! (they inherit it) and the inflater alone returns to `SCHED_OTHER`.
//! Interleaved, medians of 21: 670 ms without, 656 ms with.

/// Make the calling thread, and every thread it starts from now on,
/// `SCHED_BATCH`, so those threads never preempt an inflater when woken.
/// Unprivileged and reversible; an error means the kernel refused and
/// nothing changed.
pub fn batch_from_here() -> std::io::Result<()> {
    set_policy(libc::SCHED_BATCH)
}

/// Called on the inflater's thread: a thread that inherited
/// `SCHED_BATCH` returns to `SCHED_OTHER`. Any other class (real-time,
/// idle) was someone's deliberate choice and is left alone.
pub(crate) fn inflater() {
    // SAFETY: sched_getscheduler only reads the calling thread's policy.
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_BATCH {
        // A refusal leaves the thread as it was: still correct, a little slower.
        let _ = set_policy(libc::SCHED_OTHER);
    }
}

fn set_policy(policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0
    // is the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn batch_is_inherited_and_the_inflater_leaves_it() {
        std::thread::spawn(|| {
            batch_from_here().unwrap();
            assert_eq!(policy(), libc::SCHED_BATCH);
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, libc::SCHED_BATCH, "threads inherit the class");
            let inflater = std::thread::spawn(|| {
                inflater();
                policy()
            });
            assert_eq!(inflater.join().unwrap(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_inflater_outside_batch_is_left_alone() {
        std::thread::spawn(|| {
            inflater();
            assert_eq!(policy(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
