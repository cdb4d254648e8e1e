//! Hostile and malformed input: one test per case. Each must end in a clear
//! error that names the blob or path (exit 1, no panic), or, for input that
//! merely looks odd, be accepted.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use kiln_image::spec::ImageConfig;
use kiln_image::write::LayoutWriter;
use kiln_image::Compression;
use serde_json::Value;

/// A tar whose member names are written verbatim (no sanitising), so
/// `../` and absolute names can be expressed.
fn layer(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

const OS: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\n";

fn config() -> ImageConfig {
    ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    }
}

/// Write a one-image layout; returns its directory.
fn layout(dir: &Path, layers: &[Vec<u8>], compression: Compression) -> PathBuf {
    let root = dir.join("layout");
    let mut w = LayoutWriter::create(&root).unwrap();
    let descs: Vec<_> = layers
        .iter()
        .map(|l| w.add_layer(l, compression).unwrap())
        .collect();
    w.add_image(config(), &descs, Some("t")).unwrap();
    w.finish().unwrap();
    root
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn manifest(layout: &Path) -> Value {
    let index = read_json(&layout.join("index.json"));
    read_json(&blob_path(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
}

/// Store an edited manifest and point the index at it.
fn put_manifest(layout: &Path, m: &Value) {
    let bytes = serde_json::to_vec(m).unwrap();
    let w = LayoutWriter::create(layout).unwrap();
    let d = w
        .add_blob("application/vnd.oci.image.manifest.v1+json", &bytes)
        .unwrap();
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"] = d.digest.clone().into();
    index["manifests"][0]["size"] = d.size.into();
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// Replace layer 0's blob with `bytes`, updating digest and size so that
/// only the content itself is at fault.
fn replace_layer(layout: &Path, bytes: &[u8]) -> String {
    let mut m = manifest(layout);
    let w = LayoutWriter::create(layout).unwrap();
    let d = w.add_blob("x", bytes).unwrap();
    m["layers"][0]["digest"] = d.digest.clone().into();
    m["layers"][0]["size"] = d.size.into();
    put_manifest(layout, &m);
    d.digest
}

fn sbom_of(layout: &Path) -> Vec<String> {
    vec![
        "sbom".into(),
        format!("oci-dir:{}", layout.display()),
        "-o".into(),
        "json".into(),
    ]
}

fn fail(args: Vec<String>) -> String {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    failure(&a)
}

fn ok(args: Vec<String>) -> Value {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&a)
}

fn gz_layer(l: &Path) -> Vec<u8> {
    let m = manifest(l);
    std::fs::read(blob_path(l, m["layers"][0]["digest"].as_str().unwrap())).unwrap()
}

fn many_files() -> Vec<u8> {
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    layer(&[
        ("etc/os-release", OS, None),
        ("big", &big, None),
        ("after", b"x", None),
    ])
}

#[test]
fn truncated_gzip_layer() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let gz = gz_layer(&l);
    let digest = replace_layer(&l, &gz[..gz.len() / 2]);
    let err = fail(sbom_of(&l));
    assert!(err.contains(&digest) && err.contains("gzip"), "{err}");
}

#[test]
fn corrupt_gzip_layer() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let mut gz = gz_layer(&l);
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let digest = replace_layer(&l, &gz);
    let err = fail(sbom_of(&l));
    assert!(err.contains(&digest), "{err}");
}

#[test]
fn truncated_tar_layer() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::None);
    let tar = gz_layer(&l);
    let digest = replace_layer(&l, &tar[..tar.len() / 2]);
    let err = fail(sbom_of(&l));
    assert!(err.contains(&digest), "{err}");
}

#[test]
fn wrong_layer_digest() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let m = manifest(&l);
    let digest = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let p = blob_path(&l, &digest);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 1; // inside the gzip trailer: the stream still decodes
    std::fs::write(&p, bytes).unwrap();
    let err = fail(sbom_of(&l));
    assert!(err.contains(&digest), "{err}");
    assert!(err.contains("mismatch") || err.contains("gzip"), "{err}");
}

#[test]
fn wrong_config_digest() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let digest = manifest(&l)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = blob_path(&l, &digest);
    let mut cfg = read_json(&p);
    cfg["architecture"] = "arm64".into();
    let mut bytes = serde_json::to_vec(&cfg).unwrap();
    bytes.truncate(std::fs::metadata(&p).unwrap().len() as usize);
    bytes.resize(std::fs::metadata(&p).unwrap().len() as usize, b' ');
    std::fs::write(&p, bytes).unwrap();
    let err = fail(sbom_of(&l));
    assert!(
        err.contains(&digest) && err.contains("digest mismatch"),
        "{err}"
    );
}

#[test]
fn missing_blob() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let digest = manifest(&l)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(blob_path(&l, &digest)).unwrap();
    let err = fail(sbom_of(&l));
    assert!(err.contains(&digest) && err.contains("missing"), "{err}");
}

#[test]
fn unknown_layer_media_type() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let mut m = manifest(&l);
    m["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+lz4".into();
    put_manifest(&l, &m);
    let err = fail(sbom_of(&l));
    assert!(
        err.contains("unsupported media type") && err.contains("tar+lz4"),
        "{err}"
    );
}

#[test]
fn entry_climbing_out_of_the_root() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(
        d.path(),
        &[layer(&[
            ("etc/os-release", OS, None),
            ("../../../tmp/kiln-pwned", b"x", None),
        ])],
        Compression::Gzip,
    );
    let err = fail(sbom_of(&l));
    assert!(
        err.contains("../../../tmp/kiln-pwned") && err.contains("climbs out"),
        "{err}"
    );
    assert!(!Path::new("/tmp/kiln-pwned").exists());
}

#[test]
fn symlink_loop_is_reported_not_fatal() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(
        d.path(),
        &[layer(&[
            ("etc/os-release", b"", Some("../usr/lib/os-release")),
            ("usr/lib/os-release", b"", Some("../../etc/os-release")),
        ])],
        Compression::Gzip,
    );
    let doc = ok(sbom_of(&l));
    let unknowns = doc["unknowns"].to_string();
    assert!(
        unknowns.contains("/etc/os-release") && unknowns.contains("symbolic links"),
        "{unknowns}"
    );
    assert!(doc.get("distro").is_none());
}

#[test]
fn symlink_escape_stays_in_the_image() {
    // The host has /etc/os-release; the image only links towards it.
    assert!(Path::new("/etc/os-release").exists() || Path::new("/usr/lib/os-release").exists());
    let d = tempfile::tempdir().unwrap();
    let l = layout(
        d.path(),
        &[layer(&[
            (
                "etc/os-release",
                b"",
                Some("../../../../../../../../usr/lib/os-release"),
            ),
            (
                "usr/lib/os-release",
                b"",
                Some("/../../../../../../etc/nothing-here"),
            ),
        ])],
        Compression::Gzip,
    );
    let doc = ok(sbom_of(&l));
    assert!(
        doc.get("distro").is_none(),
        "read a file outside the image: {doc}"
    );
}

#[test]
fn index_without_the_requested_platform() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("multi");
    let mut w = LayoutWriter::create(&root).unwrap();
    for (arch, id) in [("amd64", "amd"), ("arm64", "arm")] {
        let os = format!("ID={id}\n");
        let l = w
            .add_layer(
                &layer(&[("etc/os-release", os.as_bytes(), None)]),
                Compression::Gzip,
            )
            .unwrap();
        let cfg = ImageConfig {
            architecture: arch.into(),
            os: "linux".into(),
            ..Default::default()
        };
        w.add_image(cfg, &[l], None).unwrap();
    }
    w.finish().unwrap();
    let src = format!("oci-dir:{}", root.display());
    let host = ok(vec!["sbom".into(), src.clone(), "-o".into(), "json".into()]);
    let want = if cfg!(target_arch = "aarch64") {
        "arm"
    } else {
        "amd"
    };
    assert_eq!(host["distro"]["id"], want);
    let arm = ok(vec![
        "sbom".into(),
        src.clone(),
        "--platform".into(),
        "linux/arm64".into(),
        "-o".into(),
        "json".into(),
    ]);
    assert_eq!(arm["distro"]["id"], "arm");
    let err = failure(&["sbom", &src, "--platform", "linux/s390x", "-o", "json"]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn gzip_bomb_is_refused_by_ratio_and_by_size() {
    let d = tempfile::tempdir().unwrap();
    // 300 MiB of zeros in one file: about 300 KiB of gzip, 1000:1.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let size = 300u64 << 20;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(
        &mut h,
        "zeros",
        std::io::Read::take(std::io::repeat(0), size),
    )
    .unwrap();
    let l = layout(d.path(), &[b.into_inner().unwrap()], Compression::Gzip);
    let err = fail(sbom_of(&l));
    assert!(
        err.contains("decompression bomb") && err.contains("ratio"),
        "{err}"
    );
    let mut args = sbom_of(&l);
    args.extend(["--max-expansion-ratio".into(), "100000".into()]);
    args.extend(["--max-layer-size".into(), "1000000".into()]);
    let err = fail(args);
    assert!(
        err.contains("decompression bomb") && err.contains("size limit"),
        "{err}"
    );
}

#[test]
fn truncated_outer_archive() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    let archive = d.path().join("img.tar");
    kiln_image::write::archive_layout(&l, &archive).unwrap();
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let err = failure(&["sbom", &format!("oci-archive:{}", archive.display())]);
    assert!(err.contains("img.tar"), "{err}");
}

#[test]
fn invalid_index_json() {
    let d = tempfile::tempdir().unwrap();
    let l = layout(d.path(), &[many_files()], Compression::Gzip);
    std::fs::write(l.join("index.json"), "{\"manifests\": [").unwrap();
    let err = fail(sbom_of(&l));
    assert!(
        err.contains("index.json") && err.contains("invalid JSON"),
        "{err}"
    );
}

#[test]
fn not_an_image() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("random.bin");
    std::fs::write(&f, b"this is not a tar archive at all, just some bytes").unwrap();
    let err = failure(&["sbom", f.to_str().unwrap()]);
    assert!(err.contains("random.bin"), "{err}");
    let err = failure(&["sbom", "oci-archive:/nonexistent/kiln.tar"]);
    assert!(err.contains("/nonexistent/kiln.tar"), "{err}");
}

#[test]
fn odd_but_normal_names_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    // Absolute and ./-prefixed member names are taken relative to the root.
    let l = layout(
        d.path(),
        &[layer(&[
            ("/etc/os-release", OS, None),
            ("./usr/bin/x", b"x", None),
        ])],
        Compression::Zstd,
    );
    let doc = ok(sbom_of(&l));
    assert_eq!(doc["distro"]["id"], "debian");
}

/// An image config that is a JSON array: serde would fill the struct from
/// it field by field; no other reader accepts it, nor does kiln.
#[test]
fn config_that_is_a_json_array() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("layout");
    let mut w = LayoutWriter::create(&root).unwrap();
    let l = w
        .add_layer(&layer(&[("etc/os-release", OS, None)]), Compression::Gzip)
        .unwrap();
    let cfg = w
        .add_blob(
            kiln_image::spec::MEDIA_CONFIG,
            br#"["amd64", "linux", null, null, {}, {"type": "layers", "diff_ids": []}]"#,
        )
        .unwrap();
    w.add_manifest(cfg, vec![l.0], Some("t"), None).unwrap();
    w.finish().unwrap();
    let err = fail(sbom_of(&root));
    assert!(
        err.contains("image config") && err.contains("not a JSON object"),
        "{err}"
    );
}

/// 3,000 hard links to one unknown ELF file: `kiln scan` reads and hashes
/// the content once (it kept a copy per link: 2 GB and a minute), and
/// `strip --squash` writes one copy and 2,999 tar hard links.
#[test]
fn thousands_of_hard_links_to_one_file() {
    if !have("gcc") || !have("dpkg-deb") || !have("time") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // A DB with function signatures, so unknown ELF files are hashed.
    let src = dir.join("known.c");
    write_file(
        &src,
        "int known(int x) { return x * 3 + 1; }\nint main(void) { return known(2); }\n",
    );
    let bin = dir.join("known");
    sh(Command::new("gcc").arg("-O2").arg("-o").arg(&bin).arg(&src));
    let bytes = std::fs::read(&bin).unwrap();
    let deb = Deb {
        name: "kiln-known",
        version: "1.0-1",
        source: None,
        files: &[("usr/bin/known", &bytes)],
    }
    .build(dir);
    let db = dir.join("kiln.db");
    db_build_debs(&db, &deb);
    // The image: an ELF file the DB does not know, and its links.
    let other = std::fs::read("/proc/self/exe").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("usr/lib/libbig.so").unwrap();
    h.set_size(other.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append(&h, &other[..]).unwrap();
    for i in 0..3000 {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_mode(0o755);
        b.append_link(&mut l, format!("usr/lib/link{i}.so"), "usr/lib/libbig.so")
            .unwrap();
    }
    let l = layout(dir, &[b.into_inner().unwrap()], Compression::Gzip);
    let src = format!("oci-dir:{}", l.display());
    let (out, kib) = run_measured(&[
        "scan",
        "-q",
        &src,
        "--db",
        db.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kib < 512 * 1024, "peak RSS {kib} KiB");
    let archive = dir.join("squashed.tar");
    sh(kiln()
        .args(["strip", "-q", "--squash", &src])
        .arg(format!("oci-archive:{}", archive.display()))
        .args(["--transforms", "delete-docs"]));
    let unpacked = dir.join("x");
    std::fs::create_dir_all(&unpacked).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let index: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
    let m: Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &unpacked,
            index["manifests"][0]["digest"].as_str().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = blob_path(&unpacked, m["layers"][0]["digest"].as_str().unwrap());
    let listing = sh(Command::new("tar").arg("-tvzf").arg(&layer)).stdout;
    let links = String::from_utf8_lossy(&listing)
        .matches(" link to ")
        .count();
    assert_eq!(links, 3000);
}

/// GNU sparse members, made by GNU tar: a small one reads and strips
/// expanded, byte for byte; one that claims 2 TiB of holes is refused at
/// once (strip never finished and left a partial file) and nothing is
/// written.
#[test]
fn gnu_sparse_members() {
    if !have("tar") || !have("truncate") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let files = dir.join("files");
    std::fs::create_dir_all(files.join("etc")).unwrap();
    std::fs::write(files.join("etc/os-release"), OS).unwrap();
    let small = files.join("small.img");
    sh(Command::new("truncate").args(["-s", "8M"]).arg(&small));
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&small)
            .unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"data in the middle of holes").unwrap();
    }
    let tar_of = |name: &str, members: &[&str]| -> Vec<u8> {
        let out = dir.join(name);
        sh(Command::new("tar")
            .args(["--sparse", "--format=gnu", "-cf"])
            .arg(&out)
            .arg("-C")
            .arg(&files)
            .args(members));
        std::fs::read(out).unwrap()
    };
    let ok_layer = tar_of("small.tar", &["etc/os-release", "small.img"]);
    let l = layout(&dir.join("ok"), &[ok_layer], Compression::Gzip);
    let src = format!("oci-dir:{}", l.display());
    let doc = ok(vec!["sbom".into(), src.clone(), "-o".into(), "json".into()]);
    assert_eq!(doc["distro"]["id"], "debian");
    let archive = dir.join("stripped.tar");
    sh(kiln()
        .args(["strip", "-q", &src])
        .arg(format!("oci-archive:{}", archive.display()))
        .args(["--transforms", "delete-docs"]));
    let root = umoci_rootfs(&archive, &dir.join("unpacked"));
    assert_eq!(
        std::fs::read(root.join("small.img")).unwrap(),
        std::fs::read(&small).unwrap()
    );

    let huge = files.join("huge.img");
    sh(Command::new("truncate").args(["-s", "2T"]).arg(&huge));
    let bad_layer = tar_of("huge.tar", &["etc/os-release", "huge.img"]);
    let l = layout(&dir.join("bad"), &[bad_layer], Compression::Gzip);
    let src = format!("oci-dir:{}", l.display());
    let dest = dir.join("out/huge.tar");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let err = failure(&["strip", &src, &format!("oci-archive:{}", dest.display())]);
    assert!(err.contains("huge.img") && err.contains("sparse"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.join("out")).unwrap().count(),
        0,
        "left a partial output"
    );
    let err = fail(sbom_of(&l));
    assert!(err.contains("huge.img") && err.contains("refused"), "{err}");
}

/// Unpack an OCI archive with skopeo and umoci; the root filesystem.
fn umoci_rootfs(archive: &Path, dir: &Path) -> PathBuf {
    if !have("skopeo") || !have("umoci") {
        panic!("skopeo and umoci are needed");
    }
    std::fs::create_dir_all(dir).unwrap();
    let layout = dir.join("layout");
    sh(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:x", layout.display())));
    sh(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:x", layout.display()))
        .arg(dir.join("bundle")));
    dir.join("bundle/rootfs")
}

/// 80 layers that each clear a directory and add 50,000 files to it (one
/// blob, listed 80 times): memory follows the final tree, not the sum of
/// every layer's entries (this took 1 GB).
#[test]
fn many_layers_of_files_whited_out_again() {
    if !have("time") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: String| {
        let mut h = tar::Header::new_gnu();
        h.set_path(&name).unwrap();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    };
    add("etc/os-release".into());
    add("d/.wh..wh..opq".into());
    for i in 0..50_000 {
        add(format!("d/file-with-a-longish-name-{i:05}"));
    }
    let tar = b.into_inner().unwrap();
    let root = d.path().join("layout");
    let mut w = LayoutWriter::create(&root).unwrap();
    let one = w.add_layer(&tar, Compression::Gzip).unwrap();
    let layers = vec![one; 80];
    w.add_image(config(), &layers, Some("t")).unwrap();
    w.finish().unwrap();
    let layout = format!("oci-dir:{}", root.display());
    let (out, kib) = run_measured(&["sbom", "-q", &layout, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("peak RSS {kib} KiB");
    assert!(kib < 256 * 1024, "peak RSS {kib} KiB");
}
