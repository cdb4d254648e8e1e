//! `registry:HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]` (and skopeo's
//! `docker://…`): which registry, repository and manifest.

use std::fmt;

use crate::digest::Digest;
use crate::error::ImageError;

/// A manifest in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `HOST[:PORT]`, as typed.
    pub host: String,
    /// The repository path, e.g. `team/app`.
    pub repository: String,
    /// The tag, when the reference names one.
    pub tag: Option<String>,
    /// The manifest digest, when the reference pins one.
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// Parse what follows the transport prefix.
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        let bad = |reason: &str| ImageError::BadReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let rest = input.trim_start_matches("//");
        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (rest, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (name, None),
        };
        let (host, repository) = name
            .split_once('/')
            .ok_or_else(|| bad("expected HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]"))?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                "the first part must be the registry host (HOST[:PORT]/REPOSITORY); \
                 kiln assumes no default registry",
            ));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository path components are lowercase letters, digits and . _ -",
            ));
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("a tag is up to 128 letters, digits, . _ and -"));
            }
        }
        Ok(RegistryRef {
            host: host.to_string(),
            repository: repository.to_string(),
            tag: if tag.is_none() && digest.is_none() {
                Some("latest".into())
            } else {
                tag
            },
            digest,
        })
    }

    /// What the manifest endpoint is asked for: the digest if pinned,
    /// else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// `HOST/REPO`, as errors name the place.
    pub fn repo_location(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Self {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path
/// component.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_with_ports_tags_and_digests() {
        let r = RegistryRef::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let r = RegistryRef::parse("//localhost/app").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RegistryRef::parse(&format!("reg.example:443/a/b@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.to_string(), format!("reg.example:443/a/b@{d}"));
    }

    #[test]
    fn no_default_registry_and_no_invalid_names() {
        for bad in [
            "alpine",
            "library/alpine:3",
            "h.io/App",
            "h.io/a//b",
            "h.io/a:b@x",
        ] {
            assert!(RegistryRef::parse(bad).is_err(), "{bad}");
        }
    }
}
