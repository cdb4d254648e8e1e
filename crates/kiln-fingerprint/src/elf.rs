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
        let notes = elf
            .iter_note_headers(data)
            .into_iter()
            .flatten()
            .chain(elf.iter_note_sections(data, None).into_iter().flatten());
        for note in notes.flatten() {
            match (note.n_type, note.name) {
                (NT_GNU_BUILD_ID, "GNU") if info.build_id.is_none() => {
                    info.build_id = Some(note.desc.to_vec());
                }
                (NT_FDO_PACKAGING_METADATA, "FDO") if info.note_package.is_none() => {
                    let text = note.desc.split(|b| *b == 0).next().unwrap_or_default();
                    info.note_package = Some(String::from_utf8_lossy(text).into_owned());
                }
                _ => {}
            }
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

    /// The build-id as lower-case hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_ref().map(hex::encode)
    }
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

    #[test]
    fn corrupt_elf_is_an_error_not_a_panic() {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(80, 0xff);
        assert!(ElfInfo::parse(&bytes).is_err());
        assert!(ElfInfo::parse(b"\x7fEL").unwrap().is_none());
    }
}
