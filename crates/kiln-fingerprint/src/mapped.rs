//! Virtual addresses to file bytes, through the loadable segments (or the
//! section addresses of relocatable objects): how function hashing and
//! the version-function evaluator read code and constants.

use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;

/// The loaded image: maps virtual addresses to file bytes.
pub(crate) struct Image<'a> {
    data: &'a [u8],
    loads: Vec<(u64, u64, u64)>, // vaddr, filesz, offset
}

impl<'a> Image<'a> {
    pub(crate) fn new(data: &'a [u8], elf: &Elf) -> Image<'a> {
        let mut loads: Vec<(u64, u64, u64)> = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| (p.p_vaddr, p.p_filesz, p.p_offset))
            .collect();
        if loads.is_empty() {
            // Relocatable objects: sections are laid out at their offsets.
            loads = elf
                .section_headers
                .iter()
                .filter(|s| s.sh_addr != 0)
                .map(|s| (s.sh_addr, s.sh_size, s.sh_offset))
                .collect();
        }
        Image { data, loads }
    }

    /// The bytes at `addr`, at most `len` of them: up to the end of the
    /// segment holding `addr`.
    pub(crate) fn bytes(&self, addr: u64, len: u64) -> Option<&'a [u8]> {
        let (vaddr, filesz, offset) = self
            .loads
            .iter()
            .find(|(v, sz, _)| addr >= *v && addr < v.saturating_add(*sz))?;
        let within = addr - vaddr;
        let len = len.min(filesz - within);
        let start = usize::try_from(offset.checked_add(within)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }

    /// A little-endian integer of `width` bytes at `addr`.
    pub(crate) fn u64_at(&self, addr: u64, width: usize) -> Option<u64> {
        let b = self.bytes(addr, width as u64)?;
        if b.len() < width {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..width].copy_from_slice(&b[..width]);
        Some(u64::from_le_bytes(buf))
    }
}
