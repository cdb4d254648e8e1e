//! Flags for reaching servers — registries, advisory URLs — shared by every
//! command that talks to one, so one set of TLS, credential and timeout
//! settings applies to all of them.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kiln_image::registry::{Credentials, RegistryOptions};

/// `--creds`, `--cert-dir`, `--tls-verify`, `--timeout`.
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Registry credentials as USER:PASS, or USER alone to read the
    /// password from the first line of stdin. Without it, kiln looks in
    /// $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json and
    /// ~/.docker/config.json (including credential helpers).
    #[arg(
        long,
        value_name = "USER[:PASS]",
        env = "KILN_REGISTRY_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Directory of extra CA certificates (*.crt) and a client certificate
    /// (*.cert with its *.key), as skopeo's --cert-dir.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Verify TLS certificates and require HTTPS. `--tls-verify=false`
    /// allows plain HTTP and unverified certificates.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// Seconds to wait to connect, and for each read, before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

impl NetArgs {
    /// The HTTP settings these flags give.
    pub fn http(&self) -> kiln_http::HttpOptions {
        kiln_http::HttpOptions {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            timeout: Duration::from_secs(self.timeout.max(1)),
            ..Default::default()
        }
    }

    /// The registry settings these flags give.
    pub fn registry(&self) -> Result<RegistryOptions> {
        let creds = match &self.creds {
            None => None,
            Some(c) => Some(parse_creds(c)?),
        };
        Ok(RegistryOptions {
            http: self.http(),
            creds,
            auth_files: None,
        })
    }

    /// An HTTP client with these settings.
    pub fn client(&self) -> Result<kiln_http::Client> {
        Ok(kiln_http::Client::new(self.http())?)
    }
}

fn parse_creds(c: &str) -> Result<Credentials> {
    if let Some(creds) = Credentials::parse(c) {
        return Ok(creds);
    }
    if c.is_empty() || c.contains(':') {
        bail!("--creds: expected USER:PASS or USER");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("--creds USER: reading the password from stdin")?;
    Ok(Credentials::new(c, line.trim_end_matches(['\r', '\n'])))
}
