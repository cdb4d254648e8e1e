//! Upstream projects: canonical names for Debian source packages (from
//! [`kiln_catalog::projects`]), upstream
//! versions from Debian versions, and library base names from file names.

/// The canonical lower-case upstream project name of a Debian source
/// (see [`kiln_catalog::projects`], which the vulnerability matcher's CPE
/// look-up shares).
pub fn project_name(source: &str) -> String {
    kiln_catalog::projects::canonical(source)
}

/// The upstream version inside a Debian version: no epoch, no Debian
/// revision, no repack suffix (`1:1.2.13.dfsg-1` → `1.2.13`,
/// `3.0.17-1~deb12u2` → `3.0.17`). `None` when what is left is not a
/// dotted version of at least two parts (`0.0~git20230123`).
pub fn upstream_version(debian: &str) -> Option<String> {
    let v = debian.split_once(':').map_or(debian, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(u, _)| u);
    let v = v.split(['~', '+']).next().unwrap_or(v);
    let v = v
        .trim_end_matches(".dfsg")
        .trim_end_matches(".ds")
        .trim_end_matches(".orig");
    let parts: Vec<&str> = v.split('.').collect();
    let dotted = parts.len() >= 2
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && !parts[0].is_empty()
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts.iter().any(|p| p.chars().any(|c| c != '0'));
    dotted.then(|| v.to_string())
}

/// The numeric components of a version (`2.5.13` → `[2, 5, 13]`); `None`
/// if any component is not a number (`1.1.1w`).
pub fn components(version: &str) -> Option<Vec<u64>> {
    version.split('.').map(|p| p.parse().ok()).collect()
}

/// A shared library's base name and the version in its file name:
/// `libbrotlidec.so.1.0.9` → (`libbrotlidec`, `1.0.9`); auditwheel's
/// `libtiff-0709261b.so.6.1.0` → (`libtiff`, `6.1.0`); versioned bases
/// such as `libldap-2.5.so.0` lose their version (`libldap`, `0`).
pub fn library_name(file_name: &str) -> Option<(String, String)> {
    let (base, ver) = file_name.split_once(".so")?;
    let ver = ver.strip_prefix('.').unwrap_or(ver);
    if !base.starts_with("lib")
        || !(ver.is_empty() || ver.starts_with(|c: char| c.is_ascii_digit()))
    {
        return None;
    }
    // auditwheel inserts the first 8 hex digits of the library's hash
    // after its base name, once per repair (numpy's libs went through two:
    // `libgfortran-040039e1-0352e75f.so.5.0.0`), and before any version in
    // the name (`libldap-2-89849551.4.so.2`, for `libldap-2.4.so.2`).
    let mut kept = String::with_capacity(base.len());
    for (i, part) in base.split('-').enumerate() {
        let (word, rest) = match part.find('.') {
            Some(dot) => part.split_at(dot),
            None => (part, ""),
        };
        let hash = i > 0 && word.len() == 8 && word.chars().all(|c| c.is_ascii_hexdigit());
        if hash {
            kept.push_str(rest);
        } else {
            if i > 0 {
                kept.push('-');
            }
            kept.push_str(part);
        }
    }
    let mut base = kept.as_str();
    if let Some((b, v)) = base.rsplit_once('-') {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            base = b;
        }
    }
    Some((base.to_string(), ver.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects() {
        assert_eq!(project_name("openssl"), "openssl");
        assert_eq!(project_name("tiff"), "libtiff");
        assert_eq!(project_name("postgresql-15"), "postgresql");
        assert_eq!(project_name("python3.11"), "python3.11");
        assert_eq!(project_name("libpng1.6"), "libpng");
        assert_eq!(project_name("krb5"), "mit-krb5");
    }

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream_version("3.0.17-1~deb12u2").unwrap(), "3.0.17");
        assert_eq!(upstream_version("1:1.2.13.dfsg-1").unwrap(), "1.2.13");
        assert_eq!(upstream_version("2.5.13+dfsg-5").unwrap(), "2.5.13");
        assert_eq!(upstream_version("8.39-15").unwrap(), "8.39");
        assert_eq!(upstream_version("1.1.1w-0+deb11u1").unwrap(), "1.1.1w");
        assert_eq!(upstream_version("0.0~git20230123.b2528b0-1"), None);
        assert_eq!(upstream_version("20230311"), None);
        assert_eq!(components("2.5.13"), Some(vec![2, 5, 13]));
        assert_eq!(components("1.1.1w"), None);
    }

    #[test]
    fn library_names() {
        let n = |s| library_name(s).unwrap();
        assert_eq!(
            n("libbrotlidec.so.1.0.9"),
            ("libbrotlidec".into(), "1.0.9".into())
        );
        assert_eq!(
            n("libtiff-0709261b.so.6.1.0"),
            ("libtiff".into(), "6.1.0".into())
        );
        assert_eq!(n("libldap-2.5.so.0"), ("libldap".into(), "0".into()));
        assert_eq!(
            n("libldap-2-89849551.4.so.2.10.9"),
            ("libldap".into(), "2.10.9".into())
        );
        assert_eq!(
            n("libgfortran-040039e1-0352e75f.so.5.0.0"),
            ("libgfortran".into(), "5.0.0".into())
        );
        assert_eq!(
            n("libpcre2-8-516f4c9d.so.0.7.1"),
            ("libpcre2".into(), "0.7.1".into())
        );
        assert_eq!(
            n("libcom_err-2abe824b.so.2.1"),
            ("libcom_err".into(), "2.1".into())
        );
        assert_eq!(
            n("libpng16-8b7e0db9.so.16.43.0"),
            ("libpng16".into(), "16.43.0".into())
        );
        assert_eq!(n("libz.so"), ("libz".into(), "".into()));
        assert!(library_name("_rust.abi3.so").is_none());
        assert!(library_name("libfoo.sources").is_none());
    }
}
