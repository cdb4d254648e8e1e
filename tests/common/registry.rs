//! Debian's `docker-registry` on loopback for the tests, stopped when the
//! test ends.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::write_file;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process stopped when the test ends, however it ends.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub enum Auth {
    None,
    Basic(PathBuf),
    Token { realm: String, bundle: PathBuf },
}

pub struct Registry {
    _server: Server,
    pub host: String,
}

impl Registry {
    pub fn start(dir: &Path, tls: Option<(&Path, &Path)>, auth: Auth) -> Registry {
        let port = free_port();
        let data = dir.join(format!("data-{port}"));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        );
        if let Some((cert, key)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        match auth {
            Auth::None => {}
            Auth::Basic(file) => config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                file.display()
            )),
            Auth::Token { realm, bundle } => config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: kiln-test\n    issuer: kiln-test-issuer\n    rootcertbundle: {}\n",
                bundle.display()
            )),
        }
        let path = dir.join(format!("registry-{port}.yml"));
        write_file(&path, &config);
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let server = Server(child);
        wait_for(port);
        Registry {
            _server: server,
            host: format!("127.0.0.1:{port}"),
        }
    }
}
