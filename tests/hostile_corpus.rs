//! The hostile-image corpus: images made to break a reader, each run
//! through `sbom`, `scan`, `strip` and `slim --mode static`. Every run must
//! end in a result or a clear error (exit 0 or 2, never a panic), stay
//! under 1 GiB of peak memory, and write nothing outside its destination
//! directory. (The largest, a million files, is near 900 MiB for `scan`,
//! which keeps per-file identification state; the others stay far lower.
//! Run with `--nocapture` for each run's peak.)

mod common;

use std::path::{Path, PathBuf};

use common::*;
use kiln_image::spec::ImageConfig;
use kiln_image::write::LayoutWriter;
use kiln_image::Compression;

/// The memory bound every case must stay under.
const PEAK_KIB: u64 = 1024 * 1024;

/// A raw tar header block with `name` (and link name) written verbatim.
fn raw(name: &[u8], kind: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    // Eleven octal digits and a NUL, or twelve digits filling the field
    // for sizes past 8 GiB (as GNU tar reads them).
    let s = if size < (1 << 33) {
        format!("{size:011o}\0")
    } else {
        format!("{size:012o}")
    };
    h[124..136].copy_from_slice(s.as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

struct TarOut(Vec<u8>);

impl TarOut {
    fn new() -> Self {
        TarOut(Vec::new())
    }
    fn entry(&mut self, name: &[u8], kind: u8, data: &[u8], link: &[u8]) -> &mut Self {
        self.0
            .extend_from_slice(&raw(name, kind, data.len() as u64, link));
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name.as_bytes(), b'0', data, b"")
    }
    fn pax_path(&mut self, path: &[u8]) -> &mut Self {
        let mut rec = Vec::new();
        let body_len = b" path=".len() + path.len() + 1;
        let mut len = body_len + 1;
        while format!("{len}").len() + body_len != len {
            len += 1;
        }
        rec.extend_from_slice(format!("{len} path=").as_bytes());
        rec.extend_from_slice(path);
        rec.push(b'\n');
        self.entry(b"PaxHeader", b'x', &rec, b"")
    }
    fn done(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

fn config() -> ImageConfig {
    let mut c = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    c.config.entrypoint = Some(vec!["/bin/hello".into()]);
    c
}

fn one_layer(dir: &Path, layer: &[u8], compression: Compression) -> PathBuf {
    let mut w = LayoutWriter::create(dir).unwrap();
    let l = w.add_layer(layer, compression).unwrap();
    w.add_image(config(), &[l], Some("t")).unwrap();
    w.finish().unwrap();
    dir.to_path_buf()
}

const OS: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\n";

/// Every case, as (name, layout).
fn corpus(dir: &Path, escape: &str) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, layer: Vec<u8>, c: Compression| {
        out.push((name, one_layer(&dir.join(name), &layer, c)));
    };
    let out_name = format!("../../../../../../tmp/{escape}");
    add(
        "dotdot-and-absolute-names",
        TarOut::new()
            .file("etc/os-release", OS)
            .file(&format!("/tmp/{escape}-abs"), b"x")
            .file("a/../../b", b"x")
            .file(&out_name, b"x")
            .done(),
        Compression::Gzip,
    );
    add(
        "symlinked-parent",
        TarOut::new()
            .file("etc/os-release", OS)
            .entry(b"lnk", b'2', b"", b"/tmp")
            .file(&format!("lnk/{escape}-via-link"), b"x")
            .entry(b"up", b'2', b"", b"../../../../../../../tmp")
            .file(&format!("up/{escape}-via-up"), b"x")
            .done(),
        Compression::Gzip,
    );
    add(
        "hard-links-out-later-and-looping",
        TarOut::new()
            .file("etc/os-release", OS)
            .entry(b"out", b'1', b"", b"../../../../etc/passwd")
            .entry(b"early", b'1', b"", b"late")
            .file("late", b"late")
            .entry(b"a", b'1', b"", b"b")
            .entry(b"b", b'1', b"", b"a")
            .entry(b"s1", b'2', b"", b"s2")
            .entry(b"s2", b'2', b"", b"s1")
            .done(),
        Compression::Gzip,
    );
    add(
        "devices-and-fifos",
        TarOut::new()
            .file("etc/os-release", OS)
            .entry(b"dev/null-ish", b'3', b"", b"")
            .entry(b"dev/disk-ish", b'4', b"", b"")
            .entry(b"run/pipe", b'6', b"", b"")
            .done(),
        Compression::Gzip,
    );
    let long: Vec<u8> = std::iter::repeat_n(b"d/".as_slice(), 2600)
        .flatten()
        .copied()
        .chain(*b"f")
        .collect();
    add(
        "long-and-invalid-names",
        TarOut::new()
            .file("etc/os-release", OS)
            .pax_path(&long)
            .file("placeholder", b"long")
            .entry(b"bad-\xff\xfe-name", b'0', b"x", b"")
            .done(),
        Compression::Gzip,
    );
    let mut many = TarOut::new();
    many.file("etc/os-release", OS);
    for i in 0..1_000_000u32 {
        many.entry(format!("m/{:02x}/{i}", i % 251).as_bytes(), b'0', b"", b"");
    }
    add("a-million-empty-files", many.done(), Compression::Gzip);
    // A file that says it is 10 GB of zeros (1 GiB of them are written):
    // refused by the expansion ratio long before its end.
    let mut zeros = TarOut::new();
    zeros.file("etc/os-release", OS);
    let mut big = zeros.done();
    big.truncate(big.len() - 1024);
    big.extend_from_slice(&raw(b"big.img", b'0', 10 << 30, b""));
    out.push((
        "ten-gigabytes-of-zeros",
        zeros_layout(&dir.join("zeros"), &big, Compression::Gzip, 1 << 10),
    ));
    let mut zhead = TarOut::new();
    zhead.file("etc/os-release", OS);
    let mut zbig = zhead.done();
    zbig.truncate(zbig.len() - 1024);
    zbig.extend_from_slice(&raw(b"big.img", b'0', 1 << 30, b""));
    out.push((
        "zstd-bomb",
        zeros_layout(&dir.join("zstd"), &zbig, Compression::Zstd, 1 << 10),
    ));
    let plain = TarOut::new()
        .file("etc/os-release", OS)
        .file("f", &[7u8; 4096])
        .done();
    out.push((
        "truncated-blob",
        truncated_blob(&dir.join("truncated"), &plain),
    ));
    out.push((
        "wrong-size-in-descriptor",
        wrong_size(&dir.join("wrong-size"), &plain),
    ));
    out.push((
        "index-nesting-1000-levels",
        nested(&dir.join("nested"), &plain, 1000),
    ));
    out
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn json_of(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Store `v` as a blob; its descriptor.
fn put_blob(dir: &Path, v: &serde_json::Value, media: &str) -> serde_json::Value {
    use sha2::Digest as _;
    let bytes = serde_json::to_vec(v).unwrap();
    let hex = hex::encode(sha2::Sha256::digest(&bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), &bytes).unwrap();
    serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn set_index(dir: &Path, mut desc: serde_json::Value) {
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

fn the_manifest(dir: &Path) -> serde_json::Value {
    let index = json_of(&dir.join("index.json"));
    json_of(&blob(
        dir,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
}

/// The layer blob cut to half its length.
fn truncated_blob(dir: &Path, layer: &[u8]) -> PathBuf {
    one_layer(dir, layer, Compression::Gzip);
    let m = the_manifest(dir);
    let p = blob(dir, m["layers"][0]["digest"].as_str().unwrap());
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    dir.to_path_buf()
}

/// The manifest says the layer is one byte longer than it is.
fn wrong_size(dir: &Path, layer: &[u8]) -> PathBuf {
    one_layer(dir, layer, Compression::Gzip);
    let mut m = the_manifest(dir);
    let n = m["layers"][0]["size"].as_u64().unwrap();
    m["layers"][0]["size"] = (n + 1).into();
    let d = put_blob(dir, &m, "application/vnd.oci.image.manifest.v1+json");
    set_index(dir, d);
    dir.to_path_buf()
}

/// `levels` image indexes, each listing the next, above the manifest.
fn nested(dir: &Path, layer: &[u8], levels: usize) -> PathBuf {
    one_layer(dir, layer, Compression::Gzip);
    let index = json_of(&dir.join("index.json"));
    let mut desc = index["manifests"][0].clone();
    desc.as_object_mut().unwrap().remove("annotations");
    for _ in 0..levels {
        let idx = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc],
        });
        desc = put_blob(dir, &idx, "application/vnd.oci.image.index.v1+json");
    }
    set_index(dir, desc);
    dir.to_path_buf()
}

/// A layout whose one layer is `head` followed by `mib` MiB of zeros,
/// compressed as it is written (never held whole).
fn zeros_layout(dir: &Path, head: &[u8], c: Compression, mib: usize) -> PathBuf {
    use std::io::Write;
    let mut w = LayoutWriter::create(dir).unwrap();
    let mut sink = w.layer_sink(c).unwrap();
    sink.write_all(head).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        sink.write_all(&block).unwrap();
    }
    sink.write_all(&[0u8; 1024]).unwrap();
    let l = sink.finish().unwrap();
    w.add_image(config(), &[l], Some("t")).unwrap();
    w.finish().unwrap();
    dir.to_path_buf()
}

/// Run kiln under `/usr/bin/time`: (exit status, stderr, peak KiB).
fn measured(args: &[String]) -> (i32, String, u64) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, peak) = run_measured(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr, peak)
}

#[test]
fn every_hostile_image_gives_a_result_or_a_clear_error() {
    if !have("time") || !have("gcc") || !have("dpkg-deb") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let escape = format!("kiln-escape-{}", std::process::id());
    let db = dir.join("kiln.db");
    let deb = Deb {
        name: "kiln-corpus",
        version: "1.0-1",
        source: None,
        files: &[("usr/share/kiln-corpus/f", b"corpus")],
    }
    .build(dir);
    db_build_debs(&db, &deb);
    let mut report = Vec::new();
    for (name, layout) in corpus(&dir.join("cases"), &escape) {
        let src = format!("oci-dir:{}:t", layout.display());
        let dest_dir = dir.join("dest").join(name);
        std::fs::create_dir_all(&dest_dir).unwrap();
        let dest = format!("oci-archive:{}", dest_dir.join("out.tar").display());
        let runs: Vec<(&str, Vec<String>)> = vec![
            (
                "sbom",
                vec![
                    "sbom".into(),
                    "-q".into(),
                    src.clone(),
                    "-o".into(),
                    "json".into(),
                ],
            ),
            (
                "scan",
                vec![
                    "scan".into(),
                    "-q".into(),
                    src.clone(),
                    "--db".into(),
                    db.display().to_string(),
                    "-o".into(),
                    "json".into(),
                ],
            ),
            (
                "strip",
                vec!["strip".into(), "-q".into(), src.clone(), dest.clone()],
            ),
            (
                "slim",
                vec![
                    "slim".into(),
                    "-q".into(),
                    src.clone(),
                    dest.clone(),
                    "--mode".into(),
                    "static".into(),
                ],
            ),
        ];
        for (cmd, args) in runs {
            let (code, stderr, peak) = measured(&args);
            let first = stderr
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(150)
                .collect::<String>();
            report.push(format!(
                "{name:36} {cmd:6} exit {code} peak {:>4} MiB  {first}",
                peak / 1024
            ));
            assert!(
                code == 0 || code == 2,
                "{name} {cmd}: exit {code}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{name} {cmd}: {stderr}");
            assert!(peak < PEAK_KIB, "{name} {cmd}: peak {peak} KiB");
            if code == 2 {
                assert!(stderr.contains("kiln: error:"), "{name} {cmd}: {stderr}");
            }
        }
        for e in std::fs::read_dir(&dest_dir).unwrap() {
            let n = e.unwrap().file_name();
            assert_eq!(n, "out.tar", "{name}: left {n:?} beside the destination");
        }
    }
    for line in &report {
        eprintln!("{line}");
    }
    for place in ["/tmp", "/"] {
        for e in std::fs::read_dir(place).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!n.starts_with(&escape), "wrote outside: {place}/{n}");
        }
    }
}
