//! Rust binaries built with `cargo auditable`: the `.dep-v0` section holds
//! the zlib-compressed JSON dependency tree (every crate, its version and
//! source), which survives `strip`.

use std::io::Read;

use goblin::elf::Elf;
use serde::{Deserialize, Serialize};

/// Largest decompressed audit data accepted (the format caps it at 8 MiB).
const MAX_AUDIT_JSON: u64 = 8 << 20;

/// One crate compiled into the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustCrate {
    /// Crate name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry` or `other`.
    #[serde(default = "crates_io")]
    pub source: String,
    /// `build` for build-time-only dependencies (build scripts, proc macros).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The crate the binary was built from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root: bool,
}

fn crates_io() -> String {
    "crates.io".into()
}

#[derive(Deserialize)]
struct AuditData {
    packages: Vec<RustCrate>,
}

/// The crates of a `cargo auditable` binary, or `None` without audit data
/// (or with data that does not decode: a corrupt section is no evidence).
pub fn rust_crates(data: &[u8], elf: &Elf) -> Option<Vec<RustCrate>> {
    let sh = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".dep-v0"))?;
    let start = usize::try_from(sh.sh_offset).ok()?;
    let end = start.checked_add(usize::try_from(sh.sh_size).ok()?)?;
    let compressed = data.get(start..end)?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_AUDIT_JSON)
        .read_to_end(&mut json)
        .ok()?;
    serde_json::from_slice::<AuditData>(&json)
        .ok()
        .map(|a| a.packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_section_is_none() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&me).unwrap();
        assert_eq!(rust_crates(&me, &elf), None);
    }
}
