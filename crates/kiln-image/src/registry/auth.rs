//! Registry credentials, found where skopeo and the docker CLI keep them,
//! and the `WWW-Authenticate` challenges a registry answers with.
//!
//! Order: `--creds`, then `$REGISTRY_AUTH_FILE`, then
//! `$XDG_RUNTIME_DIR/containers/auth.json`, then `~/.docker/config.json`
//! (`auths`, `credHelpers`, `credsStore`). A secret never reaches a
//! `Debug` or `Display` string.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use crate::error::ImageError;

/// A user name and its secret (a password or an identity token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// Credentials from a user name and secret.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            secret: secret.into(),
        }
    }

    /// `USER:PASS`, as `--creds` takes it.
    pub fn parse(s: &str) -> Option<Self> {
        let (u, p) = s.split_once(':')?;
        (!u.is_empty()).then(|| Credentials::new(u, p))
    }

    /// The identity (refresh) token, when these credentials are one
    /// rather than a password (user `<token>`, as docker records them).
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == "<token>").then_some(self.secret.as_str())
    }

    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The auth files to look in, in order.
pub fn auth_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(p).join("containers/auth.json"));
    }
    let docker = std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    if let Some(d) = docker {
        out.push(d.join("config.json"));
    }
    out
}

#[derive(serde::Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// Find credentials for `host` and `repository` in `files`, the first file
/// that has an entry winning. The most specific key (`host/repo/…`) wins
/// within a file, as containers-auth.json(5) says.
pub fn lookup(
    files: &[PathBuf],
    host: &str,
    repository: &str,
) -> Result<Option<Credentials>, ImageError> {
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ImageError::io(path, e)),
        };
        let file: AuthFile = serde_json::from_slice(&bytes).map_err(|err| ImageError::Json {
            what: path.display().to_string(),
            err,
        })?;
        if let Some(c) = from_file(&file, path, host, repository)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn from_file(
    file: &AuthFile,
    path: &Path,
    host: &str,
    repository: &str,
) -> Result<Option<Credentials>, ImageError> {
    if let Some(helper) = file.cred_helpers.get(host) {
        return helper_get(helper, host).map(Some);
    }
    let mut keys: Vec<String> = Vec::new();
    let mut scope = format!("{host}/{repository}");
    loop {
        keys.push(scope.clone());
        match scope.rsplit_once('/') {
            Some((up, _)) => scope = up.to_string(),
            None => break,
        }
    }
    for key in &keys {
        let entry = file.auths.iter().find(|(k, _)| normalise_key(k) == *key);
        if let Some((_, e)) = entry {
            return decode_entry(e, path, key).map(Some);
        }
    }
    if let Some(store) = &file.creds_store {
        return helper_get(store, host).map(Some);
    }
    Ok(None)
}

/// `https://host/v1/` (old docker keys) is `host`.
fn normalise_key(k: &str) -> String {
    let k = k
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k
        .strip_suffix("/v1/")
        .or_else(|| k.strip_suffix("/v2/"))
        .unwrap_or(k);
    k.trim_end_matches('/').to_string()
}

fn decode_entry(e: &AuthEntry, path: &Path, key: &str) -> Result<Credentials, ImageError> {
    let bad = |reason: &str| ImageError::Malformed {
        location: format!("{}: auths[{key:?}]", path.display()),
        reason: reason.to_string(),
    };
    if let Some(token) = &e.identity_token {
        if !token.is_empty() {
            return Ok(Credentials::new("<token>", token.clone()));
        }
    }
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(Credentials::new(u.clone(), p.clone()));
    }
    let auth = e.auth.as_deref().ok_or_else(|| bad("no auth field"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("auth is not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("auth is not UTF-8"))?;
    Credentials::parse(&text).ok_or_else(|| bad("auth is not USER:PASSWORD"))
}

#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Ask `docker-credential-NAME get` for `host`'s credentials.
fn helper_get(name: &str, host: &str) -> Result<Credentials, ImageError> {
    let program = format!("docker-credential-{name}");
    let fail = |reason: String| ImageError::Registry {
        location: host.to_string(),
        reason: format!("credential helper {program}: {reason}"),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        // The helper's own message (e.g. "credentials not found"); it never
        // carries the secret.
        let msg = String::from_utf8_lossy(&out.stdout);
        return Err(fail(format!("{} ({})", out.status, msg.trim())));
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("answer is not JSON with Username and Secret".into()))?;
    let user = if a.username == "<token>" {
        "<token>".to_string()
    } else {
        a.username
    };
    Ok(Credentials::new(user, a.secret))
}

/// What a `401` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic.
    Basic,
    /// A bearer token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// `service=` for the token request.
        service: Option<String>,
        /// The scope the registry said it needs, if it said.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm").filter(|r| !r.is_empty())?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// The `error=` of a challenge (`insufficient_scope` when the token lacks
/// the right asked for).
pub fn challenge_error(header: &str) -> Option<String> {
    let (_, rest) = header.trim().split_once(' ')?;
    parse_params(rest).remove("error")
}

/// `k="v",k2=v2` with quoted strings that may hold commas.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn auth_files_most_specific_key_and_no_secret_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &a,
            format!(
                r#"{{"auths":{{"reg:5000":{{"auth":"{}"}},"reg:5000/team/app":{{"auth":"{}"}},"https://old.io/v1/":{{"auth":"{}"}}}}}}"#,
                enc("all:one"),
                enc("app:two"),
                enc("old:three")
            ),
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), a];
        let c = lookup(&files, "reg:5000", "team/app").unwrap().unwrap();
        assert_eq!(c, Credentials::new("app", "two"));
        let c = lookup(&files, "reg:5000", "team/other").unwrap().unwrap();
        assert_eq!(c, Credentials::new("all", "one"));
        assert_eq!(
            lookup(&files, "old.io", "x").unwrap().unwrap().username,
            "old"
        );
        assert!(lookup(&files, "none.io", "x").unwrap().is_none());
        assert!(!format!("{c:?}").contains("one"));
    }

    #[test]
    fn a_credential_helper_is_asked_for_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-kilntest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\n[ \"$host\" = reg.io ] || exit 1\necho '{\"Username\":\"u\",\"Secret\":\"s3\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let file: AuthFile =
            serde_json::from_str(r#"{"credHelpers":{"reg.io":"kilntest"}}"#).unwrap();
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut path = std::ffi::OsString::from(dir.path());
        path.push(":");
        path.push(&old);
        // Only this test sets PATH in this crate's unit tests.
        std::env::set_var("PATH", &path);
        let c = from_file(&file, Path::new("cfg"), "reg.io", "a")
            .unwrap()
            .unwrap();
        assert_eq!(c, Credentials::new("u", "s3"));
        let err = from_file(&file, Path::new("cfg"), "reg.io:1", "a");
        assert!(err.unwrap().is_none());
    }
}
