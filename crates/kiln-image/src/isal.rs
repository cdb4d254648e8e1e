//! Streaming gzip inflate with Intel ISA-L (`isal_inflate`), the fastest
//! inflater available as a Debian package. ISA-L parses each member's
//! header and trailer and checks its CRC; members follow one another as in
//! `gzip -c a b`. Truncation, trailing garbage and corrupt data are errors,
//! never a short read.

use std::io::{self, BufRead, Read};

use isal_sys::igzip_lib as ffi;

/// Multi-member gzip reader over a `BufRead`, inflated by ISA-L.
pub struct IsalGzip<R: BufRead> {
    r: R,
    // Boxed: the state is large (tens of KiB) and must not move while ISA-L
    // holds pointers into it during a call.
    st: Box<ffi::inflate_state>,
    members: u64,
}

// SAFETY: the raw pointers inside `inflate_state` (next_in, next_out) are
// set immediately before each `isal_inflate` call to buffers borrowed for
// that call only and are never dereferenced between calls, so moving the
// reader to another thread is sound.
unsafe impl<R: BufRead + Send> Send for IsalGzip<R> {}

impl<R: BufRead> IsalGzip<R> {
    /// Wrap `r`.
    pub fn new(r: R) -> Self {
        // SAFETY: inflate_state is a plain C struct for which all-zero bytes
        // are a valid value; isal_inflate_init then sets it up.
        let mut st: Box<ffi::inflate_state> = Box::new(unsafe { std::mem::zeroed() });
        unsafe { ffi::isal_inflate_init(&mut *st) };
        st.crc_flag = ffi::ISAL_GZIP;
        IsalGzip { r, st, members: 0 }
    }

    fn finished(&self) -> bool {
        self.st.block_state == ffi::isal_block_state_ISAL_BLOCK_FINISH
    }
}

fn describe(code: i32) -> &'static str {
    match code {
        ffi::ISAL_INVALID_BLOCK => "invalid deflate block",
        ffi::ISAL_INVALID_SYMBOL => "invalid deflate symbol",
        ffi::ISAL_INVALID_LOOKBACK => "invalid distance (corrupt deflate data)",
        ffi::ISAL_INVALID_WRAPPER => "invalid gzip header",
        ffi::ISAL_UNSUPPORTED_METHOD => "unsupported gzip compression method",
        ffi::ISAL_INCORRECT_CHECKSUM => "gzip CRC or size check failed",
        _ => "corrupt gzip stream",
    }
}

impl<R: BufRead> Read for IsalGzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.finished() {
                // One member done: stop at end of input, or start the next.
                if self.r.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                unsafe { ffi::isal_inflate_reset(&mut *self.st) };
                self.st.crc_flag = ffi::ISAL_GZIP;
            }
            let input = self.r.fill_buf()?;
            let eof = input.is_empty();
            let avail = input.len().min(u32::MAX as usize);
            self.st.next_in = input.as_ptr() as *mut u8;
            self.st.avail_in = avail as u32;
            let out_len = buf.len().min(u32::MAX as usize);
            self.st.next_out = buf.as_mut_ptr();
            self.st.avail_out = out_len as u32;
            // SAFETY: next_in/avail_in describe the live `input` slice and
            // next_out/avail_out the live `buf`; ISA-L reads and writes only
            // within them and returns before they are released.
            let ret = unsafe { ffi::isal_inflate(&mut *self.st) };
            let used = avail - self.st.avail_in as usize;
            let produced = out_len - self.st.avail_out as usize;
            self.st.next_in = std::ptr::null_mut();
            self.st.next_out = std::ptr::null_mut();
            self.r.consume(used);
            if ret < 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, describe(ret)));
            }
            if self.finished() {
                self.members += 1;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if self.finished() {
                continue;
            }
            if eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated gzip stream",
                ));
            }
            if used == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "gzip stream stalled",
                ));
            }
        }
    }
}
