//! Retries with exponential backoff, for failures that another try can
//! cure: a dropped connection, a timeout, `429` or a `5xx`.

use std::time::Duration;

/// How many times to try, and how long to wait first.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first wait; each later one doubles, capped at 8 s.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

/// An error that says whether trying again may help.
pub trait Transient {
    /// Would the same request, sent again, possibly succeed?
    fn transient(&self) -> bool;
}

impl Transient for ureq::Error {
    fn transient(&self) -> bool {
        use ureq::Error as E;
        match self {
            E::StatusCode(s) => *s == 429 || *s >= 500,
            E::Io(e) => io_transient(e),
            E::Timeout(_) | E::ConnectionFailed | E::BodyStalled => true,
            _ => false,
        }
    }
}

/// A dropped or refused connection may work next time; a TLS handshake
/// with a plain-HTTP server (`InvalidData`) never will.
fn io_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::TimedOut
            | K::Interrupted
    )
}

impl Retry {
    /// Run `call` under this policy.
    pub fn run<T, E: Transient>(&self, mut call: impl FnMut() -> Result<T, E>) -> Result<T, E> {
        let mut wait = self.backoff;
        let mut left = self.attempts.max(1);
        loop {
            left -= 1;
            match call() {
                Err(e) if left > 0 && e.transient() => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Flaky(bool);
    impl Transient for Flaky {
        fn transient(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let policy = Retry {
            attempts: 3,
            backoff: Duration::from_millis(1),
        };
        let mut n = 0;
        let r: Result<u32, Flaky> = policy.run(|| {
            n += 1;
            if n < 3 {
                Err(Flaky(true))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.ok(), Some(3));
        let mut m = 0;
        let r: Result<u32, Flaky> = policy.run(|| {
            m += 1;
            Err(Flaky(false))
        });
        assert!(r.is_err());
        assert_eq!(m, 1);
        let mut k = 0;
        let r: Result<u32, Flaky> = policy.run(|| {
            k += 1;
            Err(Flaky(true))
        });
        assert!(r.is_err());
        assert_eq!(k, 3);
    }
}
