//! kiln's HTTP client, in one place so that advisories, registries and DB
//! transfer share one TLS configuration (system roots, `--cert-dir`,
//! `--tls-verify=false`), one proxy configuration (the usual `HTTPS_PROXY`,
//! `HTTP_PROXY`, `NO_PROXY` variables), one timeout and one retry policy.
//!
//! The client never names a host: every URL comes from the user.
#![deny(missing_docs)]

mod retry;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use retry::{Retry, Transient};
pub use ureq;

/// Errors setting the client up.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A certificate directory or file could not be read or parsed.
    #[error("{path}: {reason}")]
    Certificates {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// How to reach servers.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Verify TLS certificates (and refuse plain HTTP where the caller
    /// asks). `--tls-verify=false` turns this off.
    pub tls_verify: bool,
    /// skopeo's `--cert-dir`: `*.crt` are extra CAs, `*.cert` + `*.key`
    /// a client certificate.
    pub cert_dir: Option<PathBuf>,
    /// Connect timeout, and the longest a read may wait for data.
    pub timeout: Duration,
    /// Attempts for a request that fails transiently.
    pub retry: Retry,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tls_verify: true,
            cert_dir: None,
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
        }
    }
}

/// A configured agent plus the policy it was made with.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    options: HttpOptions,
}

impl Client {
    /// A client for `options`: TLS roots from the system bundle plus
    /// `cert_dir`, status codes returned (not turned into errors), and
    /// redirects followed without forwarding credentials to another host.
    pub fn new(options: HttpOptions) -> Result<Self, HttpError> {
        let tls = tls::config(&options)?;
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(options.timeout))
            .timeout_per_read(Some(options.timeout))
            .timeout_per_write(Some(options.timeout))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { agent, options })
    }

    /// The underlying agent, for building requests.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// The options this client was made with.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// Run `call` until it succeeds, fails for good, or the attempts run
    /// out, sleeping with exponential backoff between tries.
    pub fn retrying<T, E: Transient>(&self, call: impl FnMut() -> Result<T, E>) -> Result<T, E> {
        self.options.retry.run(call)
    }
}
