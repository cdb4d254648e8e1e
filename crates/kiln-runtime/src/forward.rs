//! `kiln port-forward`: a listener on the host whose connections are
//! relayed to a port inside the target's network namespace.
//!
//! One thread joins the target's network namespace (`setns` affects only
//! the calling thread) and makes every outgoing connection; a socket
//! keeps the namespace it was made in, so the relay threads need not be
//! in it. Each connection gets two relay threads, one per direction.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, RuntimeError};

type Reply = mpsc::Sender<std::io::Result<TcpStream>>;

/// Connections made inside the target's network namespace.
#[derive(Clone)]
pub struct Connector {
    requests: mpsc::Sender<Reply>,
    port: u16,
}

impl Connector {
    /// A thread in the network namespace of `pid` that connects to
    /// `127.0.0.1:port` there on request.
    pub fn new(pid: i32, port: u16) -> Result<Connector> {
        let ns = crate::sys::open(
            std::path::Path::new(&format!("/proc/{pid}/ns/net")),
            libc::O_RDONLY,
        )?;
        let (tx, rx) = mpsc::channel::<Reply>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let joined = crate::sys::setns(&ns, libc::CLONE_NEWNET, "target's network");
            let ok = joined.is_ok();
            let _ = ready_tx.send(joined);
            if !ok {
                return;
            }
            for reply in rx {
                let _ = reply.send(TcpStream::connect(("127.0.0.1", port)));
            }
        });
        ready_rx.recv().map_err(|_| RuntimeError::Sys {
            what: "start the connector thread".into(),
            err: std::io::Error::other("thread ended"),
        })??;
        Ok(Connector { requests: tx, port })
    }

    /// A new connection to the target's port.
    pub fn connect(&self) -> std::io::Result<TcpStream> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(tx)
            .map_err(|_| std::io::Error::other("connector thread ended"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("connector thread ended"))?
    }
}

/// Counters for a forwarding session.
#[derive(Default, Debug)]
pub struct Counters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes relayed, both directions.
    pub bytes: AtomicU64,
    /// Connections the target refused.
    pub failed: AtomicU64,
}

/// Accept on `listener` until `stop` is set, relaying each connection to
/// the target through `connector`.
pub fn serve(
    listener: TcpListener,
    connector: Connector,
    stop: &AtomicBool,
) -> Result<Arc<Counters>> {
    let counters = Arc::new(Counters::default());
    let local = listener.local_addr().ok();
    while !stop.load(Ordering::SeqCst) {
        if !readable(&listener, Duration::from_millis(200)) {
            continue;
        }
        let (client, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(RuntimeError::Sys {
                    what: format!("accept on {local:?}"),
                    err,
                })
            }
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let (c, n) = (connector.clone(), counters.clone());
        std::thread::spawn(move || handle(client, peer, &c, &n));
    }
    Ok(counters)
}

fn handle(client: TcpStream, peer: SocketAddr, connector: &Connector, n: &Counters) {
    let upstream = match connector.connect() {
        Ok(s) => s,
        Err(e) => {
            n.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "kiln: connection from {peer}: cannot connect to 127.0.0.1:{} in the target: {e}",
                connector.port
            );
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || relay(u2, c2));
    let sent = relay(client, upstream);
    let received = back.join().unwrap_or(0);
    n.bytes.fetch_add(sent + received, Ordering::Relaxed);
}

/// Copy until EOF, then half-close the other side so the peer sees it.
fn relay(from: TcpStream, to: TcpStream) -> u64 {
    let total = splice_all(&from, &to).unwrap_or_else(|| copy_all(&from, &to));
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
    total
}

/// Socket to socket through a pipe with `splice`, so the bytes never
/// enter user space. None if no pipe could be made.
fn splice_all(from: &TcpStream, to: &TcpStream) -> Option<u64> {
    let mut p = [0 as libc::c_int; 2];
    // SAFETY: a two-int array for pipe2.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: both fds were just made and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: F_SETPIPE_SZ on our own pipe; a failure keeps the default.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE;
    let mut total = 0u64;
    loop {
        // SAFETY: splice between fds we hold, no offsets.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                w.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 20,
                flags,
            )
        };
        if n <= 0 {
            return Some(total);
        }
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: as above.
            let m = unsafe {
                libc::splice(
                    r.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                    flags,
                )
            };
            if m <= 0 {
                return Some(total);
            }
            left -= m as usize;
            total += m as u64;
        }
    }
}

fn copy_all(mut from: &TcpStream, mut to: &TcpStream) -> u64 {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0;
    while let Ok(k) = from.read(&mut buf) {
        if k == 0 || to.write_all(&buf[..k]).is_err() {
            break;
        }
        total += k as u64;
    }
    total
}

fn readable(listener: &TcpListener, wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) > 0 }
}

/// `[ADDR:]LOCAL_PORT:PORT` (ADDR may be `[v6]`; LOCAL_PORT 0 or empty
/// picks a free port). Returns the address to listen on and the target's
/// port.
pub fn parse_spec(spec: &str) -> std::result::Result<(SocketAddr, u16), String> {
    let bad = || format!("{spec}: expected [ADDR:]LOCAL_PORT:PORT, as 8080:80 or 0.0.0.0:8080:80");
    let (rest, port) = spec.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let (addr, local) = match rest.rsplit_once(':') {
        Some((a, l)) => (a.trim_start_matches('[').trim_end_matches(']'), l),
        None => ("127.0.0.1", rest),
    };
    let local: u16 = if local.is_empty() {
        0
    } else {
        local.parse().map_err(|_| bad())?
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    Ok((SocketAddr::new(ip, local), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("8080:80").unwrap(),
            ("127.0.0.1:8080".parse().unwrap(), 80)
        );
        assert_eq!(
            parse_spec(":80").unwrap(),
            ("127.0.0.1:0".parse().unwrap(), 80)
        );
        assert_eq!(
            parse_spec("0.0.0.0:9000:80").unwrap(),
            ("0.0.0.0:9000".parse().unwrap(), 80)
        );
        assert_eq!(
            parse_spec("[::1]:9000:80").unwrap(),
            ("[::1]:9000".parse().unwrap(), 80)
        );
        for bad in ["80", "x:80", "8080:0", "8080:70000", "host:1:2"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }
}
