//! Moving a disk that is in use to another host, in Silo's three phases:
//!
//! 1. **Pre-copy** ([`Source::round`]): while the guest runs, send every
//!    block, then in each further round only the blocks written since.
//! 2. **Switchover** ([`Source::switchover`]): with the guest paused, the
//!    blocks still dirty are named to the destination as stale, and the
//!    destination confirms before its guest may resume.
//! 3. Either **stop-and-copy** (send them before the guest resumes) or
//!    **post-copy**: the guest resumes at the destination at once; a block
//!    it touches that is not there yet is requested and sent ahead of the
//!    background copy ([`Incoming`] as the guest's [`Device`];
//!    [`Switched::finish`] on the source).
//!
//! Every block travels with its SHA-256 and is checked on arrival. The
//! source learns that the destination owns every block (`OWNED`) before
//! it lets go.

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::disk::{block_digest, Device, Disk};
use crate::error::{Result, VmError};

const HELLO: u8 = 1;
const BLOCK: u8 = 2;
const STALE: u8 = 3;
const DONE: u8 = 4;
const NEED: u8 = 5;
const OWNED: u8 = 6;
const SWITCHED: u8 = 7;
/// Bytes received between two nudges of the kernel's writeback. Left
/// to itself the kernel keeps a copied disk in dirty page cache, and the
/// resumed guest's first flush (PostgreSQL's first commit) waits for all
/// of it: half a second per 500 MB here.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// A block of zeroes, sent without its bytes: a fresh VM disk is mostly
/// unwritten, so the first round would otherwise send gigabytes of zeroes.
const ZERO: u8 = 8;
/// Largest frame: one block of at most 16 MiB and its header, or a list
/// of stale blocks.
const MAX_FRAME: usize = 64 << 20;

/// What one pre-copy round sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Round {
    /// Blocks sent.
    pub blocks: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// How long the round took.
    pub millis: u64,
    /// Blocks the guest dirtied while the round ran (the next round's).
    pub dirtied: u64,
    /// The guest's dirty rate during the round, blocks a second.
    pub dirty_rate: u64,
}

/// What the final phase sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Finish {
    /// Blocks still dirty at switchover.
    pub stale: u64,
    /// Of those, sent ahead of the rest because the guest asked.
    pub on_demand: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// From switchover until the destination owned every block.
    pub millis: u64,
    /// The root digest of the disk as sent (the last version of every
    /// block): the destination's [`Incoming::root`] must equal it.
    pub sent_root: String,
}

fn frame(w: &mut impl Write, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    w.write_all(&[tag])?;
    w.write_all(&(len as u32).to_be_bytes())?;
    for p in parts {
        w.write_all(p)?;
    }
    Ok(())
}

fn read_frame(r: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is too long"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// The peer's address, for errors; `role` when it has none.
fn peer_name(stream: &TcpStream, role: &str) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| role.to_string(), |a| a.to_string())
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The sending side of a disk migration.
pub struct Source {
    disk: Arc<Disk>,
    peer: String,
    out: BufWriter<TcpStream>,
    stream: TcpStream,
    /// The SHA-256 of each block's last version sent.
    sent: Vec<[u8; 32]>,
}

impl Source {
    /// Start migrating `disk` over `stream` (to [`Incoming::accept`]);
    /// every block is dirty, so the first round sends them all.
    pub fn start(disk: Arc<Disk>, stream: TcpStream) -> Result<Source> {
        let peer = peer_name(&stream, "destination");
        let io = |source| VmError::Io {
            peer: peer.clone(),
            source,
        };
        // Frames are small and answered at once (STALE, NEED, DONE):
        // Nagle's delay would add to the guest's pause.
        stream.set_nodelay(true).map_err(io)?;
        fail_fast(&stream).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let blocks = disk.blocks() as usize;
        let mut s = Source {
            disk,
            peer: peer.clone(),
            out: BufWriter::with_capacity(1 << 20, writer),
            stream,
            sent: vec![[0; 32]; blocks],
        };
        let hello = [
            s.disk.size().to_be_bytes(),
            s.disk.block_size().to_be_bytes(),
        ]
        .concat();
        frame(&mut s.out, HELLO, &[&hello]).map_err(io)?;
        s.out.flush().map_err(io)?;
        s.disk.mark_all_dirty();
        Ok(s)
    }

    fn io(&self, source: io::Error) -> VmError {
        VmError::Io {
            peer: self.peer.clone(),
            source,
        }
    }

    /// Blocks written since the last round.
    pub fn dirty(&self) -> u64 {
        self.disk.dirty_count()
    }

    /// One pre-copy round: send the blocks dirty now.
    pub fn round(&mut self) -> Result<Round> {
        let t = Instant::now();
        let blocks = self.disk.take_dirty();
        let mut bytes = 0;
        for &b in &blocks {
            bytes += self.send_block(b)?;
        }
        self.out.flush().map_err(|e| self.io(e))?;
        let (took, dirtied) = (t.elapsed(), self.disk.dirty_count());
        Ok(Round {
            blocks: blocks.len() as u64,
            bytes,
            millis: took.as_millis() as u64,
            dirtied,
            dirty_rate: (dirtied as f64 / took.as_secs_f64().max(1e-3)) as u64,
        })
    }

    fn send_block(&mut self, b: u64) -> Result<u64> {
        let (_, len) = self.disk.block_range(b)?;
        let full = len == self.disk.block_size();
        let data = if full && self.disk.is_hole(b) {
            None
        } else {
            Some(self.disk.read_block(b)?).filter(|d| d.iter().any(|&x| x != 0))
        };
        let Some(data) = data else {
            frame(&mut self.out, ZERO, &[&b.to_be_bytes()]).map_err(|e| self.io(e))?;
            self.sent[b as usize] = self.disk.zero_digest(len);
            return Ok(0);
        };
        let sum = block_digest(&data);
        frame(&mut self.out, BLOCK, &[&b.to_be_bytes(), &sum, &data]).map_err(|e| self.io(e))?;
        self.sent[b as usize] = sum;
        Ok(data.len() as u64)
    }

    /// With the guest paused: name the blocks still dirty as stale, and
    /// wait until the destination has marked them missing, so that its
    /// guest, once resumed, can never read one.
    pub fn switchover(mut self) -> Result<Switched> {
        let start = Instant::now();
        let stale = self.disk.take_dirty();
        let list: Vec<u8> = stale.iter().flat_map(|b| b.to_be_bytes()).collect();
        frame(&mut self.out, STALE, &[&list]).map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))?;
        let events = self.listen()?;
        let mut early = Vec::new();
        loop {
            match events.recv() {
                Ok(Event::Switched) => break,
                Ok(Event::Need(b)) => early.push(b),
                Ok(Event::Owned) => return Err(self.io(bad_data("OWNED before the stale blocks"))),
                Ok(Event::Failed(e)) => return Err(self.io(e)),
                Err(_) => return Err(self.io(io::ErrorKind::UnexpectedEof.into())),
            }
        }
        Ok(Switched {
            src: self,
            stale,
            events,
            early,
            start,
        })
    }

    /// Read the destination's requests on a thread of their own.
    fn listen(&self) -> Result<mpsc::Receiver<Event>> {
        let mut r = self.stream.try_clone().map_err(|e| self.io(e))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || loop {
            let ev = match read_frame(&mut r) {
                Ok((NEED, b)) => match be64(&b, 0) {
                    Some(i) => Event::Need(i),
                    None => Event::Failed(bad_data("a NEED frame without a block")),
                },
                Ok((OWNED, _)) => Event::Owned,
                Ok((SWITCHED, _)) => Event::Switched,
                Ok((tag, _)) => Event::Failed(bad_data(&format!("unexpected frame {tag}"))),
                Err(e) => Event::Failed(e),
            };
            let last = matches!(ev, Event::Owned | Event::Failed(_));
            if tx.send(ev).is_err() || last {
                return;
            }
        });
        Ok(rx)
    }
}

/// A source past switchover: the stale blocks are still to send.
pub struct Switched {
    src: Source,
    stale: Vec<u64>,
    events: mpsc::Receiver<Event>,
    early: Vec<u64>,
    start: Instant,
}

impl Switched {
    /// Blocks the destination does not have yet.
    pub fn stale(&self) -> u64 {
        self.stale.len() as u64
    }

    /// Send the stale blocks, those the destination asks for first, at
    /// most `bandwidth` bytes a second for the rest (unlimited when
    /// `None`). Returns once the destination owns every block.
    pub fn finish(mut self, bandwidth: Option<u64>) -> Result<Finish> {
        let mut todo: VecDeque<u64> = self.stale.iter().copied().collect();
        let mut pending: HashSet<u64> = self.stale.iter().copied().collect();
        let mut asked: VecDeque<u64> = std::mem::take(&mut self.early).into();
        let (mut bytes, mut on_demand) = (0u64, 0u64);
        let t = Instant::now();
        while !pending.is_empty() {
            while let Ok(ev) = self.events.try_recv() {
                match ev {
                    Event::Need(b) => asked.push_back(b),
                    Event::Failed(e) => return Err(self.src.io(e)),
                    Event::Owned | Event::Switched => {}
                }
            }
            let (b, on_request) = match asked.pop_front() {
                Some(b) => (b, true),
                None => match todo.pop_front() {
                    Some(b) => (b, false),
                    None => break,
                },
            };
            if !pending.remove(&b) {
                continue; // already on its way, or never stale
            }
            bytes += self.src.send_block(b)?;
            if on_request {
                on_demand += 1;
                self.src.out.flush().map_err(|e| self.src.io(e))?;
            } else if let Some(rate) = bandwidth {
                self.src.out.flush().map_err(|e| self.src.io(e))?;
                pace(t, bytes, rate);
            }
        }
        frame(&mut self.src.out, DONE, &[]).map_err(|e| self.src.io(e))?;
        self.src.out.flush().map_err(|e| self.src.io(e))?;
        loop {
            match self.events.recv() {
                Ok(Event::Owned) => break,
                Ok(Event::Need(_) | Event::Switched) => {}
                Ok(Event::Failed(e)) => return Err(self.src.io(e)),
                Err(_) => return Err(self.src.io(io::ErrorKind::UnexpectedEof.into())),
            }
        }
        Ok(Finish {
            stale: self.stale.len() as u64,
            on_demand,
            bytes,
            millis: self.start.elapsed().as_millis() as u64,
            sent_root: crate::disk::root_of(self.src.sent.iter()),
        })
    }
}

enum Event {
    Need(u64),
    Switched,
    Owned,
    Failed(io::Error),
}

fn bad_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Sleep so that `bytes` since `start` stay under `rate` bytes a second.
fn pace(start: Instant, bytes: u64, rate: u64) {
    let due = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
    if let Some(wait) = due.checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }
}

/// The receiving side: the disk as it arrives, usable by the guest as
/// soon as the source has named the stale blocks.
#[derive(Debug)]
pub struct Incoming {
    disk: Arc<Disk>,
    peer: String,
    present: Vec<AtomicU64>,
    /// The SHA-256 of each block's last version received: with every
    /// block here, they describe the source's final disk.
    received: Mutex<Vec<[u8; 32]>>,
    /// Set once the stale list arrived: from then on the guest may run.
    state: Mutex<State>,
    arrived: Condvar,
    requests: Mutex<TcpStream>,
    asked: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    switched: bool,
    /// Every block is here.
    done: bool,
    failed: Option<String>,
}

impl Incoming {
    /// Receive a disk on `stream` into a new file at `path`. Returns the
    /// incoming disk and the thread that receives it, which ends with
    /// the number of blocks received once the source sent them all.
    pub fn accept(
        path: &Path,
        stream: TcpStream,
    ) -> Result<(Arc<Incoming>, JoinHandle<Result<u64>>)> {
        let peer = peer_name(&stream, "source");
        let io = |source| VmError::Io {
            peer: peer.clone(),
            source,
        };
        stream.set_nodelay(true).map_err(io)?;
        fail_fast(&stream).map_err(io)?;
        let mut r = io::BufReader::with_capacity(1 << 20, stream.try_clone().map_err(io)?);
        let (tag, hello) = read_frame(&mut r).map_err(io)?;
        let (Some(size), Some(block), HELLO) = (be64(&hello, 0), be64(&hello, 8), tag) else {
            return Err(VmError::Protocol {
                peer,
                reason: "the migration did not start with HELLO".into(),
            });
        };
        let disk = Arc::new(Disk::create(path, size, block)?);
        let blocks = disk.blocks() as usize;
        let words = blocks.div_ceil(64);
        let inc = Arc::new(Incoming {
            disk,
            peer,
            present: (0..words).map(|_| AtomicU64::new(0)).collect(),
            received: Mutex::new(vec![[0; 32]; blocks]),
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            requests: Mutex::new(stream),
            asked: AtomicU64::new(0),
        });
        let rx = Arc::clone(&inc);
        let handle = std::thread::spawn(move || {
            let res = rx.receive(&mut r);
            let mut st = rx.lock();
            if let Err(e) = &res {
                st.failed = Some(e.to_string());
            }
            drop(st);
            rx.arrived.notify_all();
            res
        });
        Ok((inc, handle))
    }

    /// The disk being filled.
    pub fn disk(&self) -> &Arc<Disk> {
        &self.disk
    }

    /// Whether every block has arrived.
    pub fn complete(&self) -> bool {
        self.lock().done
    }

    /// Whether the migration failed, and why.
    pub fn failed(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Blocks the guest asked for before they arrived.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::Acquire)
    }

    /// Wait until the source has named the stale blocks (the guest may
    /// resume here from then on); false if the migration failed first.
    pub fn wait_switchover(&self) -> bool {
        let mut st = self.lock();
        while !st.switched && st.failed.is_none() {
            st = self.arrived.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.failed.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has(&self, b: u64) -> bool {
        self.present[(b / 64) as usize].load(Ordering::Acquire) & (1 << (b % 64)) != 0
    }

    fn set(&self, b: u64, on: bool) {
        let w = &self.present[(b / 64) as usize];
        if on {
            w.fetch_or(1 << (b % 64), Ordering::AcqRel);
        } else {
            w.fetch_and(!(1 << (b % 64)), Ordering::AcqRel);
        }
    }

    fn receive(&self, r: &mut impl Read) -> Result<u64> {
        let io = |source| VmError::Io {
            peer: self.peer.clone(),
            source,
        };
        let (mut received, mut unsynced) = (0, 0u64);
        loop {
            let (tag, body) = read_frame(r).map_err(io)?;
            match tag {
                BLOCK => {
                    let (Some(b), Some(sum)) = (be64(&body, 0), body.get(8..40)) else {
                        return Err(self.bad("a BLOCK frame too short"));
                    };
                    let sum: [u8; 32] = sum.try_into().map_err(|_| self.bad("bad digest"))?;
                    self.disk.put_block(b, &body[40..], &sum)?;
                    self.record(b, sum);
                    self.arrive(b);
                    received += 1;
                    unsynced += body.len() as u64;
                    if unsynced >= WRITEBACK_EVERY {
                        self.disk.start_writeback();
                        unsynced = 0;
                    }
                }
                ZERO => {
                    let b = be64(&body, 0).ok_or_else(|| self.bad("a ZERO frame too short"))?;
                    self.disk.put_zero(b)?;
                    let (_, len) = self.disk.block_range(b)?;
                    self.record(b, self.disk.zero_digest(len));
                    self.arrive(b);
                    received += 1;
                }
                STALE => {
                    for b in body.chunks_exact(8).filter_map(|c| be64(c, 0)) {
                        self.set(b, false);
                    }
                    self.lock().switched = true;
                    self.arrived.notify_all();
                    let mut w = self.requests.lock().unwrap_or_else(|e| e.into_inner());
                    frame(&mut *w, SWITCHED, &[]).map_err(io)?;
                    drop(w);
                    self.disk.start_writeback();
                }
                DONE => {
                    if let Some(b) = (0..self.disk.blocks()).find(|b| !self.has(*b)) {
                        return Err(self.bad(&format!("DONE with block {b} never sent")));
                    }
                    let mut w = self.requests.lock().unwrap_or_else(|e| e.into_inner());
                    frame(&mut *w, OWNED, &[]).map_err(io)?;
                    self.lock().done = true;
                    return Ok(received);
                }
                t => return Err(self.bad(&format!("unexpected frame {t}"))),
            }
        }
    }

    fn record(&self, b: u64, sum: [u8; 32]) {
        let mut r = self.received.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = r.get_mut(b as usize) {
            *slot = sum;
        }
    }

    /// Once every block is here: the root digest of the disk as the
    /// source last sent it (before this host's guest wrote to it), to
    /// compare with [`Disk::root`] on the source.
    pub fn root(&self) -> Option<String> {
        if !self.complete() {
            return None;
        }
        let r = self.received.lock().unwrap_or_else(|e| e.into_inner());
        Some(crate::disk::root_of(r.iter()))
    }

    /// Block `b` is here: wake any guest request waiting for it.
    fn arrive(&self, b: u64) {
        self.set(b, true);
        // Through the lock, so a guest between its check and its wait
        // cannot miss the wake-up.
        drop(self.lock());
        self.arrived.notify_all();
    }

    fn bad(&self, reason: &str) -> VmError {
        VmError::Protocol {
            peer: self.peer.clone(),
            reason: reason.to_string(),
        }
    }

    /// Make the blocks of `offset..offset+len` present, asking the source
    /// for each missing one and waiting for it. Before switchover the
    /// guest is not running here: the destination's QEMU only probes its
    /// disk, so a read gets what has arrived so far and a write is refused.
    fn ensure(&self, offset: u64, len: u64, write: bool) -> io::Result<()> {
        if !self.lock().switched {
            if write {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the disk is still arriving; the guest runs here only after switchover",
                ));
            }
            return Ok(());
        }
        if len == 0 || offset.checked_add(len).is_none_or(|e| e > self.disk.size()) {
            return Ok(()); // the disk's own range check answers
        }
        let bs = self.disk.block_size();
        for b in offset / bs..=(offset + len - 1) / bs {
            if self.has(b) {
                continue;
            }
            self.asked.fetch_add(1, Ordering::AcqRel);
            {
                let mut w = self.requests.lock().unwrap_or_else(|e| e.into_inner());
                frame(&mut *w, NEED, &[&b.to_be_bytes()])?;
            }
            let mut st = self.lock();
            while !self.has(b) {
                if let Some(f) = &st.failed {
                    return Err(io::Error::other(format!("migration failed: {f}")));
                }
                st = self.arrived.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        Ok(())
    }
}

impl Device for Incoming {
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.ensure(offset, buf.len() as u64, false)?;
        self.disk.read_at(buf, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.ensure(offset, data.len() as u64, true)?;
        self.disk.write_at(data, offset)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.ensure(offset, len, true)?;
        self.disk.write_zeroes(offset, len)
    }
    fn flush(&self) -> io::Result<()> {
        self.disk.flush()
    }
}

/// How long a migration connection may go without an answer from its
/// peer (unacknowledged data, or keepalive probes) before it fails.
pub const DEAD_PEER: Duration = Duration::from_secs(15);

/// Make `stream` fail within [`DEAD_PEER`] when its peer vanishes (a
/// network cut sends no FIN or RST; without this a blocked read or write
/// would wait for TCP's own limits, a quarter of an hour).
pub fn fail_fast(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let secs = DEAD_PEER.as_secs() as libc::c_int;
    let set = |level, name, value: libc::c_int| {
        // SAFETY: setsockopt on an open socket with a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs / 3)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, secs * 2 / 3)?;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, secs * 1000)
}
