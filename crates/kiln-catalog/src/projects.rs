//! Upstream projects: the names they release under, the names they go by
//! elsewhere (Debian source packages, library base names), and their NVD
//! CPE products. The signature DB names what it learns with
//! [`canonical`]; the vulnerability matcher finds CPEs with [`cpes`]; both
//! read this one table, so a component's name always maps to its CPE.

/// One upstream project.
#[derive(Debug)]
pub struct Project {
    /// The name upstream releases under, lower case.
    pub name: &'static str,
    /// Other names for it: Debian source packages, library base names.
    pub aliases: &'static [&'static str],
    /// NVD CPE `vendor:product` pairs.
    pub cpes: &'static [&'static str],
}

const fn p(
    name: &'static str,
    aliases: &'static [&'static str],
    cpes: &'static [&'static str],
) -> Project {
    Project {
        name,
        aliases,
        cpes,
    }
}

/// The projects whose names differ somewhere, or that have CPEs. Any
/// other Debian source is its own project name, less a version suffix.
pub const PROJECTS: &[Project] = &[
    p("openssl", &["libssl", "libcrypto"], &["openssl:openssl"]),
    p("zlib", &["libz"], &["zlib:zlib", "gnu:zlib"]),
    p("libpng", &["libpng1.6", "libpng16"], &["libpng:libpng"]),
    p(
        "libjpeg-turbo",
        &["libjpeg"],
        &["libjpeg-turbo:libjpeg-turbo"],
    ),
    p("libtiff", &["tiff"], &["libtiff:libtiff"]),
    p("libwebp", &["libsharpyuv"], &["webmproject:libwebp"]),
    p("freetype", &["libfreetype"], &["freetype:freetype"]),
    p("harfbuzz", &["libharfbuzz"], &["harfbuzz_project:harfbuzz"]),
    p(
        "openjpeg",
        &["openjpeg2", "libopenjp2"],
        &["uclouvain:openjpeg"],
    ),
    p("xz", &["xz-utils", "liblzma"], &["tukaani:xz"]),
    p(
        "brotli",
        &["libbrotlidec", "libbrotlicommon", "libbrotlienc"],
        &["google:brotli"],
    ),
    p("libxml2", &[], &["xmlsoft:libxml2"]),
    p("libxslt", &["libexslt"], &["xmlsoft:libxslt"]),
    p("curl", &["libcurl"], &["haxx:curl", "haxx:libcurl"]),
    p("expat", &["libexpat"], &["libexpat_project:libexpat"]),
    p("sqlite", &["sqlite3", "libsqlite3"], &["sqlite:sqlite"]),
    p("postgresql", &["libpq"], &["postgresql:postgresql"]),
    p("openldap", &["libldap", "liblber"], &["openldap:openldap"]),
    p(
        "cyrus-sasl",
        &["cyrus-sasl2", "libsasl2"],
        &["cmu:cyrus-sasl"],
    ),
    p(
        "mit-krb5",
        &["krb5", "libkrb5", "libgssapi_krb5", "libk5crypto"],
        &["mit:kerberos_5"],
    ),
    p("libaom", &["aom"], &["aomedia:aomedia"]),
    p("raqm", &["libraqm"], &[]),
    p("zstd", &["libzstd"], &["facebook:zstandard"]),
    p("lz4", &["liblz4"], &["lz4_project:lz4"]),
    p("pcre", &["pcre3", "libpcre"], &["pcre:pcre"]),
    p("pcre2", &["libpcre2-8"], &["pcre:pcre2"]),
    p("libgcrypt", &["libgcrypt20"], &["gnupg:libgcrypt"]),
    p("gnutls", &["gnutls28"], &["gnu:gnutls"]),
    p("nettle", &[], &["nettle_project:nettle"]),
    p("berkeley-db", &["db5.3"], &["oracle:berkeley_db"]),
    p("libidn2", &[], &["gnu:libidn2"]),
    p("nghttp2", &["libnghttp2"], &["nghttp2:nghttp2"]),
    p("libssh2", &[], &["libssh2:libssh2"]),
    p("libssh", &[], &["libssh:libssh"]),
    p("libffi", &[], &["libffi_project:libffi"]),
    p(
        "libzmq",
        &["zeromq3", "zeromq"],
        &["zeromq:libzmq", "zeromq:zeromq"],
    ),
    p("libsodium", &[], &["libsodium_project:libsodium"]),
    p("librdkafka", &[], &["librdkafka_project:librdkafka"]),
    p("libgit2", &[], &["libgit2_project:libgit2"]),
    p("geos", &["libgeos", "libgeos_c"], &["osgeo:geos"]),
    p("hdf5", &["libhdf5", "libhdf5_hl"], &["hdfgroup:hdf5"]),
    p("openblas", &["libopenblas"], &["openblas_project:openblas"]),
    p(
        "lcms2",
        &["liblcms2"],
        &["littlecms:little_cms_color_engine"],
    ),
    p(
        "leptonica",
        &["leptonlib", "liblept"],
        &["leptonica:leptonica"],
    ),
    p(
        "tesseract",
        &["libtesseract"],
        &["tesseract_project:tesseract"],
    ),
    p("jbig2dec", &["libjbig2dec"], &["artifex:jbig2dec"]),
    p("mupdf", &["libmupdf"], &["artifex:mupdf"]),
    p("protobuf", &["libprotobuf"], &["google:protobuf"]),
    p("flatbuffers", &[], &["google:flatbuffers"]),
    p("openexr", &["libopenexr"], &["openexr:openexr"]),
    p("cjson", &["libcjson"], &["cjson_project:cjson"]),
    p("xxhash", &["libxxhash"], &[]),
    p("bzip2", &["libbz2"], &["bzip:bzip2"]),
    p("libxau", &[], &[]),
    p("libxcb", &[], &[]),
    p("libavif", &[], &["aomedia:libavif"]),
    p("dav1d", &["libdav1d"], &["videolan:dav1d"]),
    p("keyutils", &["libkeyutils"], &[]),
    p("libunistring", &[], &["gnu:libunistring"]),
    p("libpsl", &[], &[]),
    p(
        "e2fsprogs",
        &["libcom_err", "com_err"],
        &["e2fsprogs_project:e2fsprogs"],
    ),
];

/// The upstream name for `name`: a Debian source package, a library base
/// name, or already the project's own name. Versioned source names
/// (`postgresql-15`, `python3.11`) drop the version; anything unknown is
/// its own name.
pub fn canonical(name: &str) -> String {
    if let Some(p) = PROJECTS
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name))
    {
        return p.name.to_string();
    }
    let base = name
        .strip_suffix(|c: char| c.is_ascii_digit())
        .and_then(|_| {
            let cut = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            cut.strip_suffix('-')
        });
    match base {
        Some(b) if !b.is_empty() => canonical(b),
        _ => name.to_string(),
    }
}

/// The NVD CPE products of a canonical project name.
pub fn cpes(project: &str) -> &'static [&'static str] {
    PROJECTS
        .iter()
        .find(|p| p.name == project)
        .map_or(&[], |p| p.cpes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_library_names_map_to_upstream_names() {
        assert_eq!(canonical("openssl"), "openssl");
        assert_eq!(canonical("tiff"), "libtiff");
        assert_eq!(canonical("zeromq3"), "libzmq");
        assert_eq!(canonical("libpng1.6"), "libpng");
        assert_eq!(canonical("postgresql-15"), "postgresql");
        assert_eq!(canonical("leptonlib"), "leptonica");
        assert_eq!(canonical("krb5"), "mit-krb5");
        assert_eq!(canonical("expat"), "expat");
        assert_eq!(canonical("libexpat"), "expat");
        assert_eq!(canonical("python3.11"), "python3.11");
        assert_eq!(canonical("somelib"), "somelib");
    }

    #[test]
    fn every_name_is_unique_and_every_cpe_has_a_vendor() {
        let mut seen = std::collections::HashSet::new();
        for p in PROJECTS {
            assert!(seen.insert(p.name), "{} twice", p.name);
            for a in p.aliases {
                assert!(seen.insert(a) || *a == p.name, "alias {a} twice");
            }
            for c in p.cpes {
                assert_eq!(c.split(':').count(), 2, "{c}");
            }
        }
        assert_eq!(cpes("libzmq"), &["zeromq:libzmq", "zeromq:zeromq"]);
        assert!(cpes("unknown").is_empty());
    }
}
