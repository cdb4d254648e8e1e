//! A client of QEMU's machine protocol (QMP): JSON lines over a unix
//! socket. Commands and their replies alternate; asynchronous events may
//! arrive in between and are kept for whoever wants them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Result, VmError};

/// One QMP session.
#[derive(Debug)]
pub struct Qmp {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
}

impl Qmp {
    /// Connect to the monitor socket of a QEMU that is starting (waiting
    /// up to `wait` for the socket), and leave capabilities negotiation.
    pub fn connect(socket: &Path, wait: Duration) -> Result<Qmp> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= wait => {
                    return Err(VmError::qmp(socket, format!("cannot connect: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let writer = stream
            .try_clone()
            .map_err(|e| VmError::qmp(socket, e.to_string()))?;
        let mut q = Qmp {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(VmError::qmp(socket, format!("no QMP greeting: {greeting}")));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| VmError::qmp(&self.socket, e.to_string()))?;
        if n == 0 {
            return Err(VmError::qmp(&self.socket, "QEMU closed the monitor"));
        }
        serde_json::from_str(&line)
            .map_err(|e| VmError::qmp(&self.socket, format!("bad JSON from QEMU ({e}): {line}")))
    }

    /// Run `command` with `arguments`; its `return` value, or its error
    /// as QEMU described it.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if arguments.as_object().is_some_and(|a| !a.is_empty()) {
            msg["arguments"] = arguments;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| VmError::qmp(&self.socket, e.to_string()))?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                let desc = e
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(VmError::qmp(&self.socket, format!("{command}: {desc}")));
            }
            self.events.push(v);
        }
    }

    /// Events seen since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// The VM's run state (`running`, `paused`, `postmigrate`, `inmigrate`…).
    pub fn status(&mut self) -> Result<String> {
        let s = self.execute("query-status", json!({}))?;
        Ok(s["status"].as_str().unwrap_or("unknown").to_string())
    }
}
