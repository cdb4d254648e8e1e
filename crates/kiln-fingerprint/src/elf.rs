//! ELF identity: the parts of an ELF file that name what it is and which
//! survive appended bytes and renames.

use goblin::elf::note::NT_GNU_BUILD_ID;
use goblin::elf::Elf;
use serde::{Deserialize, Serialize};

/// `n_type` of the systemd `.note.package` ELF note ("FDO" owner).
const NT_FDO_PACKAGING_METADATA: u32 = 0xcafe_1a7e;
/// `vd_flags` bit marking the version definition that names the file itself.
const VER_FLG_BASE: u16 = 0x1;

/// A file that starts like ELF but cannot be parsed as one.
#[derive(Debug, thiserror::Error)]
#[error("corrupt ELF file: {0}")]
pub struct ElfError(String);

/// Identity facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElfInfo {
    /// `e_machine`, e.g. 62 for x86-64.
    pub machine: u16,
    /// `e_type`: 2 = executable, 3 = shared object or PIE, 1 = relocatable.
    pub kind: u16,
    /// GNU build-id note, as raw bytes.
    #[serde(skip_serializing_if = "Option::is_none", with = "hex_opt", default)]
    pub build_id: Option<Vec<u8>>,
    /// `.note.package` JSON (systemd packaging metadata), verbatim.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note_package: Option<String>,
    /// `DT_SONAME`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub soname: Option<String>,
    /// `DT_NEEDED` entries, in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub needed: Vec<String>,
    /// Symbol versions this file defines (`GLIBC_2.34`, `OPENSSL_3.0.0`),
    /// without the base definition that names the file.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub verdefs: Vec<String>,
    /// `PT_INTERP`, for dynamically linked executables.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interpreter: Option<String>,
    /// Go build information, for Go binaries.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub go: Option<crate::GoBuildInfo>,
    /// Crates of a Rust binary built with `cargo auditable`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rust: Option<Vec<crate::RustCrate>>,
    /// Version clues (strings, function constants), when asked for.
    #[serde(skip)]
    pub clues: Option<Box<crate::Clues>>,
    /// Digest of the loaded sections other than notes: identifies the code
    /// and data of a build whatever was stripped around them (symbols,
    /// notes, the build-id, appended bytes). One BLAKE3 pass over what is
    /// mapped, computed while the bytes are at hand.
    #[serde(skip)]
    pub loaded: Option<[u8; 32]>,
}

impl ElfInfo {
    /// Parse `data`. `Ok(None)` if it is not ELF at all; an error if it
    /// claims to be ELF but is malformed.
    pub fn parse(data: &[u8]) -> Result<Option<ElfInfo>, ElfError> {
        Self::parse_with(data, None)
    }

    /// Parse `data` and, with `clues`, also collect its version clues,
    /// evaluating the defined functions `clues` selects.
    pub fn parse_with(
        data: &[u8],
        clues: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Option<ElfInfo>, ElfError> {
        Self::parse_full(data, clues, true)
    }

    /// [`ElfInfo::parse_with`] for a file being identified rather than
    /// learned: the digest of the loaded sections is only taken for a file
    /// without a GNU build-id. Identification accepts a loaded-bytes match
    /// only where build-ids do not contradict it, and a file whose
    /// build-id the DB knows is matched by that; so the digest matters
    /// for note-less copies alone, and skipping it spares a second
    /// hash over nearly every byte of an image's binaries.
    pub fn parse_observed(
        data: &[u8],
        clues: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Option<ElfInfo>, ElfError> {
        Self::parse_full(data, clues, false)
    }

    fn parse_full(
        data: &[u8],
        clues: Option<&dyn Fn(&str) -> bool>,
        always_loaded: bool,
    ) -> Result<Option<ElfInfo>, ElfError> {
        if !crate::is_elf(data) {
            return Ok(None);
        }
        let elf = Elf::parse(data).map_err(|e| ElfError(e.to_string()))?;
        let mut info = ElfInfo {
            machine: elf.header.e_machine,
            kind: elf.header.e_type,
            soname: elf.soname.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            interpreter: elf.interpreter.map(str::to_string),
            ..Default::default()
        };
        // Program-header notes survive `strip --strip-all` and section-
        // header removal; fall back to sections for relocatable objects.
        for (n_type, name, desc) in notes(data, &elf) {
            match (n_type, name) {
                (NT_GNU_BUILD_ID, b"GNU") if info.build_id.is_none() => {
                    info.build_id = Some(desc.to_vec());
                }
                (NT_FDO_PACKAGING_METADATA, b"FDO") if info.note_package.is_none() => {
                    let text = desc.split(|b| *b == 0).next().unwrap_or_default();
                    info.note_package = Some(String::from_utf8_lossy(text).into_owned());
                }
                _ => {}
            }
        }
        if always_loaded || info.build_id.is_none() {
            info.loaded = crate::functions::loaded_digest(data, &elf);
        }
        info.go = crate::GoBuildInfo::parse(data, &elf);
        info.rust = crate::auditable::rust_crates(data, &elf);
        if let Some(want) = clues {
            info.clues = Some(Box::new(crate::Clues::extract(data, &elf, want)));
        }
        if let Some(verdef) = &elf.verdef {
            for def in verdef.iter() {
                if def.vd_flags & VER_FLG_BASE != 0 {
                    continue;
                }
                if let Some(aux) = def.iter().next() {
                    if let Some(name) = elf.dynstrtab.get_at(aux.vda_name) {
                        info.verdefs.push(name.to_string());
                    }
                }
            }
        }
        Ok(Some(info))
    }

    /// Only the build data a binary embeds — Go build info and
    /// `cargo auditable` crates — and `None` when it has neither. Reads
    /// the headers and those sections alone, so over a mapped file it
    /// touches a few pages, not the whole binary (`kiln sbom`).
    pub fn parse_embedded(data: &[u8]) -> Option<ElfInfo> {
        if !crate::is_elf(data) {
            return None;
        }
        let elf = headers_only(data)?;
        let go = crate::GoBuildInfo::parse(data, &elf);
        let rust = crate::auditable::rust_crates(data, &elf);
        if go.is_none() && rust.is_none() {
            return None;
        }
        Some(ElfInfo {
            machine: elf.header.e_machine,
            kind: elf.header.e_type,
            go,
            rust,
            ..Default::default()
        })
    }

    /// The build-id as lower-case hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_ref().map(hex::encode)
    }
}

/// At most this many notes are read from one file. Real binaries carry a
/// handful (GCC's annotation notes reach a few thousand); a hostile file
/// can list the same region in 20,000 headers.
const MAX_NOTES: usize = 16_384;

/// Every note of `PT_NOTE` segments, then of `SHT_NOTE` sections, as
/// (type, name without its NUL, descriptor). Walked here rather than with
/// goblin's note iterator, which repeats the same error forever on a note
/// whose name is not UTF-8 (GCC's `.gnu.build.attributes`). A region named
/// by several headers is walked once, and the count is capped.
fn notes<'a>(data: &'a [u8], elf: &Elf) -> Vec<(u32, &'a [u8], &'a [u8])> {
    use goblin::elf::program_header::PT_NOTE;
    use goblin::elf::section_header::SHT_NOTE;
    let little = elf.little_endian;
    let word = |b: &[u8]| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let areas = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_NOTE)
        .map(|p| (p.p_offset, p.p_filesz, p.p_align))
        .chain(
            elf.section_headers
                .iter()
                .filter(|s| s.sh_type == SHT_NOTE)
                .map(|s| (s.sh_offset, s.sh_size, s.sh_addralign)),
        );
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (offset, size, align) in areas {
        let align = if align == 8 { 8 } else { 4 };
        if !seen.insert((offset, size, align)) {
            continue;
        }
        let Some(area) = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, n)| data.get(o..o.checked_add(n)?))
        else {
            continue;
        };
        let up = |n: usize| n.checked_add(align - 1).map(|v| v & !(align - 1));
        let mut at = 0usize;
        while let Some(head) = area.get(at..at + 12) {
            let (namesz, descsz, n_type) = (
                word(&head[0..4]) as usize,
                word(&head[4..8]) as usize,
                word(&head[8..12]),
            );
            let name_at = at + 12;
            let Some(desc_at) = up(name_at.saturating_add(namesz)) else {
                break;
            };
            let Some(next) = up(desc_at.saturating_add(descsz)) else {
                break;
            };
            let (Some(name), Some(desc)) = (
                area.get(name_at..name_at + namesz),
                area.get(desc_at..desc_at.saturating_add(descsz)),
            ) else {
                break;
            };
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            out.push((n_type, name, desc));
            if out.len() >= MAX_NOTES {
                return out;
            }
            if next <= at {
                break;
            }
            at = next;
        }
    }
    out
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// An ELF file's program and section headers and section names, and
/// nothing else: `Elf::parse` also parses every symbol and string table,
/// which for a large unstripped binary means reading most of it.
fn headers_only(data: &[u8]) -> Option<Elf<'_>> {
    use goblin::container::{Container, Ctx};
    use goblin::elf::{ProgramHeader, SectionHeader};
    use goblin::strtab::Strtab;
    let header = Elf::parse_header(data).ok()?;
    let mut elf = Elf::lazy_parse(header).ok()?;
    let container = if elf.is_64 {
        Container::Big
    } else {
        Container::Little
    };
    let le = if elf.little_endian {
        goblin::container::Endian::Little
    } else {
        goblin::container::Endian::Big
    };
    let ctx = Ctx::new(container, le);
    elf.program_headers =
        ProgramHeader::parse(data, header.e_phoff as usize, header.e_phnum as usize, ctx).ok()?;
    elf.section_headers =
        SectionHeader::parse(data, header.e_shoff as usize, header.e_shnum as usize, ctx).ok()?;
    if let Some(names) = elf.section_headers.get(header.e_shstrndx as usize) {
        elf.shdr_strtab =
            Strtab::parse(data, names.sh_offset as usize, names.sh_size as usize, 0).ok()?;
    }
    Some(elf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is a real ELF file built by rustc.
    #[test]
    fn parses_a_real_elf() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = ElfInfo::parse(&me).unwrap().unwrap();
        assert!(info.machine != 0);
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
        // Appending bytes (SlimToolkit's obfuscation) keeps the identity.
        let mut padded = me.clone();
        padded.extend_from_slice(&[0xAB; 4096]);
        assert_eq!(ElfInfo::parse(&padded).unwrap().unwrap(), info);
    }

    #[test]
    fn libc_defines_symbol_versions() {
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .iter()
        .find_map(|p| std::fs::read(p).ok());
        let Some(libc) = libc else {
            eprintln!("skipping: no Debian libc.so.6 on this machine");
            return;
        };
        let info = ElfInfo::parse(&libc).unwrap().unwrap();
        assert_eq!(info.soname.as_deref(), Some("libc.so.6"));
        assert!(
            info.verdefs.iter().any(|v| v == "GLIBC_2.34"),
            "{:?}",
            info.verdefs
        );
        assert!(info.build_id.is_some());
    }

    /// 20,000 `PT_NOTE` headers over one 1 MiB region of empty notes: the
    /// region is walked once and the notes are capped (this took a 5 GiB
    /// allocation).
    #[test]
    fn many_headers_over_one_note_region_are_bounded() {
        let phnum: u16 = 20_000;
        let region_at = 64 + 56 * u64::from(phnum);
        let region = 1u64 << 20;
        let mut d = vec![0u8; (region_at + region) as usize];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = 2; // 64-bit
        d[5] = 1; // little-endian
        d[6] = 1;
        d[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        d[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        d[20..24].copy_from_slice(&1u32.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        d[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        d[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        d[56..58].copy_from_slice(&phnum.to_le_bytes());
        for i in 0..usize::from(phnum) {
            let ph = 64 + 56 * i;
            d[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
            d[ph + 8..ph + 16].copy_from_slice(&region_at.to_le_bytes());
            d[ph + 32..ph + 40].copy_from_slice(&region.to_le_bytes());
            d[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes());
        }
        let elf = Elf::parse(&d).unwrap();
        let found = notes(&d, &elf);
        assert_eq!(found.len(), MAX_NOTES);
    }

    /// GCC's annobin notes have non-UTF-8 names; goblin's note iterator
    /// loops forever on them. objcopy adds such a note (a `.note.*` section
    /// is `SHT_NOTE`) to a real binary.
    #[test]
    fn note_with_binary_name_does_not_hang() {
        if std::process::Command::new("objcopy")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipping: objcopy (binutils) is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let note = dir.path().join("note.bin");
        let mut bytes = Vec::new();
        for w in [4u32, 4, 0x100] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.extend_from_slice(b"G\xff\x01\0");
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        std::fs::write(&note, &bytes).unwrap();
        let me = std::env::current_exe().unwrap();
        let out = dir.path().join("annotated");
        let ok = std::process::Command::new("objcopy")
            .arg(format!("--add-section=.note.kiln={}", note.display()))
            .arg(&me)
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let data = std::fs::read(&out).unwrap();
        let info = ElfInfo::parse(&data).unwrap().unwrap();
        let original = ElfInfo::parse(&std::fs::read(&me).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(info.build_id, original.build_id);
    }

    #[test]
    fn corrupt_elf_is_an_error_not_a_panic() {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(80, 0xff);
        assert!(ElfInfo::parse(&bytes).is_err());
        assert!(ElfInfo::parse(b"\x7fEL").unwrap().is_none());
    }
}
