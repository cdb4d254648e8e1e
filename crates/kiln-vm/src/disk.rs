//! A VM disk as a plain file with a per-block dirty bitmap.
//!
//! Migration copies a disk while its guest keeps writing. The bitmap says
//! which blocks changed since the copier last looked: a guest write marks
//! its blocks *after* the data is in the file, so a block a pre-copy round
//! read before the write landed is marked again and sent again in the
//! next round; no write is ever lost between rounds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

use crate::error::{Result, VmError};

/// Default block: the unit of dirty tracking, copying and verification.
pub const DEFAULT_BLOCK: u64 = 64 << 10;
/// Largest zero buffer written at once for a write-zeroes request.
const ZERO_CHUNK: usize = 1 << 20;

/// What an NBD export serves: a [`Disk`], or a disk still arriving
/// ([`crate::sync::Incoming`]) whose blocks are fetched on first touch.
pub trait Device: Send + Sync + std::fmt::Debug {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write `data` at `offset`.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Write `len` zero bytes at `offset`.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Make completed writes durable.
    fn flush(&self) -> io::Result<()>;
}

impl Device for Disk {
    fn size(&self) -> u64 {
        Disk::size(self)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        Disk::read_at(self, buf, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        Disk::write_at(self, data, offset)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        Disk::write_zeroes(self, offset, len)
    }
    fn flush(&self) -> io::Result<()> {
        Disk::flush(self)
    }
}

/// A disk file, its size and its dirty blocks.
#[derive(Debug)]
pub struct Disk {
    path: PathBuf,
    file: File,
    size: u64,
    block: u64,
    dirty: Vec<AtomicU64>,
    /// The digest of a full block of zeroes, computed once: holes and
    /// zero blocks are most of a fresh disk.
    zero: OnceLock<[u8; 32]>,
}

impl Disk {
    /// Make a new, sparse disk of `size` bytes at `path` (which must not
    /// exist yet).
    pub fn create(path: &Path, size: u64, block: u64) -> Result<Disk> {
        let io_err = |source| VmError::disk(path, source);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err)?;
        file.set_len(size).map_err(io_err)?;
        Disk::with_file(path, file, size, block)
    }

    /// Open an existing disk file; its length is the disk's size.
    pub fn open(path: &Path, block: u64) -> Result<Disk> {
        let io_err = |source| VmError::disk(path, source);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        Disk::with_file(path, file, size, block)
    }

    fn with_file(path: &Path, file: File, size: u64, block: u64) -> Result<Disk> {
        if block < 512 || !block.is_power_of_two() {
            return Err(VmError::BlockSize(block));
        }
        let blocks = size.div_ceil(block);
        Ok(Disk {
            path: path.to_path_buf(),
            file,
            size,
            block,
            dirty: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            zero: OnceLock::new(),
        })
    }

    /// The disk file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u64 {
        self.block
    }

    /// Number of blocks (the last one may be short).
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(self.block)
    }

    /// Fill `buf` from `offset`. The range must lie inside the disk.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check(offset, buf.len() as u64)?;
        self.file.read_exact_at(buf, offset)
    }

    /// Write `data` at `offset`, then mark its blocks dirty.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.check(offset, data.len() as u64)?;
        self.file.write_all_at(data, offset)?;
        self.mark(offset, data.len() as u64);
        Ok(())
    }

    /// Write `len` zero bytes at `offset`, then mark their blocks dirty.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        let zeroes = vec![0u8; ZERO_CHUNK.min(len as usize)];
        let mut at = offset;
        while at < offset + len {
            let n = (offset + len - at).min(zeroes.len() as u64) as usize;
            self.file.write_all_at(&zeroes[..n], at)?;
            at += n as u64;
        }
        self.mark(offset, len);
        Ok(())
    }

    /// Start writing the file's dirty pages back, without waiting: a
    /// later flush then waits for little.
    pub fn start_writeback(&self) {
        // SAFETY: sync_file_range on an open descriptor; the whole file.
        unsafe { libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }

    /// Make every completed write durable.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes at {offset} run past the end of the disk ({} bytes)",
                    self.size
                ),
            )),
        }
    }

    fn mark(&self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (first, last) = (offset / self.block, (offset + len - 1) / self.block);
        for b in first..=last {
            self.dirty[(b / 64) as usize].fetch_or(1 << (b % 64), Ordering::AcqRel);
        }
    }

    /// Mark every block dirty: the first pre-copy round sends them all.
    pub fn mark_all_dirty(&self) {
        self.mark(0, self.size);
    }

    /// How many blocks are dirty now.
    pub fn dirty_count(&self) -> u64 {
        let ones = self
            .dirty
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones());
        ones.map(u64::from).sum()
    }

    /// The dirty blocks, ascending, clearing their marks: a block written
    /// after this call is reported by the next one.
    pub fn take_dirty(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for (w, word) in self.dirty.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                out.push(w as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        out
    }

    /// The bytes of block `i` (short for a disk's last, partial block).
    pub fn read_block(&self, i: u64) -> Result<Vec<u8>> {
        let (offset, len) = self.block_range(i)?;
        let mut buf = vec![0u8; len as usize];
        self.read_at(&mut buf, offset)
            .map_err(|e| VmError::disk(&self.path, e))?;
        Ok(buf)
    }

    /// Store block `i` as copied from another host, after checking it
    /// against the SHA-256 its sender computed. It is not marked dirty:
    /// it is a copy of the source, not a guest write.
    pub fn put_block(&self, i: u64, data: &[u8], sha256: &[u8; 32]) -> Result<()> {
        let (offset, len) = self.block_range(i)?;
        if data.len() as u64 != len || &block_digest(data) != sha256 {
            return Err(VmError::BlockDigest {
                path: self.path.clone(),
                block: i,
            });
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| VmError::disk(&self.path, e))
    }

    /// Whether block `i` lies wholly in a hole of the file (reads as
    /// zeroes without being stored): a fresh disk is mostly holes, and
    /// asking the file system is far cheaper than reading them.
    pub fn is_hole(&self, i: u64) -> bool {
        let Ok((offset, len)) = self.block_range(i) else {
            return false;
        };
        // SAFETY: lseek on an open descriptor; it moves no data.
        let data = unsafe { libc::lseek(self.file.as_raw_fd(), offset as i64, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data from here to the end of the file.
            return io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
        }
        data as u64 >= offset + len
    }

    /// Make block `i` zeroes, as copied from another host (not dirty).
    /// Punching a hole keeps a sparse copy sparse.
    pub fn put_zero(&self, i: u64) -> Result<()> {
        let (offset, len) = self.block_range(i)?;
        if self.is_hole(i) {
            return Ok(());
        }
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on an open file descriptor with a checked range.
        let rc =
            unsafe { libc::fallocate(self.file.as_raw_fd(), punch, offset as i64, len as i64) };
        if rc == 0 {
            return Ok(());
        }
        // A file system without hole punching: write the zeroes.
        self.file
            .write_all_at(&vec![0u8; len as usize], offset)
            .map_err(|e| VmError::disk(&self.path, e))
    }

    /// The byte range of block `i`: (offset, length).
    pub fn block_range(&self, i: u64) -> Result<(u64, u64)> {
        if i >= self.blocks() {
            return Err(VmError::BlockRange {
                path: self.path.clone(),
                block: i,
                blocks: self.blocks(),
            });
        }
        let offset = i * self.block;
        Ok((offset, self.block.min(self.size - offset)))
    }

    /// The disk's root digest ([`root_of`]); holes are hashed without
    /// being read.
    pub fn root(&self) -> Result<String> {
        let mut sums = Vec::with_capacity(self.blocks() as usize);
        for i in 0..self.blocks() {
            let (_, len) = self.block_range(i)?;
            if len == self.block && self.is_hole(i) {
                sums.push(self.zero_digest(len));
            } else {
                sums.push(block_digest(&self.read_block(i)?));
            }
        }
        Ok(root_of(sums.iter()))
    }

    /// The digest of `len` zero bytes, as a hole or zero block of `len`
    /// bytes has it (only the disk's last block can be shorter).
    pub fn zero_digest(&self, len: u64) -> [u8; 32] {
        if len == self.block {
            *self
                .zero
                .get_or_init(|| block_digest(&vec![0; len as usize]))
        } else {
            block_digest(&vec![0; len as usize])
        }
    }

    /// SHA-256 of the whole disk, to check that a copy equals its source.
    pub fn digest(&self) -> Result<[u8; 32]> {
        let mut h = Sha256::new();
        for i in 0..self.blocks() {
            h.update(self.read_block(i)?);
        }
        Ok(h.finalize().into())
    }
}

/// The root digest of a disk: SHA-256 over its blocks' SHA-256s in
/// order, in hex. Both ends of a migration can compute it without
/// holding the whole disk at once.
pub fn root_of<'a>(blocks: impl Iterator<Item = &'a [u8; 32]>) -> String {
    let mut h = Sha256::new();
    for b in blocks {
        h.update(b);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of one block's bytes, as sent beside it.
pub fn block_digest(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(size: u64) -> (tempfile::TempDir, Disk) {
        let dir = tempfile::tempdir().unwrap();
        let d = Disk::create(&dir.path().join("disk.raw"), size, 4096).unwrap();
        (dir, d)
    }

    #[test]
    fn writes_mark_every_block_they_touch_and_take_clears() {
        let (_dir, d) = disk(1 << 20);
        d.write_at(&[1; 10], 4090).unwrap(); // blocks 0 and 1
        d.write_zeroes(64 * 4096, 4097).unwrap(); // blocks 64 and 65
        assert_eq!(d.dirty_count(), 4);
        assert_eq!(d.take_dirty(), vec![0, 1, 64, 65]);
        assert!(d.take_dirty().is_empty());
        let mut buf = [0u8; 10];
        d.read_at(&mut buf, 4090).unwrap();
        assert_eq!(buf, [1; 10]);
    }

    #[test]
    fn a_partial_last_block_and_ranges_past_the_end() {
        let (_dir, d) = disk(3 * 4096 + 100);
        assert_eq!(d.blocks(), 4);
        d.mark_all_dirty();
        assert_eq!(d.take_dirty(), vec![0, 1, 2, 3]);
        assert_eq!(d.read_block(3).unwrap().len(), 100);
        assert!(d.read_block(4).is_err());
        let err = d.write_at(&[0; 2], 3 * 4096 + 99).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(d.read_at(&mut [0; 1], u64::MAX).is_err());
    }

    #[test]
    fn copied_blocks_are_verified_and_not_dirty() {
        let (_dir, src) = disk(8192);
        let (_dir2, dst) = disk(8192);
        src.write_at(&[7; 4096], 4096).unwrap();
        let b = src.read_block(1).unwrap();
        dst.put_block(1, &b, &block_digest(&b)).unwrap();
        assert_eq!(dst.dirty_count(), 0);
        assert_eq!(dst.digest().unwrap(), src.digest().unwrap());
        let err = dst.put_block(0, &b, &[0; 32]).unwrap_err();
        assert!(
            err.to_string().contains("block 0 arrived corrupted"),
            "{err}"
        );
    }

    #[test]
    fn holes_are_seen_and_zero_copies_stay_sparse() {
        let (_dir, d) = disk(1 << 20);
        d.write_at(&[1; 10], 5 * 4096).unwrap();
        d.flush().unwrap();
        assert!(d.is_hole(0) && d.is_hole(255));
        assert!(!d.is_hole(5));
        d.put_zero(5).unwrap();
        assert_eq!(d.read_block(5).unwrap(), vec![0; 4096]);
        assert!(!d.is_hole(256), "past the end is not a hole");
    }

    #[test]
    fn a_bad_block_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Disk::create(&dir.path().join("d"), 4096, 1000).unwrap_err();
        assert!(matches!(err, VmError::BlockSize(1000)));
    }
}
