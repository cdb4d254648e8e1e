//! Squashing real layer tars (written here with the tar format's own
//! headers, so odd names like `./x`, `/x`, `../x` and whiteouts can be
//! expressed) into an OCI layout written by kiln-image. Where skopeo is
//! installed the layout is first checked with `skopeo inspect`.

use std::path::Path;
use std::process::Command;

use kiln_image::write::LayoutWriter;
use kiln_image::{spec::ImageConfig, Compression, OpenOptions, Source, SourceRef};
use kiln_tree::{BuildOptions, Kind, Tree, TreeError};

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A tar with names written verbatim into the header (no sanitising).
fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            E::Dir(n) => (n, tar::EntryType::Directory, b"", None),
            E::File(n, d) => (n, tar::EntryType::Regular, d, None),
            E::Link(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
            E::Hard(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
        };
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn image(dir: &Path, layers: &[Vec<u8>], compression: Compression) -> Tree {
    let mut w = LayoutWriter::create(dir).unwrap();
    let descs: Vec<_> = layers
        .iter()
        .map(|l| w.add_layer(l, compression).unwrap())
        .collect();
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    w.add_image(config, &descs, Some("test")).unwrap();
    w.finish().unwrap();
    skopeo_check(dir);
    open(dir).unwrap()
}

fn open(dir: &Path) -> Result<Tree, TreeError> {
    let r = SourceRef::parse(&format!("oci-dir:{}:test", dir.display())).unwrap();
    let src = Source::open(&r, &OpenOptions::default())?;
    let opts = BuildOptions {
        hash: true,
        capture: Box::new(|p, _| p.starts_with("etc/")),
        // Facts: the first byte of each file, to check they follow links.
        inspect: Some(Box::new(|_, d: &[u8]| {
            d.first()
                .map(|b| std::sync::Arc::new(*b) as kiln_tree::Facts)
        })),
        ..Default::default()
    };
    Tree::build(src, &opts)
}

fn skopeo_check(dir: &Path) {
    let Ok(out) = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:test", dir.display()))
        .output()
    else {
        eprintln!("skipping skopeo inspect: skopeo is not installed (apt-get install skopeo)");
        return;
    };
    assert!(
        out.status.success(),
        "skopeo rejects the fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn whiteouts_opaque_dirs_and_attribution() {
    let d = tempfile::tempdir().unwrap();
    let l0 = layer(&[
        E::Dir("./"),
        E::Dir("./etc/"),
        E::File("./etc/a", b"a0"),
        E::File("./etc/gone", b"x"),
        E::Dir("./opt/data/"),
        E::File("./opt/data/old1", b"1"),
        E::Dir("./opt/data/sub/"),
        E::File("./opt/data/sub/old2", b"2"),
        E::Dir("./var/cache/"),
        E::File("./var/cache/c", b"c"),
    ]);
    let l1 = layer(&[
        // The opaque marker comes after this layer's own file: it must still
        // only hide the lower layer's contents.
        E::File("opt/data/new", b"n"),
        E::File("opt/data/.wh..wh..opq", b""),
        E::File("etc/.wh.gone", b""),
        E::File("var/.wh.cache", b""),
        E::File("/etc/a", b"a1"),
    ]);
    let t = image(d.path(), &[l0, l1], Compression::Gzip);
    assert!(t.get("etc/gone").is_none());
    assert!(t.get("var/cache").is_none() && t.get("var/cache/c").is_none());
    assert!(t.get("opt/data/old1").is_none());
    assert!(t.get("opt/data/sub/old2").is_none());
    assert_eq!(t.get("opt/data/new").unwrap().layer, Some(1));
    assert!(t.get("opt/data").unwrap().is_dir());
    let a = t.get("etc/a").unwrap();
    assert_eq!(a.layer, Some(1));
    assert_eq!(&*t.read("etc/a", 100).unwrap(), b"a1");
    assert_eq!(t.layers().len(), 2);
    // No whiteout file itself is visible.
    assert!(t.iter().all(|(p, _)| !p.contains(".wh.")));
}

#[test]
fn hard_links_and_symlinks_resolve_inside_the_root() {
    let d = tempfile::tempdir().unwrap();
    let l0 = layer(&[
        E::Dir("usr/bin/"),
        E::Dir("usr/lib/"),
        E::File("usr/lib/os-release", b"ID=kilntest\n"),
        E::Link("bin", "usr/bin"),
        E::Dir("etc/"),
        E::Link("etc/os-release", "../../../../../usr/lib/os-release"),
        E::Link("etc/abs", "/usr/lib/os-release"),
        E::Link("etc/loop1", "loop2"),
        E::Link("etc/loop2", "loop1"),
        E::Link("etc/escape", "../../../../../../etc/hostname"),
    ]);
    let l1 = layer(&[
        // Written through the `bin` symlink, as after usrmerge.
        E::File("bin/tool", b"#!/bin/sh\n"),
        E::Hard("usr/bin/tool2", "usr/bin/tool"),
    ]);
    let t = image(d.path(), &[l0, l1], Compression::Zstd);
    assert_eq!(t.get("bin").unwrap().kind, Kind::Symlink);
    assert!(t.get("usr/bin/tool").unwrap().is_file());
    let tool2 = t.get("usr/bin/tool2").unwrap();
    assert!(tool2.is_file());
    assert_eq!(tool2.digest, t.get("usr/bin/tool").unwrap().digest);
    assert_eq!(
        tool2.facts::<u8>(),
        Some(&b'#'),
        "hard links carry their target's facts"
    );
    assert_eq!(&*t.read("usr/bin/tool2", 100).unwrap(), b"#!/bin/sh\n");
    assert_eq!(&*t.read("etc/os-release", 100).unwrap(), b"ID=kilntest\n");
    assert_eq!(&*t.read("etc/abs", 100).unwrap(), b"ID=kilntest\n");
    assert!(matches!(
        t.read("etc/loop1", 100),
        Err(TreeError::SymlinkLoop { .. })
    ));
    // The host has /etc/hostname; the image does not, and must not reach it.
    match t.read("etc/escape", 100) {
        Err(TreeError::NotFound { path }) => assert_eq!(path, "etc/hostname"),
        other => panic!("escape was not contained: {other:?}"),
    }
    // Content is re-read from the layer when it was not captured.
    assert!(t.get("usr/lib/os-release").unwrap().data.is_none());
}

#[test]
fn plain_tar_layers_and_parent_dirs_are_implied() {
    let d = tempfile::tempdir().unwrap();
    let l0 = layer(&[E::File("deep/ly/nested/file", b"x")]);
    let t = image(d.path(), &[l0], Compression::None);
    assert!(t.get("deep/ly").unwrap().is_dir());
    assert_eq!(t.get("deep/ly/nested/file").unwrap().size, 1);
}

#[test]
fn member_climbing_out_of_the_root_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut w = LayoutWriter::create(d.path()).unwrap();
    let l = w
        .add_layer(
            &layer(&[E::File("../../etc/evil", b"x")]),
            Compression::Gzip,
        )
        .unwrap();
    w.add_image(ImageConfig::default(), &[l], Some("test"))
        .unwrap();
    w.finish().unwrap();
    let err = open(d.path()).unwrap_err();
    assert!(matches!(err, TreeError::PathEscape { .. }), "{err}");
    assert!(err.to_string().contains("../../etc/evil"), "{err}");
}

#[test]
fn dir_source_symlinks_never_reach_the_host() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("usr/lib/os-release"), "ID=kilntest\n").unwrap();
    std::os::unix::fs::symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("etc/hostname-link")).unwrap();
    let src = Source::open(
        &SourceRef::parse(&format!("dir:{}", root.display())).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let t = Tree::build(src, &BuildOptions::default()).unwrap();
    assert_eq!(&*t.read("etc/os-release", 100).unwrap(), b"ID=kilntest\n");
    assert!(matches!(
        t.read("etc/hostname-link", 100),
        Err(TreeError::NotFound { .. })
    ));
}

/// What an `on_file` callback collected.
type Reported<T> = std::sync::Arc<std::sync::Mutex<Vec<T>>>;

/// Every hashed regular file of every layer is reported as it is hashed,
/// with the digest and facts the tree ends up with, replaced files
/// included (a look-ahead may ask about them; nothing relies on their
/// absence).
#[test]
fn files_are_reported_as_soon_as_they_are_hashed() {
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let l0 = layer(&[
        E::Dir("etc/"),
        E::File("etc/a", b"a0"),
        E::File("etc/b", b"b"),
    ]);
    let l1 = layer(&[
        E::File("etc/a", b"a1"),
        E::Hard("etc/c", "etc/b"),
        E::Link("etc/d", "b"),
    ]);
    let mut w = LayoutWriter::create(d.path()).unwrap();
    let descs: Vec<_> = [l0, l1]
        .iter()
        .map(|l| w.add_layer(l, Compression::Gzip).unwrap())
        .collect();
    w.add_image(ImageConfig::default(), &descs, Some("test"))
        .unwrap();
    w.finish().unwrap();
    let seen: Reported<(String, [u8; 32], Option<u8>)> = Arc::default();
    let sink = seen.clone();
    let links: Reported<(String, String)> = Arc::default();
    let link_sink = links.clone();
    let r = SourceRef::parse(&format!("oci-dir:{}:test", d.path().display())).unwrap();
    let opts = BuildOptions {
        hash: true,
        inspect: Some(Box::new(|_, d: &[u8]| {
            d.first()
                .map(|b| std::sync::Arc::new(*b) as kiln_tree::Facts)
        })),
        on_file: Some(Box::new(move |p, digest, facts| {
            let first = facts.and_then(|f| f.downcast_ref::<u8>()).copied();
            sink.lock().unwrap().push((p.to_string(), *digest, first));
        })),
        on_link: Some(Box::new(move |p, t| {
            link_sink
                .lock()
                .unwrap()
                .push((p.to_string(), t.to_string()));
        })),
        ..Default::default()
    };
    let t = Tree::build(Source::open(&r, &OpenOptions::default()).unwrap(), &opts).unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let digest = kiln_tree::content_digest;
    assert_eq!(
        seen,
        vec![
            ("etc/a".into(), digest(b"a0"), Some(b'a')),
            ("etc/a".into(), digest(b"a1"), Some(b'a')),
            ("etc/b".into(), digest(b"b"), Some(b'b')),
        ]
    );
    assert_eq!(t.get("etc/a").unwrap().digest, Some(digest(b"a1")));
    // A hard link takes its target's digest when layers are applied; it is
    // not reported on its own.
    assert_eq!(t.get("etc/c").unwrap().digest, Some(digest(b"b")));
    assert_eq!(
        *links.lock().unwrap(),
        vec![("etc/d".to_string(), "b".to_string())]
    );
}

#[test]
fn dir_sources_report_their_files_too() {
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
    std::fs::write(d.path().join("usr/bin/x"), "x").unwrap();
    std::os::unix::fs::symlink("x", d.path().join("usr/bin/y")).unwrap();
    let seen: Reported<(String, [u8; 32])> = Arc::default();
    let sink = seen.clone();
    let links: Reported<(String, String)> = Arc::default();
    let link_sink = links.clone();
    let opts = BuildOptions {
        hash: true,
        on_file: Some(Box::new(move |p, digest, _| {
            sink.lock().unwrap().push((p.to_string(), *digest));
        })),
        on_link: Some(Box::new(move |p, t| {
            link_sink
                .lock()
                .unwrap()
                .push((p.to_string(), t.to_string()));
        })),
        ..Default::default()
    };
    let r = SourceRef::parse(&format!("dir:{}", d.path().display())).unwrap();
    Tree::build(Source::open(&r, &OpenOptions::default()).unwrap(), &opts).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("usr/bin/x".to_string(), kiln_tree::content_digest(b"x"))]
    );
    assert_eq!(
        *links.lock().unwrap(),
        vec![("usr/bin/y".to_string(), "x".to_string())]
    );
}
