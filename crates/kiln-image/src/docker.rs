//! Opening `docker save` output: `manifest.json` (legacy and
//! OCI-in-docker-save forms), an image chosen by tag, its config and its
//! layers, checked by blob digest or, in the legacy form, by diff ID.

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::image::{
    check_explicit_platform, display_name, malformed, parse_json, parse_object, read_required,
    Check, Image, Layer, OpenOptions,
};
use crate::reference::SourceRef;
use crate::spec::*;

/// The hex digest a docker-archive member name carries, if any:
/// `blobs/sha256/<hex>` (Docker 25+) or `<hex>.json` (legacy config).
fn digest_in_name(name: &str) -> Option<Digest> {
    let n = crate::archive::normalize_member(name.as_bytes());
    let hex = n
        .strip_prefix("blobs/sha256/")
        .or_else(|| n.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Does the archive tag `tag` answer to what the user typed? Docker
/// records fully qualified names (`HOST/repo:tag`); users type `repo:tag`,
/// or just the tag. Following Docker's reference grammar, a first
/// component with a `.` or `:` (or `localhost`) is a registry domain and
/// may be left out, as may the implicit `library/` namespace and `:latest`.
fn tag_matches(tag: &str, wanted: &str) -> bool {
    fn short(t: &str) -> String {
        let t = match t.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
            _ => t,
        };
        let t = t.strip_prefix("library/").unwrap_or(t);
        let name_part = t.rsplit('/').next().unwrap_or(t);
        if name_part.contains(':') {
            t.to_string()
        } else {
            format!("{t}:latest")
        }
    }
    tag == wanted
        || short(tag) == short(wanted)
        || tag.rsplit_once(':').is_some_and(|(_, t)| t == wanted)
}

pub(crate) fn open(
    source: SourceRef,
    store: Arc<dyn BlobStore>,
    reference: Option<&str>,
    opts: &OpenOptions,
) -> Result<Image> {
    let s = store.as_ref();
    let bytes = read_required(
        s,
        "manifest.json",
        "not a docker-archive (no manifest.json member)",
    )?;
    let entries: Vec<DockerManifestEntry> =
        parse_json(&bytes, &format!("{}: manifest.json", s.location()))?;
    let tags = |e: &DockerManifestEntry| e.repo_tags.clone().unwrap_or_default();
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| tags(e).iter().any(|t| tag_matches(t, r)))
            .ok_or_else(|| ImageError::NoSuchReference {
                location: s.location().to_string(),
                reference: r.to_string(),
                available: entries.iter().flat_map(tags).collect::<Vec<_>>().join(", "),
            })?,
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(malformed(s, "manifest.json lists no images")),
            many => {
                return Err(ImageError::AmbiguousImage {
                    location: s.location().to_string(),
                    count: many.len(),
                    hint: "a tag, e.g. docker-archive:FILE:repo:tag".into(),
                })
            }
        },
    };
    let config_name = crate::archive::normalize_member(entry.config.as_bytes());
    let raw_config = read_required(
        s,
        &config_name,
        &format!("config {config_name} named by manifest.json is missing"),
    )?;
    let config_digest = match digest_in_name(&config_name) {
        Some(d) => {
            d.verify(&raw_config)?;
            d
        }
        None => Digest::of(&raw_config),
    };
    let config: ImageConfig = parse_object(&raw_config, &format!("{config_name} (image config)"))?;
    check_explicit_platform(&config, opts, s)?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(malformed(
            s,
            &format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (i, (name, diff_id)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let name = crate::archive::normalize_member(name.as_bytes());
        let diff_id = Digest::parse(diff_id)?;
        if !s.contains(&name) {
            return Err(ImageError::MissingBlob {
                digest: format!("{diff_id} ({name})"),
                location: s.location().to_string(),
            });
        }
        let (digest, check) = match digest_in_name(&name) {
            Some(d) => (d.clone(), Check::Blob(d)),
            None => (diff_id.clone(), Check::DiffId(diff_id.clone())),
        };
        layers.push(Layer {
            index: i,
            digest,
            diff_id: Some(diff_id),
            media_type: String::new(),
            size: None,
            compression: None,
            name,
            check,
        });
    }
    let name = entry
        .repo_tags
        .as_ref()
        .and_then(|t| t.first().cloned())
        .unwrap_or_else(|| display_name(s));
    Ok(Image {
        source,
        name,
        manifest_digest: None,
        config_digest,
        config,
        raw_config,
        layers,
        store,
        limits: opts.limits,
    })
}

#[cfg(test)]
mod tests {
    use super::tag_matches;

    #[test]
    fn docker_tags_match_like_docker() {
        assert!(tag_matches(
            "registry.example:5000/kiln/fixture:1",
            "kiln/fixture:1"
        ));
        assert!(tag_matches("example.org/library/debian:latest", "debian"));
        assert!(tag_matches("kiln/fixture:1", "1"));
        assert!(!tag_matches("kiln/fixture:1", "kiln/other:1"));
    }
}
