//! TLS roots and client certificates. Roots are the system's bundle (as
//! OpenSSL finds it: `$SSL_CERT_FILE`, else the distribution's file) plus
//! the CAs of `--cert-dir`, so a registry with a private CA works the way
//! it does for skopeo and the docker CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::{HttpError, HttpOptions};

/// Where distributions keep the bundle of trusted CAs.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub(crate) fn config(options: &HttpOptions) -> Result<TlsConfig, HttpError> {
    let mut roots = system_roots();
    let mut client = None;
    if let Some(dir) = &options.cert_dir {
        let extra = cert_dir(dir)?;
        roots.extend(extra.cas);
        client = extra.client;
    }
    let roots = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::Specific(Arc::new(roots))
    };
    Ok(TlsConfig::builder()
        .root_certs(roots)
        .client_cert(client)
        .disable_verification(!options.tls_verify)
        .build())
}

fn system_roots() -> Vec<Certificate<'static>> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path) {
            let certs = certificates(&pem);
            if !certs.is_empty() {
                return certs;
            }
        }
    }
    Vec::new()
}

fn certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

fn private_key(pem: &[u8]) -> Option<PrivateKey<'static>> {
    ureq::tls::parse_pem(pem).find_map(|item| match item {
        Ok(PemItem::PrivateKey(k)) => Some(k),
        _ => None,
    })
}

/// What a `--cert-dir` holds.
#[derive(Debug, Default)]
pub(crate) struct CertDir {
    pub cas: Vec<Certificate<'static>>,
    pub client: Option<ClientCert>,
}

/// Read a directory laid out as `/etc/containers/certs.d/HOST/`:
/// `*.crt` CA certificates, `NAME.cert` with `NAME.key` a client pair.
pub(crate) fn cert_dir(dir: &Path) -> Result<CertDir, HttpError> {
    let fail = |path: &Path, reason: String| HttpError::Certificates {
        path: path.to_path_buf(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| fail(dir, e.to_string()))?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let mut out = CertDir::default();
    for path in names {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "crt" => {
                let pem = std::fs::read(&path).map_err(|e| fail(&path, e.to_string()))?;
                let certs = certificates(&pem);
                if certs.is_empty() {
                    return Err(fail(&path, "no PEM certificate in it".into()));
                }
                out.cas.extend(certs);
            }
            "cert" => {
                let key_path = path.with_extension("key");
                let pem = std::fs::read(&path).map_err(|e| fail(&path, e.to_string()))?;
                let chain = certificates(&pem);
                let key_pem = std::fs::read(&key_path).map_err(|e| {
                    fail(
                        &key_path,
                        format!("client certificate without its key: {e}"),
                    )
                })?;
                let key = private_key(&key_pem)
                    .ok_or_else(|| fail(&key_path, "no PEM private key in it".into()))?;
                if chain.is_empty() {
                    return Err(fail(&path, "no PEM certificate in it".into()));
                }
                out.client = Some(ClientCert::new_with_certs(&chain, key));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cert_dir_with_a_bad_ca_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not pem").unwrap();
        let err = cert_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("ca.crt") && err.contains("no PEM certificate"),
            "{err}"
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client.cert"), "").unwrap();
        let err = cert_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("client.key"), "{err}");
    }

    #[test]
    fn the_system_bundle_is_read_when_present() {
        if SYSTEM_BUNDLES.iter().any(|p| Path::new(p).is_file()) {
            assert!(!system_roots().is_empty());
        }
    }
}
