//! The agents' control protocol: one JSON request line per connection,
//! answered by event lines and one final `ok` or `error` line. Between
//! agents (a migration's `incoming`), raw bytes follow the request and
//! the connection stays open until the destination runs the guest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, VmError};
use crate::guest::Process;
use crate::machine::Accel;
use crate::ram::Postcopy;

/// Longest request or reply line: a VM spec with its environment.
const MAX_LINE: u64 = 4 << 20;

/// What a client asks an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Boot an image as a new microVM.
    Run(RunRequest),
    /// Every VM this agent knows.
    List,
    /// One VM in full.
    Inspect { name: String },
    /// Power a VM off, keeping its disk.
    Stop { name: String },
    /// Boot a stopped VM again from its disk.
    Start { name: String },
    /// Delete a VM and its disk (running ones only with `force`).
    Rm { name: String, force: bool },
    /// Move a running VM to another agent.
    Migrate(MigrateRequest),
    /// From another agent: receive a VM. The kernel's and then the
    /// initramfs's bytes follow the line.
    Incoming(IncomingRequest),
}

/// `kiln vm run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    pub name: String,
    /// The image, as any kiln source names it (opened by the agent).
    pub source: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub disk_size: u64,
    /// The guest's address, `ADDR/PREFIX`.
    pub ip: String,
    pub gateway: Option<String>,
    /// `K=V`, over the image's own environment.
    pub env: Vec<String>,
}

/// `kiln migrate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrateRequest {
    pub name: String,
    /// The destination agent, `HOST:PORT`.
    pub to: String,
    pub postcopy: Postcopy,
    pub max_downtime_ms: u64,
    /// Bytes a second for memory and the post-copy disk pull.
    pub bandwidth: Option<u64>,
    /// Re-read the source's disk after the move and report its root
    /// digest, to compare with what the destination received.
    #[serde(default)]
    pub verify: bool,
}

/// Everything a destination needs to start an equal QEMU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingRequest {
    pub spec: VmSpec,
    pub postcopy: Postcopy,
    pub kernel_len: u64,
    pub initrd_len: u64,
}

/// A VM as created, unchanged by migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    pub name: String,
    pub source: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub disk_size: u64,
    pub mac: String,
    pub process: Process,
    pub accel: Accel,
    /// RFC 3339.
    pub created: String,
}

/// One reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// Progress, or a step of the agent-to-agent exchange.
    Event(Value),
    /// The request succeeded; its result.
    Ok(Value),
    /// The request failed; why.
    Error(String),
}

/// Write one JSON line.
pub fn send_line(w: &mut impl Write, v: &impl Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_string(v).map_err(std::io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes())?;
    w.flush()
}

/// Read one JSON line; `None` at end of stream.
pub fn read_line<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    if r.take(MAX_LINE).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A connection to an agent.
pub struct Client {
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connect to the agent at `host` (`ADDR:PORT`).
    pub fn connect(host: &str) -> Result<Client> {
        let err = |e: std::io::Error| VmError::agent(host, e);
        let addr = host
            .to_socket_addrs()
            .map_err(err)?
            .next()
            .ok_or_else(|| VmError::agent(host, "no address"))?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(err)?;
        stream.set_nodelay(true).map_err(err)?;
        crate::sync::fail_fast(&stream).map_err(err)?;
        Ok(Client {
            host: host.to_string(),
            reader: BufReader::new(stream.try_clone().map_err(err)?),
            writer: stream,
        })
    }

    /// Send `req`; call `event` for each event line, and return the
    /// final result (an agent's error as [`VmError::Agent`]).
    pub fn call(&mut self, req: &Request, mut event: impl FnMut(Value)) -> Result<Value> {
        send_line(&mut self.writer, req).map_err(|e| VmError::agent(&self.host, e))?;
        loop {
            match self.reply()? {
                Reply::Event(v) => event(v),
                Reply::Ok(v) => return Ok(v),
                Reply::Error(e) => return Err(VmError::refused(&self.host, e)),
            }
        }
    }

    /// The next reply line.
    pub fn reply(&mut self) -> Result<Reply> {
        match read_line(&mut self.reader) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(VmError::agent(
                &self.host,
                "the agent closed the connection",
            )),
            Err(e) => Err(VmError::agent(&self.host, e)),
        }
    }

    /// Send a request line without waiting for the answer.
    pub fn send(&mut self, req: &Request) -> Result<()> {
        send_line(&mut self.writer, req).map_err(|e| VmError::agent(&self.host, e))
    }

    /// Send raw bytes (after an `incoming` request).
    pub fn send_raw(&mut self, r: &mut impl Read) -> Result<u64> {
        std::io::copy(r, &mut self.writer).map_err(|e| VmError::agent(&self.host, e))
    }

    /// The agent's IP address as this connection reached it (where the
    /// disk and memory streams go).
    pub fn peer_ip(&self) -> Result<std::net::IpAddr> {
        self.writer
            .peer_addr()
            .map(|a| a.ip())
            .map_err(|e| VmError::agent(&self.host, e))
    }

    /// Wait at most `t` for each reply from now on (`None`: forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.writer
            .set_read_timeout(t)
            .map_err(|e| VmError::agent(&self.host, e))
    }
}
