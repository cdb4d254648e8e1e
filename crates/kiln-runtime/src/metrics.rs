//! The HTTP endpoint of kiln's long-running commands (`kiln trace
//! --metrics`, `kiln host serve --metrics`): `GET /metrics` answers with
//! the caller's OpenMetrics text, anything else with 404. One server, so
//! every command answers scrapers the same way.

use std::net::SocketAddr;

use crate::error::{Result, RuntimeError};

/// The content type of the OpenMetrics text format, which Prometheus reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `render()` at `http://ADDR/metrics` from a thread until the
/// process ends. Returns the address bound, which tells a caller that
/// asked for port 0 where to scrape.
pub fn serve<F>(addr: &str, render: F) -> Result<SocketAddr>
where
    F: Fn() -> String + Send + 'static,
{
    let failed = |why: String| RuntimeError::Sys {
        what: format!("serving metrics on {addr}"),
        err: std::io::Error::other(why),
    };
    let server = tiny_http::Server::http(addr).map_err(|e| failed(e.to_string()))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| failed("not an IP address".into()))?;
    std::thread::spawn(move || {
        let header = tiny_http::Header::from_bytes("Content-Type", OPENMETRICS).ok();
        for req in server.incoming_requests() {
            let resp = if req.url().split('?').next() == Some("/metrics") {
                let mut r = tiny_http::Response::from_string(render());
                if let Some(h) = header.clone() {
                    r.add_header(h);
                }
                r
            } else {
                tiny_http::Response::from_string("not found; metrics are at /metrics\n")
                    .with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn metrics_are_served_and_other_paths_are_not() {
        let addr = super::serve("127.0.0.1:0", || "up 1\n# EOF\n".to_string()).unwrap();
        let ok = get(addr, "/metrics");
        assert!(
            ok.starts_with("HTTP/1.0 200") || ok.starts_with("HTTP/1.1 200"),
            "{ok}"
        );
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(ok.ends_with("up 1\n# EOF\n"), "{ok}");
        assert!(get(addr, "/").contains(" 404 "));
        assert!(super::serve("256.0.0.1:1", String::new).is_err());
    }
}
