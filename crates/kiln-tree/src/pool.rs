//! Reusable file buffers for reading layers.
//!
//! A fresh `Vec` per file costs more than its bytes: `read_to_end` zero-
//! fills spare capacity for readers without `read_buf` (tar entries and
//! inflaters), the new pages fault in, and glibc maps and unmaps large
//! blocks. On a 400 MB layer that was about 6% of a scan's CPU. Buffers
//! here go back to the pool when the job that hashed them is done, already
//! initialised and paged in.

use std::io::{self, Read};
use std::ops::Deref;
use std::sync::Mutex;

/// Buffers larger than this are not kept: a rare huge file should not pin
/// its memory for the rest of the scan.
const MAX_KEPT_BUFFER: usize = 16 << 20;
/// The most bytes kept idle in the pool.
const MAX_KEPT_BYTES: usize = 64 << 20;
/// The most buffers kept idle: finding the best fit is a scan of them, and
/// a layer of small files could otherwise leave thousands.
const MAX_KEPT_BUFFERS: usize = 64;

/// Idle buffers; each is initialised over its whole length.
#[derive(Default)]
pub(crate) struct Pool {
    free: Mutex<Free>,
}

#[derive(Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
    /// The sum of their lengths.
    bytes: usize,
}

/// A pooled buffer holding one file's bytes; it returns to its pool when
/// dropped.
pub(crate) struct Buf<'p> {
    pool: &'p Pool,
    vec: Vec<u8>,
    len: usize,
}

impl Pool {
    /// A buffer of at least `size` initialised bytes: the smallest idle
    /// one that fits, else the largest grown to fit (only the growth is
    /// zeroed), else a new one.
    fn take(&self, size: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let fit = free
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= size)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let largest = || (0..free.bufs.len()).max_by_key(|&i| free.bufs[i].len());
        let mut vec = match fit.or_else(largest) {
            Some(i) => free.bufs.swap_remove(i),
            None => Vec::new(),
        };
        free.bytes -= vec.len();
        drop(free);
        if vec.len() < size {
            vec.resize(size, 0);
        }
        vec
    }

    fn give_back(&self, vec: Vec<u8>) {
        if vec.len() > MAX_KEPT_BUFFER {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.bufs.len() < MAX_KEPT_BUFFERS && free.bytes + vec.len() <= MAX_KEPT_BYTES {
            free.bytes += vec.len();
            free.bufs.push(vec);
        }
    }

    /// Read exactly `size` bytes from `r` into a pooled buffer. A short
    /// read is not an error here: the buffer holds what came, and the
    /// caller compares its length with the size it expected.
    pub(crate) fn read(&self, r: &mut impl Read, size: usize) -> io::Result<Buf<'_>> {
        let mut vec = self.take(size);
        let mut len = 0;
        while len < size {
            match r.read(&mut vec[len..size]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.give_back(vec);
                    return Err(e);
                }
            }
        }
        Ok(Buf {
            pool: self,
            vec,
            len,
        })
    }
}

impl Deref for Buf<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.vec[..self.len]
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.vec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_holds_exactly_what_was_read_and_is_reused() {
        let pool = Pool::default();
        let first = pool.read(&mut &b"hello world"[..], 11).unwrap();
        assert_eq!(&*first, b"hello world");
        let ptr = first.vec.as_ptr();
        drop(first);
        // A smaller file reuses the same memory and sees only its bytes.
        let second = pool.read(&mut &b"abc"[..], 3).unwrap();
        assert_eq!(&*second, b"abc");
        assert_eq!(second.vec.as_ptr(), ptr);
    }

    #[test]
    fn a_short_stream_gives_a_short_buffer() {
        let pool = Pool::default();
        let b = pool.read(&mut &b"abc"[..], 10).unwrap();
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn huge_buffers_are_not_kept() {
        let pool = Pool::default();
        pool.give_back(vec![0; MAX_KEPT_BUFFER + 1]);
        assert!(pool.free.lock().unwrap().bufs.is_empty());
    }
}
