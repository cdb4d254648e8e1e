//! Berkeley DB hash databases (`Packages`, rpm ≤ 4.15 and RHEL ≤ 8), read
//! without libdb: every hash page's key/value pairs, with values that
//! live on overflow pages followed along their chain. Page numbers are
//! checked against the file and every chain is bounded, so a page loop or
//! a truncated file is an error, not a hang.

use super::RpmError;

const HASH_MAGIC: u32 = 0x0006_1561;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
const PAGE_HEADER: usize = 26;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    pages: usize,
    big_endian: bool,
}

impl Db<'_> {
    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    }

    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }

    fn page(&self, n: usize) -> Result<&[u8], RpmError> {
        let at = n
            .checked_mul(self.page_size)
            .ok_or(RpmError::Bdb("page number overflows"))?;
        self.data
            .get(at..at + self.page_size)
            .ok_or(RpmError::Bdb("page past the end of the file"))
    }

    /// The value of an off-page item: the overflow chain from `pgno`,
    /// `len` bytes long.
    fn overflow(&self, mut pgno: u32, len: usize) -> Result<Vec<u8>, RpmError> {
        let mut out = Vec::with_capacity(len.min(self.data.len()));
        let mut seen = std::collections::HashSet::new();
        while out.len() < len {
            if pgno == 0 {
                return Err(RpmError::Bdb("overflow chain ends early"));
            }
            if !seen.insert(pgno) {
                return Err(RpmError::Bdb("overflow chain loops"));
            }
            let page = self.page(pgno as usize)?;
            if page[25] != P_OVERFLOW {
                return Err(RpmError::Bdb(
                    "overflow chain reaches a page of another type",
                ));
            }
            let used = self.u16(page, 22).unwrap_or(0) as usize;
            let chunk = page
                .get(PAGE_HEADER..PAGE_HEADER + used)
                .ok_or(RpmError::Bdb("overflow page length past the page"))?;
            out.extend_from_slice(chunk);
            pgno = self.u32(page, 16).unwrap_or(0);
        }
        out.truncate(len);
        Ok(out)
    }

    /// One hash page's values (every second item).
    fn values(&self, page: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), RpmError> {
        let n = self.u16(page, 20).unwrap_or(0) as usize;
        let offsets: Vec<usize> = (0..n)
            .map(|i| self.u16(page, PAGE_HEADER + 2 * i).map(usize::from))
            .collect::<Option<_>>()
            .ok_or(RpmError::Bdb("item index past the page"))?;
        for i in (1..n).step_by(2) {
            let at = offsets[i];
            // Items are packed downwards from the page's end: a value ends
            // where its key, the item before it, starts.
            let end = offsets[i - 1];
            let item = page
                .get(at..end.max(at))
                .filter(|it| !it.is_empty())
                .ok_or(RpmError::Bdb("item past the page"))?;
            match item[0] {
                H_KEYDATA => out.push(item[1..].to_vec()),
                H_OFFPAGE => {
                    let pgno = self
                        .u32(item, 4)
                        .ok_or(RpmError::Bdb("short off-page item"))?;
                    let len = self
                        .u32(item, 8)
                        .ok_or(RpmError::Bdb("short off-page item"))?;
                    out.push(self.overflow(pgno, len as usize)?);
                }
                _ => return Err(RpmError::Bdb("unsupported hash item (duplicates)")),
            }
        }
        Ok(())
    }
}

/// Every value stored in a Berkeley DB hash file, in page order.
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, RpmError> {
    let meta = data
        .get(..72)
        .ok_or(RpmError::Bdb("file shorter than its meta page"))?;
    let le = u32::from_le_bytes([meta[12], meta[13], meta[14], meta[15]]);
    let be = u32::from_be_bytes([meta[12], meta[13], meta[14], meta[15]]);
    let big_endian = match (le == HASH_MAGIC, be == HASH_MAGIC) {
        (true, _) => false,
        (_, true) => true,
        _ => return Err(RpmError::Bdb("not a Berkeley DB hash file")),
    };
    let mut db = Db {
        data,
        page_size: 0,
        pages: 0,
        big_endian,
    };
    let page_size = db.u32(meta, 20).unwrap_or(0) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(RpmError::Bdb("bad page size"));
    }
    if meta[24] != 0 {
        return Err(RpmError::Bdb("encrypted database"));
    }
    db.page_size = page_size;
    db.pages = data.len() / page_size;
    let last = db.u32(meta, 32).unwrap_or(0) as usize;
    if last >= db.pages {
        return Err(RpmError::Bdb(
            "truncated: last page past the end of the file",
        ));
    }
    let mut out = Vec::new();
    for n in 1..=last {
        let page = db.page(n)?;
        if matches!(page[25], P_HASH | P_HASH_UNSORTED) {
            db.values(page, &mut out)?;
        }
    }
    Ok(out)
}
