//! rpm's NDB package database (`Packages.db`, SUSE): 4 KiB slot pages
//! after a 32-byte header, each slot naming a blob by block offset and
//! count (16-byte blocks); each blob framed by a head (`BlbS`, index,
//! timestamp, length) and a tail (Adler-32, length, `BlbE`), all
//! little-endian, as `lib/backend/ndb/rpmpkg.c` writes them.

use super::RpmError;

const DB_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const HEAD_MAGIC: &[u8; 4] = b"BlbS";
const TAIL_MAGIC: &[u8; 4] = b"BlbE";
const PAGE: usize = 4096;
const SLOT: usize = 16;
const BLK: usize = 16;
const HEAD: usize = 16;
const TAIL: usize = 12;

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// Adler-32 (RFC 1950), which the blob tails carry.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// Every package blob in an NDB `Packages.db`, in slot order.
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, RpmError> {
    if data.get(..4) != Some(DB_MAGIC) {
        return Err(RpmError::Ndb("not an rpm NDB database (no RpmP magic)"));
    }
    if le32(data, 4) != 0 {
        return Err(RpmError::Ndb("unsupported NDB version"));
    }
    let slot_pages = le32(data, 12) as usize;
    let slots_end = slot_pages
        .checked_mul(PAGE)
        .filter(|&e| e <= data.len() && e > 0)
        .ok_or(RpmError::Ndb("slot pages past the end of the file"))?;
    let min_blk = slots_end / BLK;
    let mut out = Vec::new();
    for at in (32..slots_end).step_by(SLOT) {
        if data.get(at..at + 4) != Some(SLOT_MAGIC) {
            return Err(RpmError::Ndb("bad slot magic"));
        }
        let (idx, blkoff, blkcnt) = (le32(data, at + 4), le32(data, at + 8), le32(data, at + 12));
        if blkoff == 0 {
            continue;
        }
        if idx == 0 || blkcnt == 0 || (blkoff as usize) < min_blk {
            return Err(RpmError::Ndb("bad slot"));
        }
        out.push(blob(data, idx, blkoff as usize, blkcnt as usize)?);
    }
    Ok(out)
}

fn blob(data: &[u8], idx: u32, blkoff: usize, blkcnt: usize) -> Result<Vec<u8>, RpmError> {
    let start = blkoff * BLK;
    let region = blkcnt
        .checked_mul(BLK)
        .and_then(|n| data.get(start..start.checked_add(n)?))
        .ok_or(RpmError::Ndb("blob past the end of the file (truncated)"))?;
    if region.len() < HEAD + TAIL || &region[..4] != HEAD_MAGIC || le32(region, 4) != idx {
        return Err(RpmError::Ndb("bad blob head"));
    }
    let len = le32(region, 12) as usize;
    if blkcnt != (HEAD + len + TAIL).div_ceil(BLK) {
        return Err(RpmError::Ndb("blob length disagrees with its slot"));
    }
    let tail = &region[region.len() - TAIL..];
    if &tail[8..] != TAIL_MAGIC || le32(tail, 4) as usize != len {
        return Err(RpmError::Ndb("bad blob tail"));
    }
    if le32(tail, 0) != adler32(&region[..region.len() - TAIL]) {
        return Err(RpmError::Ndb("blob checksum mismatch"));
    }
    Ok(region[HEAD..HEAD + len].to_vec())
}

/// Write blobs in NDB's layout (what rpm's `rpmpkgPut` produces for a
/// fresh database): how tests make `Packages.db` fixtures from header
/// blobs rpm wrote, since Debian's rpm has no NDB backend.
pub fn write(blobs: &[Vec<u8>]) -> Vec<u8> {
    let slot_pages = (32 + blobs.len() * SLOT).div_ceil(PAGE).max(1);
    let mut out = vec![0u8; slot_pages * PAGE];
    out[..4].copy_from_slice(DB_MAGIC);
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[12..16].copy_from_slice(&(slot_pages as u32).to_le_bytes());
    out[16..20].copy_from_slice(&(blobs.len() as u32 + 1).to_le_bytes());
    for at in (32..slot_pages * PAGE).step_by(SLOT) {
        out[at..at + 4].copy_from_slice(SLOT_MAGIC);
    }
    for (i, b) in blobs.iter().enumerate() {
        let idx = i as u32 + 1;
        let blkcnt = (HEAD + b.len() + TAIL).div_ceil(BLK);
        let blkoff = out.len() / BLK;
        let slot = 32 + i * SLOT;
        out[slot + 4..slot + 8].copy_from_slice(&idx.to_le_bytes());
        out[slot + 8..slot + 12].copy_from_slice(&(blkoff as u32).to_le_bytes());
        out[slot + 12..slot + 16].copy_from_slice(&(blkcnt as u32).to_le_bytes());
        let mut region = Vec::with_capacity(blkcnt * BLK);
        region.extend_from_slice(HEAD_MAGIC);
        region.extend_from_slice(&idx.to_le_bytes());
        region.extend_from_slice(&0u32.to_le_bytes());
        region.extend_from_slice(&(b.len() as u32).to_le_bytes());
        region.extend_from_slice(b);
        region.resize(blkcnt * BLK - TAIL, 0);
        let sum = adler32(&region);
        region.extend_from_slice(&sum.to_le_bytes());
        region.extend_from_slice(&(b.len() as u32).to_le_bytes());
        region.extend_from_slice(TAIL_MAGIC);
        out.extend(region);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let blobs = vec![b"first header".to_vec(), vec![7u8; 5000]];
        let db = write(&blobs);
        assert_eq!(values(&db).unwrap(), blobs);
        assert!(values(&db[..db.len() - 1]).is_err());
        let mut flipped = db.clone();
        let n = flipped.len() - 20;
        flipped[n] ^= 1;
        assert!(matches!(values(&flipped), Err(RpmError::Ndb(m)) if m.contains("checksum")));
        assert!(values(b"garbage").is_err());
    }

    #[test]
    fn adler32_matches_rfc1950() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
