//! One repository on one registry: scheme choice, authentication (basic or
//! bearer tokens cached per scope), retries, and errors that name the
//! registry and repository but never a secret.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use kiln_http::ureq::{self, http};
use kiln_http::{Client, Transient};

use super::auth::{self, Challenge, Credentials};
use super::RegistryOptions;
use crate::error::{ImageError, Result};

/// What a request needs the right to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read manifests and blobs.
    Pull,
    /// Also write them.
    Push,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthState {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A request body, made again for each attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

/// A repository on a registry, ready for requests.
#[derive(Debug)]
pub struct Repository {
    http: Client,
    base: String,
    host: String,
    repository: String,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
    tokens: Mutex<HashMap<String, String>>,
}

impl Repository {
    /// Reach `host` and get ready to work on `repository`: pick HTTPS (or
    /// plain HTTP when TLS verification is off and HTTPS fails), learn how
    /// the registry authenticates, and find credentials.
    pub fn connect(host: &str, repository: &str, opts: &RegistryOptions) -> Result<Self> {
        let http = Client::new(opts.http.clone()).map_err(|e| ImageError::Registry {
            location: host.to_string(),
            reason: e.to_string(),
        })?;
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup(&opts.auth_files(), host, repository)?,
        };
        let mut repo = Repository {
            http,
            base: String::new(),
            host: host.to_string(),
            repository: repository.to_string(),
            creds,
            auth: Mutex::new(AuthState::Anonymous),
            tokens: Mutex::new(HashMap::new()),
        };
        repo.base = repo.pick_scheme()?;
        Ok(repo)
    }

    /// `HOST/REPO`, as errors name it.
    pub fn location(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// The repository path.
    pub fn name(&self) -> &str {
        &self.repository
    }

    /// The host, as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Registry {
            location: self.location(),
            reason: reason.into(),
        }
    }

    fn pick_scheme(&self) -> Result<String> {
        let https = format!("https://{}", self.host);
        let ping = |base: &str| {
            self.http
                .retrying(|| self.http.agent().get(format!("{base}/v2/")).call())
        };
        match ping(&https) {
            Ok(resp) => {
                self.learn_challenge(&resp);
                Ok(https)
            }
            Err(e) if !self.http.options().tls_verify => {
                let http = format!("http://{}", self.host);
                match ping(&http) {
                    Ok(resp) => {
                        self.learn_challenge(&resp);
                        Ok(http)
                    }
                    Err(e2) => Err(self.error(format!(
                        "cannot reach the registry over HTTPS ({e}) or HTTP ({e2})"
                    ))),
                }
            }
            Err(e) => Err(self.error(format!(
                "cannot reach the registry over HTTPS: {e}. For a registry that speaks plain \
                 HTTP or has a certificate kiln cannot verify, pass --tls-verify=false \
                 (or its CA with --cert-dir)"
            ))),
        }
    }

    fn learn_challenge(&self, resp: &http::Response<ureq::Body>) -> bool {
        if resp.status() != 401 {
            return false;
        }
        // Prefer a bearer challenge when the registry offers several.
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .collect();
        let header = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or(challenges.first())
            .cloned();
        let state = match header {
            Some(Challenge::Basic) => AuthState::Basic,
            Some(Challenge::Bearer { realm, service, .. }) => AuthState::Bearer { realm, service },
            None => return false,
        };
        let mut cur = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *cur != state;
        *cur = state;
        changed
    }

    /// The URL of `path` under `/v2/REPO/`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Resolve a `Location` header against the registry.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn scope(&self, access: Access, extra: &[String]) -> Vec<String> {
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut v = vec![format!("repository:{}:{actions}", self.repository)];
        v.extend(extra.iter().map(|r| format!("repository:{r}:pull")));
        v
    }

    fn authorization(&self, scopes: &[String]) -> Result<Option<String>> {
        let state = self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match state {
            AuthState::Anonymous => Ok(None),
            AuthState::Basic => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            AuthState::Bearer { realm, service } => self
                .token(&realm, service.as_deref(), scopes)
                .map(|t| Some(format!("Bearer {t}"))),
        }
    }

    fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let key = scopes.join(" ");
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(t.clone());
        }
        let resp = self
            .http
            .retrying(|| transient_status(self.token_request(realm, service, scopes)))
            .map_err(|e| self.error(format!("token service {realm}: {}", describe(&e))))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let who = if self.creds.is_some() {
                "refused the credentials"
            } else {
                "refused an anonymous token (give --creds or log in)"
            };
            return Err(self.error(format!("token service {realm} {who} (HTTP {status})")));
        }
        let body = read_limited(resp, 1 << 20)
            .map_err(|e| self.error(format!("token service {realm}: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let a: Answer = serde_json::from_slice(&body)
            .map_err(|_| self.error(format!("token service {realm}: answer is not JSON")))?;
        let token = a
            .token
            .or(a.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.error(format!("token service {realm}: no token in answer")))?;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, token.clone());
        Ok(token)
    }

    /// Ask the token service: with an identity token (an auth file's
    /// `identitytoken`), the OAuth2 refresh-token grant the docker token
    /// spec describes; otherwise a GET with HTTP basic credentials if any.
    fn token_request(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
        if let Some(refresh) = self.creds.as_ref().and_then(Credentials::identity_token) {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "kiln"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let scope = scopes.join(" ");
            form.push(("scope", &scope));
            return self.http.agent().post(realm).send_form(form);
        }
        let mut req = self.http.agent().get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scopes {
            req = req.query("scope", s);
        }
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        req.call()
    }

    /// Send a request, authenticating as the registry asks: on a `401`
    /// the challenge is learned and the request sent once more. `401` and
    /// `403` after that are errors; other statuses are the caller's.
    pub(crate) fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Payload<'_>,
        access: Access,
        mount_from: &[String],
    ) -> Result<http::Response<ureq::Body>> {
        let scopes = self.scope(access, mount_from);
        let mut tried_fresh = false;
        loop {
            let authz = self.authorization(&scopes)?;
            let resp = self
                .http
                .retrying(|| {
                    let mut b = http::Request::builder().method(method.clone()).uri(url);
                    for (k, v) in headers {
                        b = b.header(*k, v);
                    }
                    if let Some(a) = &authz {
                        b = b.header("Authorization", a);
                    }
                    let result = match body {
                        Payload::Empty => b.body(()).map(|r| self.http.agent().run(r)),
                        Payload::Bytes(bytes) => b.body(bytes).map(|r| self.http.agent().run(r)),
                    };
                    match result {
                        Ok(r) => transient_status(r),
                        Err(e) => Err(ureq::Error::Http(e)),
                    }
                })
                .map_err(|e| self.error(format!("{method} {}: {}", path_of(url), describe(&e))))?;
            match resp.status().as_u16() {
                401 if !tried_fresh => {
                    tried_fresh = true;
                    let changed = self.learn_challenge(&resp);
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&scopes.join(" "));
                    let bearer = matches!(
                        *self.auth.lock().unwrap_or_else(|p| p.into_inner()),
                        AuthState::Bearer { .. }
                    );
                    if changed || bearer || authz.is_none() {
                        continue;
                    }
                    return Err(self.unauthorized(&resp, access));
                }
                401 => return Err(self.unauthorized(&resp, access)),
                403 => return Err(self.denied("HTTP 403", access)),
                _ => return Ok(resp),
            }
        }
    }

    fn denied(&self, why: &str, access: Access) -> ImageError {
        let right = match access {
            Access::Pull => "pull",
            Access::Push => "push",
        };
        let who = match &self.creds {
            Some(c) => format!("user {:?}", c.username),
            None => "an anonymous client".into(),
        };
        self.error(format!(
            "access denied ({why}): {who} has no {right} right here"
        ))
    }

    fn unauthorized(&self, resp: &http::Response<ureq::Body>, access: Access) -> ImageError {
        let scope_short = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::challenge_error)
            .any(|e| e == "insufficient_scope");
        if scope_short {
            return self.denied("HTTP 401 insufficient_scope", access);
        }
        match &self.creds {
            Some(c) => self.error(format!(
                "authentication failed (HTTP 401) as user {:?}: wrong user name or password?",
                c.username
            )),
            None => self.error(
                "authentication required (HTTP 401): give --creds USER:PASS, or log in with \
                 skopeo/podman/docker so an auth file holds credentials",
            ),
        }
    }
}

/// Turn statuses that another try may cure into errors the retry policy
/// sees.
fn transient_status(
    r: std::result::Result<http::Response<ureq::Body>, ureq::Error>,
) -> std::result::Result<http::Response<ureq::Body>, ureq::Error> {
    let resp = r?;
    let s = resp.status().as_u16();
    if s == 429 || (500..600).contains(&s) {
        return Err(ureq::Error::StatusCode(s));
    }
    Ok(resp)
}

/// An error message for a failed exchange.
pub(crate) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(s) => format!("HTTP {s} after retries"),
        ureq::Error::Timeout(t) => {
            format!("timed out ({t}); raise --timeout if the registry is slow")
        }
        e if e.transient() => format!("{e} (after retries)"),
        e => e.to_string(),
    }
}

/// The path part of a URL, for messages (query strings may carry upload
/// state, never worth showing).
fn path_of(url: &str) -> &str {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after.find('/').map_or("/", |i| &after[i..]);
    path.split('?').next().unwrap_or(path)
}

/// Read at most `limit` bytes of a response body; more is an error.
pub(crate) fn read_limited(
    resp: http::Response<ureq::Body>,
    limit: u64,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    resp.into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader()
        .take(limit + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than {limit} bytes; refused"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_paths_not_query_strings() {
        assert_eq!(
            path_of("https://h:5000/v2/a/blobs/uploads/x?_state=secret"),
            "/v2/a/blobs/uploads/x"
        );
        assert_eq!(path_of("http://h"), "/");
    }
}
