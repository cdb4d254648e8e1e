//! Path normalisation for layer members: the rules container runtimes use.

/// Clean a layer member name into a root-relative path without leading
/// `/`: `./` prefixes and absolute names are taken relative to the root,
/// `.` and empty components vanish, and `..` pops a component.
///
/// Returns `None` when `..` would climb above the root; such members are
/// refused rather than silently clamped, since no honest image builder
/// writes them.
pub fn clean(raw: &str) -> Option<String> {
    kiln_image::archive::clean_path(raw)
}

/// The parent of a cleaned path (`""` for top-level names).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The last component of a cleaned path.
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// Join a cleaned directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_a_runtime() {
        assert_eq!(clean("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(clean("/etc//passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("./").as_deref(), Some(""));
        assert_eq!(clean("../etc/passwd"), None);
        assert_eq!(clean("a/../../x"), None);
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(file_name("a/b/c"), "c");
        assert_eq!(join("", "x"), "x");
    }
}
