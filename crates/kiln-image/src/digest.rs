//! Content digests and a reader that verifies one while the bytes stream.

use std::fmt;
use std::io::{self, BufRead, Read};

use sha2::{Digest as _, Sha256};

use crate::error::ImageError;

/// A validated `sha256:<hex>` content digest.
///
/// Only sha256 is accepted: it is what every registry and runtime emits, and
/// refusing the rest means a digest kiln prints is one it has verified.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parse `sha256:<64 lower-case hex digits>`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageError::BadDigest(s.to_string()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ImageError::BadDigest(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    /// The 64 hex digits, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm name; always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// Check `data` against this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), ImageError> {
        let actual = Digest::of(data);
        if &actual != self {
            return Err(ImageError::DigestMismatch {
                expected: self.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// A short form for progress messages: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Hashes everything read through it and, at end of stream, fails the read
/// if the content does not match the expected digest (and size, if known).
///
/// Verification happens at EOF, so the consumer must read the stream to the
/// end; [`crate::LayerReader::finish`] drains what a tar reader leaves.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    expected_size: Option<u64>,
    read: u64,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Wrap `inner`, expecting it to hash to `expected`.
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            expected_size,
            read: 0,
            verified: false,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        if let Some(size) = self.expected_size {
            if size != self.read {
                return Err(ImageError::SizeMismatch {
                    digest: self.expected.to_string(),
                    expected: size,
                    actual: self.read,
                }
                .into_io());
            }
        }
        let actual = Digest {
            hex: hex::encode(std::mem::take(&mut self.hasher).finalize()),
        };
        if actual != self.expected {
            return Err(ImageError::DigestMismatch {
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            }
            .into_io());
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.check()?;
            return Ok(0);
        }
        self.read += n as u64;
        if let Some(size) = self.expected_size {
            if self.read > size {
                return Err(ImageError::SizeMismatch {
                    digest: self.expected.to_string(),
                    expected: size,
                    actual: self.read,
                }
                .into_io());
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Runs a reader on a helper thread that hands 1 MiB chunks over a
/// bounded channel (the caller chooses how many chunks). Layer reading is a pipeline
/// whose stages are all CPU-bound — blob I/O and digest, inflate, tar
/// parsing and file hashing — so each stage gets a thread of its own.
pub struct Prefetch {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Spent chunks go back for reuse: zeroing fresh 1 MiB buffers would
    /// cost the producing thread (often the inflater) a memset per chunk.
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Prefetch {
    /// Start reading `inner` on a helper thread, at most `depth` chunks
    /// ahead of the consumer.
    pub fn spawn<R: Read + Send + 'static>(inner: R, depth: usize) -> Self {
        Self::spawn_then(inner, depth, || {})
    }

    /// [`Prefetch::spawn`] for a pipeline's critical stage, the inflater:
    /// its thread leaves the batch class ([`crate::sched`]).
    pub(crate) fn spawn_critical<R: Read + Send + 'static>(inner: R, depth: usize) -> Self {
        Self::spawn_then(inner, depth, crate::sched::inflater)
    }

    fn spawn_then<R: Read + Send + 'static>(mut inner: R, depth: usize, first: fn()) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(depth);
        let (back, spent) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        std::thread::spawn(move || {
            first();
            Self::produce(&mut inner, &tx, &spent)
        });
        Prefetch {
            rx,
            back,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// The helper thread's loop: fill chunks from `inner` and send them
    /// until the stream ends, fails, or the consumer goes away.
    fn produce<R: Read>(
        inner: &mut R,
        tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
        spent: &std::sync::mpsc::Receiver<Vec<u8>>,
    ) {
        loop {
            let mut buf = match spent.try_recv() {
                Ok(mut b) => {
                    b.resize(1 << 20, 0);
                    b
                }
                Err(_) => vec![0u8; 1 << 20],
            };
            let mut filled = 0;
            // Fill whole chunks so the channel carries few, large messages.
            let res = loop {
                match inner.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(filled),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(filled);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            match res {
                Ok(0) => {
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return; // the consumer went away
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    }
}

/// Compressed chunks read ahead of the inflater: reading a blob from the
/// page cache and hashing it is fast and steady, so a few suffice.
const BLOB_AHEAD: usize = 4;

/// A [`VerifyingReader`] run through [`Prefetch`]: the blob's I/O and its
/// digest come off the thread that inflates it.
pub struct PrefetchVerifier;

impl PrefetchVerifier {
    /// Start reading and verifying `inner` on a helper thread.
    #[allow(clippy::new_ret_no_self)]
    pub fn spawn<R: Read + Send + 'static>(
        inner: R,
        expected: Digest,
        expected_size: Option<u64>,
    ) -> Prefetch {
        Prefetch::spawn(
            VerifyingReader::new(inner, expected, expected_size),
            BLOB_AHEAD,
        )
    }
}

impl Prefetch {
    /// Make the current chunk non-empty, unless the stream has ended.
    fn refill(&mut self) -> io::Result<()> {
        while self.pos == self.cur.len() && !self.done {
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.cur, chunk);
                    if spent.capacity() > 0 {
                        let _ = self.back.try_send(spent);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("blob reader thread stopped"));
                }
            }
        }
        Ok(())
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.fill_buf()?;
        let n = buf.len().min(chunk.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.cur.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"hello");
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:00").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "G".repeat(64))).is_err());
    }

    #[test]
    fn verifying_reader_accepts_good_and_rejects_bad() {
        let data = b"layer bytes".to_vec();
        let mut ok = VerifyingReader::new(&data[..], Digest::of(&data), Some(data.len() as u64));
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        let mut bad = VerifyingReader::new(&data[..], Digest::of(b"other"), None);
        let err = bad.read_to_end(&mut Vec::new()).unwrap_err();
        let inner = ImageError::from_io(&err).unwrap();
        assert!(
            matches!(inner, ImageError::DigestMismatch { .. }),
            "{inner}"
        );

        let mut short = VerifyingReader::new(&data[..], Digest::of(&data), Some(99));
        let err = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }

    /// Read in place through `BufRead` (as the inflater does), across
    /// chunk boundaries, the bytes are the same and still verified.
    #[test]
    fn prefetch_reads_in_place_across_chunks() {
        let data: Vec<u8> = (0..(3 << 20) + 12345).map(|i| (i % 251) as u8).collect();
        let mut r =
            PrefetchVerifier::spawn(std::io::Cursor::new(data.clone()), Digest::of(&data), None);
        let mut out = Vec::new();
        loop {
            let chunk = r.fill_buf().unwrap();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(70_000);
            out.extend_from_slice(&chunk[..n]);
            r.consume(n);
        }
        assert_eq!(out, data);
        let mut bad = PrefetchVerifier::spawn(std::io::Cursor::new(data), Digest::of(b"x"), None);
        let err = loop {
            match bad.fill_buf() {
                Ok([]) => panic!("a wrong digest went unnoticed"),
                Ok(c) => {
                    let n = c.len();
                    bad.consume(n)
                }
                Err(e) => break e,
            }
        };
        assert!(ImageError::from_io(&err).is_some(), "{err}");
    }

    #[test]
    fn prefetch_verifier_matches_and_fails_like_the_plain_one() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut ok =
            PrefetchVerifier::spawn(std::io::Cursor::new(data.clone()), Digest::of(&data), None);
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let mut bad = PrefetchVerifier::spawn(std::io::Cursor::new(data), Digest::of(b"x"), None);
        let err = bad.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            ImageError::from_io(&err),
            Some(ImageError::DigestMismatch { .. })
        ));
    }
}
