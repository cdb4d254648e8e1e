//! Function-level fingerprints: normalised machine-code hashes that
//! survive stripping, relinking and byte patches elsewhere in the file.
//!
//! Function boundaries come from `.eh_frame` FDEs, which `strip --strip-all`
//! keeps (found through `PT_GNU_EH_FRAME` when section headers are gone),
//! and from `FUNC` symbols where they exist. Each x86-64 function is
//! decoded with iced-x86, each AArch64 one with yaxpeax-arm (see `a64`),
//! and reduced to what does not move between builds or link layouts:
//! mnemonics, register operands and small immediates.
//! Absolute and RIP-relative addresses, branch and call targets and large
//! (relocated) immediates and displacements are masked. The sequence is
//! hashed with XXH3-64.

use std::collections::BTreeMap;

use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection};
use goblin::elf::header::{EM_AARCH64, EM_X86_64};
use goblin::elf::program_header::{PT_GNU_EH_FRAME, PT_LOAD};
use goblin::elf::sym::STT_FUNC;
use goblin::elf::Elf;
use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind};
use serde::{Deserialize, Serialize};

use crate::mapped::Image;

mod a64;

/// Immediates and displacements up to this magnitude are kept: struct
/// offsets, loop bounds, flags. Larger ones are usually addresses.
const SMALL: u64 = 0x1000;

/// One function's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionHash {
    /// Start address.
    pub start: u64,
    /// Size in bytes.
    pub len: u32,
    /// Instructions hashed.
    pub instructions: u32,
    /// XXH3-64 of the normalised instruction sequence.
    pub hash: u64,
}

/// Function ranges (start → length): FDEs first, symbols fill the gaps.
pub fn function_ranges(data: &[u8], elf: &Elf) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    if let Some((bytes, addr)) = eh_frame(data, elf) {
        let eh = EhFrame::new(bytes, LittleEndian);
        let bases = BaseAddresses::default().set_eh_frame(addr);
        let mut entries = eh.entries(&bases);
        while let Ok(Some(entry)) = entries.next() {
            if let CieOrFde::Fde(partial) = entry {
                if let Ok(fde) = partial.parse(|_, b, o| eh.cie_from_offset(b, o)) {
                    if fde.len() > 0 {
                        out.insert(fde.initial_address(), fde.len());
                    }
                }
            }
        }
    }
    for sym in elf.syms.iter().chain(elf.dynsyms.iter()) {
        if sym.st_type() == STT_FUNC && sym.st_shndx != 0 && sym.st_value != 0 && sym.st_size > 0 {
            out.entry(sym.st_value).or_insert(sym.st_size);
        }
    }
    out
}

/// The `.eh_frame` bytes and their address: by section name, else through
/// `PT_GNU_EH_FRAME` → `.eh_frame_hdr`'s `eh_frame_ptr`.
fn eh_frame<'a>(data: &'a [u8], elf: &Elf) -> Option<(&'a [u8], u64)> {
    for s in &elf.section_headers {
        if elf.shdr_strtab.get_at(s.sh_name) == Some(".eh_frame") {
            let start = usize::try_from(s.sh_offset).ok()?;
            let end = start.checked_add(usize::try_from(s.sh_size).ok()?)?;
            return Some((data.get(start..end)?, s.sh_addr));
        }
    }
    let hdr = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_GNU_EH_FRAME)?;
    let h = data.get(usize::try_from(hdr.p_offset).ok()?..)?;
    // version 1, eh_frame_ptr encoded as pcrel sdata4 (0x1b), as GNU ld writes.
    if h.len() < 8 || h[0] != 1 || h[1] != 0x1b {
        return None;
    }
    let rel = i64::from(i32::from_le_bytes([h[4], h[5], h[6], h[7]]));
    let addr = hdr.p_vaddr.wrapping_add(4).wrapping_add_signed(rel);
    // The section runs to the end of its segment (its size is not recorded).
    Some((Image::new(data, elf).bytes(addr, u64::MAX)?, addr))
}

/// Functions shorter than this say too little (stubs, thunks) to count.
pub const MIN_FUNCTION: u64 = 32;

/// The distinct function hashes of a file: an ELF file, or every ELF
/// object in a static archive (`.a`). Sorted.
pub fn file_function_hashes(data: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    if data.starts_with(b"!<arch>\n") {
        if let Ok(ar) = goblin::archive::Archive::parse(data) {
            for name in ar.members() {
                if let Ok(member) = ar.extract(name, data) {
                    if let Ok(elf) = Elf::parse(member) {
                        out.extend(
                            hash_functions(member, &elf, MIN_FUNCTION)
                                .iter()
                                .map(|f| f.hash),
                        );
                    }
                }
            }
        }
    } else if crate::is_elf(data) {
        if let Ok(elf) = Elf::parse(data) {
            out.extend(
                hash_functions(data, &elf, MIN_FUNCTION)
                    .iter()
                    .map(|f| f.hash),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What a linked ELF file's code and data are, whatever was stripped
/// around them: BLAKE3 over the allocated sections other than notes
/// (code, data, dynamic symbols), each with its address, by section
/// headers (by `PT_LOAD` segments when they are gone). `strip --strip-all`,
/// removing the build-id note or appending bytes leave it unchanged; any
/// other change to what is loaded changes it. Relocatable objects have
/// none.
pub(crate) fn loaded_digest(data: &[u8], elf: &Elf) -> Option<[u8; 32]> {
    use goblin::elf::section_header::{SHF_ALLOC, SHT_NOBITS, SHT_NOTE};
    if elf.header.e_type == goblin::elf::header::ET_REL {
        return None;
    }
    let mut h = blake3::Hasher::new();
    let mut any = false;
    let mut feed = |addr: u64, offset: u64, size: u64| -> Option<()> {
        let start = usize::try_from(offset).ok()?;
        let bytes = data.get(start..start.checked_add(usize::try_from(size).ok()?)?)?;
        h.update(&addr.to_le_bytes());
        h.update(&size.to_le_bytes());
        h.update(bytes);
        any = true;
        Some(())
    };
    let mut sections: Vec<_> = elf
        .section_headers
        .iter()
        .filter(|s| {
            s.sh_flags & u64::from(SHF_ALLOC) != 0
                && s.sh_type != SHT_NOTE
                && s.sh_type != SHT_NOBITS
                && s.sh_size > 0
        })
        .collect();
    if sections.is_empty() {
        for p in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            feed(p.p_vaddr, p.p_offset, p.p_filesz)?;
        }
    } else {
        sections.sort_by_key(|s| s.sh_addr);
        for s in sections {
            feed(s.sh_addr, s.sh_offset, s.sh_size)?;
        }
    }
    any.then(|| *h.finalize().as_bytes())
}

/// Function bytes of a relocatable object: `FUNC` symbols are offsets
/// into their sections.
fn object_functions<'a>(data: &'a [u8], elf: &Elf) -> Vec<(u64, &'a [u8])> {
    let mut out = Vec::new();
    for sym in elf.syms.iter() {
        if sym.st_type() != STT_FUNC || sym.st_shndx == 0 || sym.st_size == 0 {
            continue;
        }
        let Some(sh) = elf.section_headers.get(sym.st_shndx) else {
            continue;
        };
        let bytes = usize::try_from(sh.sh_offset.saturating_add(sym.st_value))
            .ok()
            .zip(usize::try_from(sym.st_size).ok())
            .and_then(|(s, n)| data.get(s..s.checked_add(n)?));
        if let Some(b) = bytes {
            out.push((sym.st_value, b));
        }
    }
    out
}

/// Hash every function of at least `min_len` bytes (x86-64 and AArch64;
/// other machines give none).
pub fn hash_functions(data: &[u8], elf: &Elf, min_len: u64) -> Vec<FunctionHash> {
    let machine = elf.header.e_machine;
    if machine != EM_X86_64 && machine != EM_AARCH64 {
        return Vec::new();
    }
    let normalise = |bytes: &[u8], ip: u64, out: &mut Vec<u8>| {
        if machine == EM_AARCH64 {
            a64::normalise(bytes, out)
        } else {
            normalise_x86(bytes, ip, out)
        }
    };
    if elf.header.e_type == goblin::elf::header::ET_REL {
        let mut buf = Vec::with_capacity(4096);
        return object_functions(data, elf)
            .into_iter()
            .filter(|(_, b)| b.len() as u64 >= min_len)
            .map(|(start, b)| {
                buf.clear();
                let n = normalise(b, start, &mut buf);
                FunctionHash {
                    start,
                    len: b.len() as u32,
                    instructions: n,
                    hash: xxhash_rust::xxh3::xxh3_64(&buf),
                }
            })
            .collect();
    }
    let image = Image::new(data, elf);
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    for (start, len) in function_ranges(data, elf) {
        if len < min_len || len > 1 << 24 {
            continue;
        }
        // Whole functions only: one that runs past its segment is not code.
        let Some(bytes) = image.bytes(start, len).filter(|b| b.len() as u64 == len) else {
            continue;
        };
        buf.clear();
        let n = normalise(bytes, start, &mut buf);
        out.push(FunctionHash {
            start,
            len: len as u32,
            instructions: n,
            hash: xxhash_rust::xxh3::xxh3_64(&buf),
        });
    }
    out
}

/// Append the normalised form of x86-64 `bytes` (code at `ip`) to `out`;
/// returns the instruction count.
fn normalise_x86(bytes: &[u8], ip: u64, out: &mut Vec<u8>) -> u32 {
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut n = 0;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        n += 1;
        out.extend_from_slice(&(ins.mnemonic() as u16).to_le_bytes());
        for i in 0..ins.op_count() {
            let kind = ins.op_kind(i);
            out.push(kind as u8);
            match kind {
                OpKind::Register => out.push(ins.op_register(i) as u8),
                OpKind::NearBranch16
                | OpKind::NearBranch32
                | OpKind::NearBranch64
                | OpKind::FarBranch16
                | OpKind::FarBranch32 => {}
                OpKind::Memory => {
                    out.push(ins.memory_base() as u8);
                    out.push(ins.memory_index() as u8);
                    out.push(ins.memory_index_scale() as u8);
                    let d = ins.memory_displacement64();
                    let small =
                        !ins.is_ip_rel_memory_operand() && (d < SMALL || d.wrapping_neg() < SMALL);
                    if small {
                        out.extend_from_slice(&d.to_le_bytes());
                    }
                }
                _ if is_immediate(kind) => {
                    let v = ins.immediate(i);
                    if v < SMALL || v.wrapping_neg() < SMALL {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                _ => {}
            }
        }
    }
    n
}

fn is_immediate(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A file's functions and loaded digest.
    struct CodeIdentity {
        functions: Vec<u64>,
        loaded: Option<[u8; 32]>,
    }

    fn code_identity(data: &[u8]) -> CodeIdentity {
        CodeIdentity {
            functions: file_function_hashes(data),
            loaded: Elf::parse(data)
                .ok()
                .and_then(|elf| loaded_digest(data, &elf)),
        }
    }

    fn build(cc: &str, dir: &std::path::Path, name: &str, src: &str, extra: &[&str]) -> Vec<u8> {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, src).unwrap();
        let out = dir.join(name);
        let ok = Command::new(cc)
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&out)
            .arg(&c)
            .args(extra)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::read(out).unwrap()
    }

    const LIB: &str = r#"
#include <string.h>
static int table[64];
int checksum(const unsigned char *p, int n) {
    int s = 0;
    for (int i = 0; i < n; i++) { s = (s << 5) ^ (s >> 27) ^ p[i]; table[i & 63] += s; }
    return s;
}
int parse_header(const char *h, int *len) {
    if (strncmp(h, "KILN", 4) != 0) return -1;
    *len = (h[4] << 8) | h[5];
    return checksum((const unsigned char *)h + 6, *len);
}
"#;

    /// The same functions hash the same when the library is relinked with
    /// other code around them, and after `strip --strip-all` (boundaries
    /// from `.eh_frame`).
    #[test]
    fn hashes_survive_relinking_and_stripping() {
        survives_relinking_and_stripping("gcc", "strip", EM_X86_64);
    }

    /// The same for AArch64, built with Debian's cross compiler
    /// (`gcc-aarch64-linux-gnu`).
    #[test]
    fn aarch64_hashes_survive_relinking_and_stripping() {
        survives_relinking_and_stripping(
            "aarch64-linux-gnu-gcc",
            "aarch64-linux-gnu-strip",
            EM_AARCH64,
        );
    }

    /// Truncated and garbled ELF files give what they can, never a panic:
    /// a section that points past the end leaves no loaded digest.
    #[test]
    fn hostile_elf_files_do_not_panic() {
        let Ok(real) = std::fs::read("/bin/true") else {
            eprintln!("skipping: no /bin/true");
            return;
        };
        let whole = code_identity(&real);
        assert!(whole.loaded.is_some() && !whole.functions.is_empty());
        for cut in [64, 512, real.len() / 3, real.len() / 2, real.len() - 1] {
            let part = code_identity(&real[..cut]);
            assert_ne!(part.loaded, whole.loaded, "cut at {cut}");
        }
        let mut garbled = real.clone();
        for (i, b) in garbled.iter_mut().enumerate().skip(64) {
            *b ^= (i * 7) as u8;
        }
        let _ = code_identity(&garbled);
        // Random words through the AArch64 normaliser.
        let words: Vec<u8> = (0..4096u32)
            .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
            .collect();
        let mut out = Vec::new();
        assert_eq!(a64::normalise(&words, &mut out), 4096);
    }

    fn survives_relinking_and_stripping(cc: &str, strip: &str, machine: u16) {
        if Command::new(cc).arg("--version").output().is_err() {
            eprintln!("skipping: {cc} is not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let a = build(cc, d.path(), "liba.so", LIB, &[]);
        assert_eq!(Elf::parse(&a).unwrap().header.e_machine, machine);
        let padded = format!(
            "static volatile int pad[4096];\nint extra(int x) {{ pad[x & 4095] = x; return x * 7 + pad[(x + 1) & 4095]; }}\n{LIB}"
        );
        let b = build(
            cc,
            d.path(),
            "libb.so",
            &padded,
            &["-Wl,--section-start=.data=0x600000"],
        );
        let stripped = d.path().join("libb.stripped");
        assert!(Command::new(strip)
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(d.path().join("libb.so"))
            .status()
            .unwrap()
            .success());
        let c = std::fs::read(&stripped).unwrap();
        let set = |data: &[u8]| -> std::collections::BTreeSet<u64> {
            let elf = Elf::parse(data).unwrap();
            hash_functions(data, &elf, 16)
                .iter()
                .map(|f| f.hash)
                .collect()
        };
        let (ha, hb, hc) = (set(&a), set(&b), set(&c));
        let elf_a = Elf::parse(&a).unwrap();
        let named: Vec<u64> = ["checksum", "parse_header"]
            .iter()
            .map(|n| {
                let sym = elf_a
                    .dynsyms
                    .iter()
                    .find(|s| elf_a.dynstrtab.get_at(s.st_name) == Some(*n))
                    .unwrap();
                hash_functions(&a, &elf_a, 16)
                    .iter()
                    .find(|f| f.start == sym.st_value)
                    .unwrap()
                    .hash
            })
            .collect();
        for h in &named {
            assert!(hb.contains(h), "relinked copy lost a function hash");
            assert!(hc.contains(h), "stripped copy lost a function hash");
        }
        assert!(ha.len() >= 2 && hc.len() >= ha.len());
        // Stripping removed the symbol tables; FDEs still give the starts.
        let elf_c = Elf::parse(&c).unwrap();
        assert!(elf_c.syms.is_empty());
        assert!(function_ranges(&c, &elf_c).len() >= 3);
    }
}
