//! `os-release`: which distribution the image says it is.

use kiln_tree::Tree;

use crate::package::{Distro, Unknown};

/// Where os-release lives, in the order systemd reads it.
pub const PATHS: &[&str] = &["etc/os-release", "usr/lib/os-release"];

/// Parse the shell-style `KEY="value"` lines of os-release.
pub fn parse(text: &str) -> Option<Distro> {
    let mut d = Distro::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unquote(v.trim());
        match k.trim() {
            "ID" => d.id = v.to_lowercase(),
            "VERSION_ID" => d.version_id = Some(v),
            "VERSION_CODENAME" => d.codename = Some(v),
            "PRETTY_NAME" => d.pretty_name = Some(v),
            "ID_LIKE" => d.id_like = v.split_whitespace().map(str::to_lowercase).collect(),
            _ => {}
        }
    }
    (!d.id.is_empty()).then_some(d)
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Find and parse the image's os-release.
pub fn find(tree: &Tree, unknowns: &mut Vec<Unknown>) -> Option<Distro> {
    for p in PATHS {
        match tree.lookup(p) {
            Ok(_) => {}
            // Absent (or a link to nothing inside the image): try the next.
            Err(kiln_tree::TreeError::NotFound { .. }) => continue,
            Err(e) => {
                unknowns.push(Unknown {
                    path: format!("/{p}"),
                    reason: e.to_string(),
                });
                continue;
            }
        }
        match tree.read(p, 1 << 20) {
            Ok(bytes) => match parse(&String::from_utf8_lossy(&bytes)) {
                Some(d) => return Some(d),
                None => unknowns.push(Unknown {
                    path: format!("/{p}"),
                    reason: "os-release has no ID".into(),
                }),
            },
            Err(e) => unknowns.push(Unknown {
                path: format!("/{p}"),
                reason: e.to_string(),
            }),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_bookworm() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let d = parse(text).unwrap();
        assert_eq!(d.id, "debian");
        assert_eq!(d.qualifier().as_deref(), Some("debian-12"));
        assert_eq!(d.codename.as_deref(), Some("bookworm"));
        assert!(parse("NAME=x\n").is_none());
    }
}
