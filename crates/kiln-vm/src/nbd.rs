//! An NBD server for one [`Disk`], spoken to by QEMU's built-in NBD client
//! (`-drive file=nbd:unix:SOCK` or `nbd+unix:///NAME?socket=SOCK`).
//!
//! It implements the fixed-newstyle handshake (options `EXPORT_NAME`,
//! `GO`, `INFO`, `LIST`, `ABORT`; others are declined so the client falls
//! back) and simple replies for `READ`, `WRITE` (with `FUA`), `FLUSH`,
//! `TRIM` and `WRITE_ZEROES`, following the protocol document
//! (NetworkBlockDevice/nbd `doc/proto.md`). Every guest write goes
//! through [`Device::write_at`], which is what lets migration track it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::disk::Device;
use crate::error::{Result, VmError};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const KNOWN_CLIENT_FLAGS: u32 = (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) as u32;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;

const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
const INFO_EXPORT: u16 = 0;

const TX_HAS_FLAGS: u16 = 1 << 0;
const TX_READ_ONLY: u16 = 1 << 1;
const TX_SEND_FLUSH: u16 = 1 << 2;
const TX_SEND_FUA: u16 = 1 << 3;
const TX_SEND_TRIM: u16 = 1 << 5;
const TX_SEND_WRITE_ZEROES: u16 = 1 << 6;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_FLAG_FUA: u16 = 1 << 0;

const EPERM: u32 = 1;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

/// Longest option payload accepted (an export name is at most 4096 bytes).
const MAX_OPTION: u32 = 16 << 10;
/// Longest read or write payload accepted; QEMU sends at most 32 MiB.
const MAX_PAYLOAD: u32 = 32 << 20;

/// A disk offered under a name.
#[derive(Debug)]
pub struct Export {
    /// The name clients ask for; an empty request means this export.
    pub name: String,
    /// The disk behind it.
    pub disk: Arc<dyn Device>,
    /// Refuse writes (a source that has handed its VM over).
    pub read_only: bool,
}

/// A running server: an accept loop and a thread per connection.
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    errors: Arc<Mutex<Vec<VmError>>>,
}

impl Server {
    /// Listen on the unix socket `socket` (made here) and serve `export`.
    pub fn spawn(socket: &Path, export: Export) -> Result<Server> {
        let listener = UnixListener::bind(socket).map_err(|source| VmError::Io {
            peer: socket.display().to_string(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let export = Arc::new(export);
        let accept = {
            let (stop, errors) = (Arc::clone(&stop), Arc::clone(&errors));
            let name = socket.display().to_string();
            std::thread::spawn(move || accept_loop(&listener, &export, &stop, &errors, &name))
        };
        Ok(Server {
            socket: socket.to_path_buf(),
            stop,
            accept: Some(accept),
            errors,
        })
    }

    /// Errors of connections that ended badly, oldest first, cleared.
    pub fn take_errors(&self) -> Vec<VmError> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stop accepting; connections already open finish on their own.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

fn accept_loop(
    listener: &UnixListener,
    export: &Arc<Export>,
    stop: &AtomicBool,
    errors: &Arc<Mutex<Vec<VmError>>>,
    name: &str,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if !readable(listener, STOP_POLL_MS) {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        n += 1;
        let (export, errors) = (Arc::clone(export), Arc::clone(errors));
        let peer = format!("{name}#{n}");
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &export, &peer) {
                errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
            }
        });
    }
}

/// How often the accept loop looks at its stop flag, in milliseconds.
const STOP_POLL_MS: i32 = 100;

/// Wait up to `ms` for a connection to accept. (Polling rather than a
/// blocking accept lets the server stop even when its socket file is gone.)
fn readable(listener: &UnixListener, ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for a descriptor the listener owns.
    let ready = unsafe { libc::poll(&mut fd, 1, ms) };
    ready > 0 && fd.revents & libc::POLLIN != 0
}

/// Serve one client on `stream` until it disconnects.
pub fn serve<S: Read + Write>(mut stream: S, export: &Export, peer: &str) -> Result<()> {
    let mut c = Conn {
        s: &mut stream,
        peer,
    };
    if c.handshake(export)? {
        c.transmission(export)
    } else {
        Ok(())
    }
}

struct Conn<'a, S> {
    s: &'a mut S,
    peer: &'a str,
}

impl<S: Read + Write> Conn<'_, S> {
    fn io(&self, source: io::Error) -> VmError {
        VmError::Io {
            peer: self.peer.to_string(),
            source,
        }
    }

    fn bad(&self, reason: impl Into<String>) -> VmError {
        VmError::Protocol {
            peer: self.peer.to_string(),
            reason: reason.into(),
        }
    }

    fn read<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.s.read_exact(&mut b).map_err(|e| self.io(e))?;
        Ok(b)
    }

    fn read_vec(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.s.read_exact(&mut b).map_err(|e| self.io(e))?;
        Ok(b)
    }

    fn send(&mut self, parts: &[&[u8]]) -> Result<()> {
        let msg = parts.concat();
        self.s.write_all(&msg).map_err(|e| self.io(e))?;
        self.s.flush().map_err(|e| self.io(e))
    }

    fn tx_flags(export: &Export) -> u16 {
        let ro = if export.read_only { TX_READ_ONLY } else { 0 };
        TX_HAS_FLAGS | TX_SEND_FLUSH | TX_SEND_FUA | TX_SEND_TRIM | TX_SEND_WRITE_ZEROES | ro
    }

    /// Negotiate; true when the client chose the export, false when it
    /// aborted.
    fn handshake(&mut self, export: &Export) -> Result<bool> {
        let flags = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;
        self.send(&[
            &NBDMAGIC.to_be_bytes(),
            &IHAVEOPT.to_be_bytes(),
            &flags.to_be_bytes(),
        ])?;
        let client = u32::from_be_bytes(self.read()?);
        if client & !KNOWN_CLIENT_FLAGS != 0 || client & u32::from(FLAG_FIXED_NEWSTYLE) == 0 {
            return Err(self.bad(format!("unsupported client flags {client:#x}")));
        }
        let no_zeroes = client & u32::from(FLAG_NO_ZEROES) != 0;
        loop {
            let magic = u64::from_be_bytes(self.read()?);
            if magic != IHAVEOPT {
                return Err(self.bad(format!("option without IHAVEOPT magic ({magic:#x})")));
            }
            let opt = u32::from_be_bytes(self.read()?);
            let len = u32::from_be_bytes(self.read()?);
            if len > MAX_OPTION {
                return Err(self.bad(format!("option {opt} of {len} bytes is too long")));
            }
            let data = self.read_vec(len as usize)?;
            match opt {
                OPT_EXPORT_NAME => {
                    if !names(export, &data) {
                        return Err(self.bad("asked for an export that does not exist"));
                    }
                    let size = export.disk.size().to_be_bytes();
                    let fl = Self::tx_flags(export).to_be_bytes();
                    let pad = if no_zeroes { &[][..] } else { &[0u8; 124][..] };
                    self.send(&[&size, &fl, pad])?;
                    return Ok(true);
                }
                OPT_GO | OPT_INFO => {
                    if self.info(export, opt, &data)? && opt == OPT_GO {
                        return Ok(true);
                    }
                }
                OPT_LIST => {
                    let name = export.name.as_bytes();
                    let len = (name.len() as u32).to_be_bytes();
                    self.reply(opt, REP_SERVER, &[&len, name].concat())?;
                    self.reply(opt, REP_ACK, &[])?;
                }
                OPT_ABORT => {
                    let _ = self.reply(opt, REP_ACK, &[]);
                    return Ok(false);
                }
                _ => self.reply(opt, REP_ERR_UNSUP, &[])?,
            }
        }
    }

    /// Answer `GO`/`INFO`; true when the export was granted.
    fn info(&mut self, export: &Export, opt: u32, data: &[u8]) -> Result<bool> {
        let Some(name) = go_name(data) else {
            self.reply(opt, REP_ERR_INVALID, &[])?;
            return Ok(false);
        };
        if !names(export, name) {
            self.reply(opt, REP_ERR_UNKNOWN, &[])?;
            return Ok(false);
        }
        let info = [
            &INFO_EXPORT.to_be_bytes()[..],
            &export.disk.size().to_be_bytes(),
            &Self::tx_flags(export).to_be_bytes(),
        ]
        .concat();
        self.reply(opt, REP_INFO, &info)?;
        self.reply(opt, REP_ACK, &[])?;
        Ok(true)
    }

    fn reply(&mut self, opt: u32, kind: u32, data: &[u8]) -> Result<()> {
        let len = (data.len() as u32).to_be_bytes();
        self.send(&[
            &OPT_REPLY_MAGIC.to_be_bytes(),
            &opt.to_be_bytes(),
            &kind.to_be_bytes(),
            &len,
            data,
        ])
    }

    fn transmission(&mut self, export: &Export) -> Result<()> {
        loop {
            let head: [u8; 28] = match self.read() {
                Ok(h) => h,
                // A client that hangs up without NBD_CMD_DISC (QEMU killed).
                Err(VmError::Io { source, .. })
                    if source.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e),
            };
            let req = Request::parse(&head);
            if req.magic != REQUEST_MAGIC {
                return Err(self.bad(format!("request without magic ({:#x})", req.magic)));
            }
            if req.kind == CMD_DISC {
                return Ok(());
            }
            if (req.kind == CMD_READ || req.kind == CMD_WRITE) && req.length > MAX_PAYLOAD {
                return Err(self.bad(format!("request of {} bytes is too long", req.length)));
            }
            self.command(export, &req)?;
        }
    }

    fn command(&mut self, export: &Export, req: &Request) -> Result<()> {
        let disk = export.disk.as_ref();
        let (off, len) = (req.offset, u64::from(req.length));
        let in_range = off.checked_add(len).is_some_and(|end| end <= disk.size());
        let cookie = req.cookie.to_be_bytes();
        let simple =
            |err: u32| [&REPLY_MAGIC.to_be_bytes()[..], &err.to_be_bytes(), &cookie].concat();
        match req.kind {
            CMD_READ => {
                let mut buf = vec![0u8; len as usize];
                let err = if !in_range {
                    EINVAL
                } else {
                    errno(disk.read_at(&mut buf, off))
                };
                let data = if err == 0 { &buf[..] } else { &[][..] };
                self.send(&[&simple(err), data])
            }
            CMD_WRITE => {
                let data = self.read_vec(len as usize)?;
                let err = if export.read_only {
                    EPERM
                } else if !in_range {
                    ENOSPC
                } else {
                    errno(disk.write_at(&data, off).and_then(|()| fua(disk, req)))
                };
                self.send(&[&simple(err)])
            }
            CMD_WRITE_ZEROES => {
                let err = if export.read_only {
                    EPERM
                } else if !in_range {
                    ENOSPC
                } else {
                    errno(disk.write_zeroes(off, len).and_then(|()| fua(disk, req)))
                };
                self.send(&[&simple(err)])
            }
            CMD_FLUSH => self.send(&[&simple(errno(disk.flush()))]),
            // Advisory: the data stays, so copies stay equal to the source.
            CMD_TRIM => self.send(&[&simple(if in_range { 0 } else { EINVAL })]),
            _ => self.send(&[&simple(EINVAL)]),
        }
    }
}

struct Request {
    magic: u32,
    flags: u16,
    kind: u16,
    cookie: u64,
    offset: u64,
    length: u32,
}

impl Request {
    fn parse(h: &[u8; 28]) -> Request {
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let be64 = |i: usize| u64::from(be32(i)) << 32 | u64::from(be32(i + 4));
        Request {
            magic: be32(0),
            flags: u16::from_be_bytes([h[4], h[5]]),
            kind: u16::from_be_bytes([h[6], h[7]]),
            cookie: be64(8),
            offset: be64(16),
            length: be32(24),
        }
    }
}

fn fua(disk: &dyn Device, req: &Request) -> io::Result<()> {
    if req.flags & CMD_FLAG_FUA != 0 {
        disk.flush()
    } else {
        Ok(())
    }
}

fn errno(r: io::Result<()>) -> u32 {
    match r {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => EINVAL,
        Err(_) => EIO,
    }
}

/// Does a requested name (empty: the default) name this export?
fn names(export: &Export, requested: &[u8]) -> bool {
    requested.is_empty() || requested == export.name.as_bytes()
}

/// The export name inside a `GO`/`INFO` payload: u32 length, name, u16
/// count of info requests, the requests.
fn go_name(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4 + len)?;
    let count = u16::from_be_bytes(data.get(4 + len..6 + len)?.try_into().ok()?) as usize;
    (data.len() == 6 + len + 2 * count).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::Disk;

    /// A client of the raw protocol, for the replies QEMU never provokes
    /// (it refuses to write a read-only export before asking).
    fn client(read_only: bool) -> (tempfile::TempDir, std::os::unix::net::UnixStream) {
        use std::os::unix::net::UnixStream;
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::create(&dir.path().join("d"), 1 << 20, 4096).unwrap();
        let export = Export {
            name: "vmdisk".into(),
            disk: Arc::new(disk),
            read_only,
        };
        let (mut c, s) = UnixStream::pair().unwrap();
        std::thread::spawn(move || serve(s, &export, "test"));
        let mut greeting = [0u8; 18];
        c.read_exact(&mut greeting).unwrap();
        c.write_all(&3u32.to_be_bytes()).unwrap();
        let mut opt = IHAVEOPT.to_be_bytes().to_vec();
        opt.extend(OPT_EXPORT_NAME.to_be_bytes());
        opt.extend(6u32.to_be_bytes());
        opt.extend(b"vmdisk");
        c.write_all(&opt).unwrap();
        let mut info = [0u8; 10];
        c.read_exact(&mut info).unwrap();
        assert_eq!(u64::from_be_bytes(info[..8].try_into().unwrap()), 1 << 20);
        (dir, c)
    }

    fn request(c: &mut std::os::unix::net::UnixStream, kind: u16, off: u64, len: u32) -> u32 {
        let mut h = REQUEST_MAGIC.to_be_bytes().to_vec();
        h.extend(0u16.to_be_bytes());
        h.extend(kind.to_be_bytes());
        h.extend(7u64.to_be_bytes());
        h.extend(off.to_be_bytes());
        h.extend(len.to_be_bytes());
        if kind == CMD_WRITE {
            h.extend(vec![1u8; len as usize]);
        }
        c.write_all(&h).unwrap();
        let mut r = [0u8; 16];
        c.read_exact(&mut r).unwrap();
        assert_eq!(u32::from_be_bytes(r[..4].try_into().unwrap()), REPLY_MAGIC);
        assert_eq!(u64::from_be_bytes(r[8..].try_into().unwrap()), 7);
        u32::from_be_bytes(r[4..8].try_into().unwrap())
    }

    #[test]
    fn errors_for_read_only_writes_and_ranges_past_the_end() {
        let (_dir, mut c) = client(true);
        assert_eq!(request(&mut c, CMD_WRITE, 0, 512), EPERM);
        assert_eq!(request(&mut c, CMD_WRITE_ZEROES, 0, 512), EPERM);
        let (_dir, mut c) = client(false);
        assert_eq!(request(&mut c, CMD_WRITE, (1 << 20) - 256, 512), ENOSPC);
        assert_eq!(request(&mut c, CMD_READ, u64::MAX - 10, 512), EINVAL);
        assert_eq!(request(&mut c, 99, 0, 0), EINVAL);
        assert_eq!(request(&mut c, CMD_WRITE, 0, 512), 0);
    }

    #[test]
    fn go_payloads_are_checked() {
        let mut ok = 4u32.to_be_bytes().to_vec();
        ok.extend(b"disk");
        ok.extend(1u16.to_be_bytes());
        ok.extend(3u16.to_be_bytes());
        assert_eq!(go_name(&ok), Some(&b"disk"[..]));
        assert_eq!(go_name(&ok[..ok.len() - 1]), None);
        assert_eq!(go_name(&u32::MAX.to_be_bytes()), None);
        assert_eq!(go_name(&[]), None);
    }

    #[test]
    fn requests_parse_big_endian() {
        let mut h = [0u8; 28];
        h[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        h[6..8].copy_from_slice(&CMD_WRITE.to_be_bytes());
        h[8..16].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        h[16..24].copy_from_slice(&(5u64 << 32).to_be_bytes());
        h[24..].copy_from_slice(&512u32.to_be_bytes());
        let r = Request::parse(&h);
        assert_eq!((r.magic, r.kind, r.length), (REQUEST_MAGIC, CMD_WRITE, 512));
        assert_eq!((r.cookie, r.offset), (0x0102_0304_0506_0708, 5 << 32));
    }
}
