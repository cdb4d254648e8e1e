//! Registries end to end, against Debian's `docker-registry` started here
//! on loopback: TLS with a CA made by `openssl`, HTTP basic auth from an
//! `htpasswd` file, and bearer tokens from a small issuer that signs real
//! JWTs the registry verifies. Images are pushed with `skopeo copy`;
//! faults come from a proxy in this file that corrupts, cuts or stalls
//! the registry's answers.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::registry::{free_port, wait_for, Auth, Registry, Server};
use common::*;

fn tools() -> bool {
    [
        "docker-registry",
        "htpasswd",
        "openssl",
        "skopeo",
        "umoci",
        "dpkg-deb",
        "python3",
    ]
    .iter()
    .all(|t| have(t))
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a cert dir
/// (`ca.crt`) as skopeo and kiln read it.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ssl = |args: &[&str]| {
        sh(Command::new("openssl").args(args).current_dir(dir));
    };
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=kiln-test-ca",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    write_file(
        &dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let certs = dir.join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).unwrap();
    (dir.join("server.crt"), dir.join("server.key"), certs)
}

/// A two-layer image with two real debs installed by dpkg, as an OCI
/// layout; returns (`oci-dir:` source, skopeo `oci:` source, debs dir).
fn image(dir: &Path) -> (String, String, PathBuf) {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let a = Deb {
        name: "kiln-reg-a",
        version: "1.2.3-1",
        source: None,
        files: &[("usr/share/kiln-reg-a/data.txt", b"layer one\n")],
    }
    .build(&debs);
    let b = Deb {
        name: "kiln-reg-b",
        version: "4.5-2",
        source: None,
        files: &[("usr/share/kiln-reg-b/data.txt", b"layer two\n")],
    }
    .build(&debs);
    let umoci = Umoci::new(&dir.join("img"), "v1");
    dpkg_root(&umoci.rootfs());
    dpkg(&umoci.rootfs(), &["-i", a.to_str().unwrap()]);
    umoci.repack();
    dpkg(&umoci.rootfs(), &["-i", b.to_str().unwrap()]);
    umoci.repack();
    let layout = umoci.layout.display().to_string();
    (
        format!("oci-dir:{layout}:v1"),
        format!("oci:{layout}:v1"),
        debs,
    )
}

fn skopeo_push(from: &str, to: &str, extra: &[&str]) {
    sh(Command::new("skopeo")
        .args(["copy", "-q"])
        .args(extra)
        .arg(from)
        .arg(to));
}

fn packages(args: &[&str]) -> Vec<(String, String, String)> {
    rows(&json(args))
}

#[test]
fn tls_and_basic_auth_give_the_same_packages_as_the_layout() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cert, key, certs) = certificates(dir);
    let htpasswd = dir.join("htpasswd");
    let out = sh(Command::new("htpasswd").args(["-Bbn", "alice", "s3cret-pw"]));
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let reg = Registry::start(dir, Some((&cert, &key)), Auth::Basic(htpasswd));
    let (local, oci, debs) = image(dir);
    let certs_s = certs.to_str().unwrap();
    let dest = format!("docker://{}/team/app:v1", reg.host);
    skopeo_push(
        &oci,
        &dest,
        &[
            "--dest-cert-dir",
            certs_s,
            "--dest-creds",
            "alice:s3cret-pw",
        ],
    );
    let src = format!("registry:{}/team/app:v1", reg.host);

    let want = packages(&["sbom", &local, "-o", "json"]);
    assert_eq!(want.len(), 2, "{want:?}");
    let creds = ["--cert-dir", certs_s, "--creds", "alice:s3cret-pw"];
    let mut args = vec!["sbom", &src, "-o", "json"];
    args.extend(creds);
    assert_eq!(packages(&args), want);
    // docker:// is the same source.
    let alias = format!("docker://{}/team/app:v1", reg.host);
    let mut args = vec!["sbom", &alias, "-o", "json"];
    args.extend(creds);
    assert_eq!(packages(&args), want);

    let db = dir.join("kiln.db");
    db_build_debs(&db, &debs);
    let db_s = db.to_str().unwrap();
    let scan_local = rows(&json(&["scan", &local, "--db", db_s, "-o", "json"]));
    let mut args = vec!["scan", &src, "--db", db_s, "-o", "json"];
    args.extend(creds);
    assert_eq!(rows(&json(&args)), scan_local);

    // Credentials from an auth file, as skopeo login writes it.
    let auth = dir.join("auth.json");
    let token = base64_encode(b"alice:s3cret-pw");
    write_file(
        &auth,
        &format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, reg.host),
    );
    let out = kiln()
        .args(["sbom", &src, "-o", "json", "--cert-dir", certs_s])
        .env("REGISTRY_AUTH_FILE", &auth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&serde_json::from_slice(&out.stdout).unwrap()), want);

    // A wrong password: 401, named, and the password never printed.
    let err = failure(&[
        "sbom",
        &src,
        "--cert-dir",
        certs_s,
        "--creds",
        "alice:wrong-pw-123",
    ]);
    assert!(err.contains(&format!("{}/team/app", reg.host)), "{err}");
    assert!(err.contains("401") && err.contains("alice"), "{err}");
    assert!(!err.contains("wrong-pw-123"), "the password leaked: {err}");
    // No CA: a TLS error that says what to do.
    let err = failure(&["sbom", &src, "--creds", "alice:s3cret-pw"]);
    assert!(
        err.contains("--tls-verify=false") && err.contains("--cert-dir"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The token issuer: signing key and certificate made here, users with
/// their rights.
fn token_issuer(dir: &Path) -> (Server, String, PathBuf) {
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=kiln-test-issuer",
        ])
        .current_dir(dir));
    let users = dir.join("users");
    write_file(
        &users,
        "alice:a-pass:pull,push\nreader:r-pass:pull\nnobody:n-pass:\n",
    );
    let port = free_port();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry_support/token_issuer.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("token.key"))
        .arg(dir.join("token.crt"))
        .args(["kiln-test-issuer", "kiln-test"])
        .arg(&users)
        .spawn()
        .expect("start the token issuer");
    let server = Server(child);
    wait_for(port);
    (
        server,
        format!("http://127.0.0.1:{port}/token"),
        dir.join("token.crt"),
    )
}

#[test]
fn bearer_tokens_and_pushing_what_strip_writes() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cert, key, certs) = certificates(dir);
    let (_issuer, realm, bundle) = token_issuer(dir);
    let reg = Registry::start(dir, Some((&cert, &key)), Auth::Token { realm, bundle });
    let (local, oci, _) = image(dir);
    let certs_s = certs.to_str().unwrap();
    skopeo_push(
        &oci,
        &format!("docker://{}/team/app:v1", reg.host),
        &["--dest-cert-dir", certs_s, "--dest-creds", "alice:a-pass"],
    );
    let src = format!("registry:{}/team/app:v1", reg.host);
    let want = packages(&["sbom", &local, "-o", "json"]);
    let got = packages(&[
        "sbom",
        &src,
        "-o",
        "json",
        "--cert-dir",
        certs_s,
        "--creds",
        "reader:r-pass",
    ]);
    assert_eq!(got, want);

    // Signed in, but without the pull right: the registry answers 401
    // insufficient_scope and kiln says what is missing.
    let err = failure(&[
        "sbom",
        &src,
        "--cert-dir",
        certs_s,
        "--creds",
        "nobody:n-pass",
    ]);
    assert!(
        err.contains("no pull right") && err.contains("nobody"),
        "{err}"
    );
    // A wrong password at the token service.
    let err = failure(&[
        "sbom",
        &src,
        "--cert-dir",
        certs_s,
        "--creds",
        "alice:nope-nope",
    ]);
    assert!(
        err.contains("refused the credentials") && !err.contains("nope-nope"),
        "{err}"
    );

    // strip to the registry, and to an archive: the same manifest, and
    // the same digest on every run.
    let archive = dir.join("stripped.tar");
    let archive_s = format!("oci-archive:{}", archive.display());
    let strip = |dest: &str, creds: &str| {
        kiln()
            .args([
                "strip",
                "-q",
                &src,
                dest,
                "--cert-dir",
                certs_s,
                "--creds",
                creds,
            ])
            .output()
            .unwrap()
    };
    let o = strip(&archive_s, "alice:a-pass");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = std::fs::read(&archive).unwrap();
    let o = strip(&archive_s, "alice:a-pass");
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        first,
        "strip is not deterministic"
    );
    let pushed = format!("registry:{}/team/app:stripped", reg.host);
    let err = strip(&pushed, "reader:r-pass");
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("no push right"));
    let o = strip(&pushed, "alice:a-pass");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The same strip into another repository of the registry: every blob
    // is mounted from the source repository, none uploaded again.
    let other = format!("registry:{}/team/other:stripped", reg.host);
    let o = kiln()
        .args([
            "strip",
            &src,
            &other,
            "--cert-dir",
            certs_s,
            "--creds",
            "alice:a-pass",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("0 blob(s) uploaded") && !said.contains(" 0 mounted"),
        "{said}"
    );

    let inspect = sh(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--cert-dir",
        certs_s,
        "--creds",
        "alice:a-pass",
        &format!("docker://{}/team/app:stripped", reg.host),
    ]));
    let local_manifest = manifest_of_archive(&archive, dir);
    assert_eq!(
        inspect.stdout, local_manifest,
        "the pushed manifest differs from the archive's"
    );
    let copy = dir.join("copied");
    sh(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-cert-dir",
        certs_s,
        "--src-creds",
        "alice:a-pass",
        &format!("docker://{}/team/app:stripped", reg.host),
        &format!("oci:{}:stripped", copy.display()),
    ]));
    sh(Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:stripped", copy.display()),
        ])
        .arg(dir.join("unpacked")));
    assert!(dir
        .join("unpacked/rootfs/usr/share/kiln-reg-b/data.txt")
        .is_file());
}

/// The manifest bytes an OCI archive's index points at.
fn manifest_of_archive(archive: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("archive-layout");
    std::fs::create_dir_all(&out).unwrap();
    sh(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&out));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::read(out.join("blobs/sha256").join(&digest[7..])).unwrap()
}

/// What the fault proxy does to the next answers.
#[derive(Clone, Debug, PartialEq)]
enum Fault {
    Pass,
    /// Flip one byte of the body of the blob whose digest the path names.
    Corrupt(String),
    /// Send half of that blob's body, then drop the connection (once).
    Cut(String),
    /// Answer manifest requests with a body over the limit.
    HugeManifest,
}

/// An HTTP/1.1 proxy in front of a plain-HTTP registry, one request per
/// connection.
fn fault_proxy(upstream: String, fault: Arc<Mutex<Fault>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            let fault = fault.clone();
            std::thread::spawn(move || {
                let _ = proxy_one(client, &upstream, &fault);
            });
        }
    });
    addr
}

fn proxy_one(mut client: TcpStream, upstream: &str, fault: &Mutex<Fault>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        // A TLS ClientHello (kiln tries HTTPS first): a plain-HTTP server
        // answers it with an error at once; so does this proxy.
        if head.is_empty() && byte[0] == 0x16 {
            client.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("").to_string();
    let mut lines: Vec<&str> = text
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let request = format!("{}\r\n\r\n", lines.join("\r\n"));
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let (head, body) = answer.split_at(split);
    let current = fault.lock().unwrap().clone();
    match current {
        Fault::Corrupt(d) if path.contains("/blobs/") && path.contains(&d) && !body.is_empty() => {
            let mut body = body.to_vec();
            let mid = body.len() / 2;
            body[mid] ^= 0x55;
            client.write_all(head)?;
            client.write_all(&body)?;
        }
        Fault::Cut(d) if path.contains("/blobs/") && path.contains(&d) && body.len() > 64 => {
            *fault.lock().unwrap() = Fault::Pass;
            client.write_all(head)?;
            client.write_all(&body[..body.len() / 2])?;
            client.flush()?;
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
        Fault::HugeManifest if path.contains("/manifests/") => {
            let big = vec![b' '; 5 << 20];
            client.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    big.len()
                )
                .as_bytes(),
            )?;
            client.write_all(&big)?;
        }
        _ => client.write_all(&answer)?,
    }
    Ok(())
}

#[test]
fn faults_are_clear_errors_or_are_recovered() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start(dir, None, Auth::None);
    let (local, oci, _) = image(dir);
    skopeo_push(
        &oci,
        &format!("docker://{}/app:v1", reg.host),
        &["--dest-tls-verify=false"],
    );
    let want = packages(&["sbom", &local, "-o", "json"]);
    let direct = format!("registry:{}/app:v1", reg.host);

    // Plain HTTP needs --tls-verify=false.
    let err = failure(&["sbom", &direct]);
    assert!(err.contains("--tls-verify=false"), "{err}");
    assert_eq!(
        packages(&["sbom", &direct, "--tls-verify=false", "-o", "json"]),
        want
    );

    // Docker schema 2 media types read the same.
    skopeo_push(
        &oci,
        &format!("docker://{}/app:v2s2", reg.host),
        &["--dest-tls-verify=false", "--format", "v2s2"],
    );
    let v2s2 = format!("registry:{}/app:v2s2", reg.host);
    let doc = json(&["sbom", &v2s2, "--tls-verify=false", "-o", "json"]);
    assert_eq!(rows(&doc), want);
    assert!(doc["source"]["layers"][0]["mediaType"]
        .as_str()
        .unwrap()
        .starts_with("application/vnd.docker.image.rootfs"));

    // Unknown tag and digest, named.
    let err = failure(&[
        "sbom",
        &format!("registry:{}/app:nope", reg.host),
        "--tls-verify=false",
    ]);
    assert!(
        err.contains(&format!("{}/app", reg.host))
            && err.contains("nope")
            && err.contains("not found"),
        "{err}"
    );
    let zero = format!("sha256:{}", "0".repeat(64));
    let err = failure(&[
        "sbom",
        &format!("registry:{}/app@{zero}", reg.host),
        "--tls-verify=false",
    ]);
    assert!(err.contains("not found"), "{err}");
    // A platform the image does not have.
    let err = failure(&[
        "sbom",
        &direct,
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
    ]);
    assert!(
        err.contains("linux/arm64") && err.contains("linux/amd64"),
        "{err}"
    );

    let fault = Arc::new(Mutex::new(Fault::Pass));
    let proxy = fault_proxy(reg.host.clone(), fault.clone());
    let via = format!("registry:{proxy}/app:v1");
    assert_eq!(
        packages(&["sbom", &via, "--tls-verify=false", "-o", "json"]),
        want
    );
    let doc = json(&["sbom", &via, "--tls-verify=false", "-o", "json"]);
    let layer = doc["source"]["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // A byte flipped in a layer: a digest mismatch, never a result.
    *fault.lock().unwrap() = Fault::Corrupt(layer[7..].to_string());
    let err = failure(&["sbom", &via, "--tls-verify=false"]);
    assert!(err.contains("digest mismatch"), "{err}");

    // A connection cut mid-layer: resumed with Range, same packages.
    *fault.lock().unwrap() = Fault::Cut(layer[7..].to_string());
    assert_eq!(
        packages(&["sbom", &via, "--tls-verify=false", "-o", "json"]),
        want
    );
    assert_eq!(
        *fault.lock().unwrap(),
        Fault::Pass,
        "the cut never happened"
    );

    // An oversized manifest is refused, not read.
    *fault.lock().unwrap() = Fault::HugeManifest;
    let err = failure(&["sbom", &via, "--tls-verify=false"]);
    assert!(err.contains("limit"), "{err}");
    *fault.lock().unwrap() = Fault::Pass;

    // A registry that never answers: --timeout, then a clear error.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
        }
    });
    let start = Instant::now();
    let err = failure(&[
        "sbom",
        &format!("registry:{silent_addr}/app:v1"),
        "--tls-verify=false",
        "--timeout",
        "1",
    ]);
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn the_signature_db_round_trips_as_an_oci_artifact() {
    if !tools() || !have("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start(dir, None, Auth::None);
    let (local, _, debs) = image(dir);
    let db = dir.join("kiln.db");
    db_build_debs(&db, &debs);
    let db_s = db.to_str().unwrap();
    let r = format!("registry:{}/kiln/signatures:v1", reg.host);
    let out = sh(kiln().args(["db", "push", "-q", &r, "--db", db_s, "--tls-verify=false"]));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let pulled = dir.join("pulled/kiln.db");
    let pulled_s = pulled.to_str().unwrap();
    sh(kiln().args([
        "db",
        "pull",
        "-q",
        &r,
        "--db",
        pulled_s,
        "--tls-verify=false",
    ]));
    let stats = |p: &str| {
        let mut v = json(&["db", "stats", "--db", p, "-o", "json"]);
        v.as_object_mut().unwrap().remove("path");
        v.as_object_mut().unwrap().remove("size_bytes");
        v
    };
    assert_eq!(stats(db_s), stats(pulled_s));
    let scan = |p: &str| json(&["scan", &local, "--db", p, "-o", "json"])["packages"].clone();
    assert_eq!(scan(db_s), scan(pulled_s));

    // The same artifact announcing a newer schema: refused, local DB kept.
    let base = format!("http://{}/v2/kiln/signatures/manifests", reg.host);
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let manifest =
        sh(Command::new("curl").args(["-sf", "-H", accept, &format!("{base}/v1")])).stdout;
    let newer = String::from_utf8(manifest).unwrap().replace(
        &format!(
            "\"dev.kiln.db.schema\":\"{}\"",
            kiln_rainbow::SCHEMA_VERSION
        ),
        "\"dev.kiln.db.schema\":\"99\"",
    );
    assert!(newer.contains("\"99\""), "{newer}");
    let file = dir.join("newer.json");
    std::fs::write(&file, &newer).unwrap();
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{base}/v99"),
    ]));
    let before = std::fs::read(&pulled).unwrap();
    let newer_ref = format!("registry:{}/kiln/signatures:v99", reg.host);
    let err = failure(&[
        "db",
        "pull",
        &newer_ref,
        "--db",
        pulled_s,
        "--tls-verify=false",
    ]);
    assert!(
        err.contains("schema 99") && err.contains("upgrade kiln"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        before,
        "a refused pull changed the DB"
    );

    // An image is not a signature DB.
    let err = failure(&[
        "db",
        "pull",
        &format!("registry:{}/kiln/nothing:v1", reg.host),
        "--db",
        pulled_s,
        "--tls-verify=false",
    ]);
    assert!(err.contains("not found"), "{err}");
}

/// The digest and size of what a registry serves for `url`.
fn manifest_descriptor(url: &str, accept: &str) -> (String, usize) {
    let body =
        sh(Command::new("curl").args(["-sf", "-H", &format!("Accept: {accept}"), url])).stdout;
    let mut sum = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sum.stdin.take().unwrap().write_all(&body).unwrap();
    let out = sum.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)[..64].to_string();
    (format!("sha256:{hex}"), body.len())
}

#[test]
fn an_image_index_in_a_registry_is_chosen_by_platform() {
    if !tools() || !have("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reg = Registry::start(dir, None, Auth::None);
    let (_, amd, _) = image(dir);
    let arm = Umoci::new(&dir.join("arm"), "v1");
    write_file(&arm.rootfs().join("etc/os-release"), "ID=kiln-arm\n");
    arm.repack();
    arm.config(&["--architecture=arm64", "--os=linux"]);
    let flags = ["--dest-tls-verify=false"];
    skopeo_push(&amd, &format!("docker://{}/multi:amd", reg.host), &flags);
    skopeo_push(
        &format!("oci:{}", arm.image()),
        &format!("docker://{}/multi:arm", reg.host),
        &flags,
    );
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let base = format!("http://{}/v2/multi/manifests", reg.host);
    let (amd_d, amd_n) = manifest_descriptor(&format!("{base}/amd"), oci);
    let (arm_d, arm_n) = manifest_descriptor(&format!("{base}/arm"), oci);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{oci}","digest":"{amd_d}","size":{amd_n},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{oci}","digest":"{arm_d}","size":{arm_n},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
    );
    let file = dir.join("index.json");
    std::fs::write(&file, index).unwrap();
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{base}/all"),
    ]));
    let src = format!("registry:{}/multi:all", reg.host);
    let arm_doc = json(&[
        "sbom",
        &src,
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        "-o",
        "json",
    ]);
    assert_eq!(arm_doc["distro"]["id"], "kiln-arm", "{arm_doc}");
    assert_eq!(arm_doc["source"]["manifestDigest"], arm_d.as_str());
    if cfg!(target_arch = "x86_64") {
        let host = json(&["sbom", &src, "--tls-verify=false", "-o", "json"]);
        assert_eq!(host["source"]["manifestDigest"], amd_d.as_str());
        assert_eq!(rows(&host).len(), 2);
    }
    let err = failure(&[
        "sbom",
        &src,
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
    ]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}
