//! The tree inspectors a scan builds its tree with: which files are read
//! while layers stream, and the facts kept of each.

use std::sync::Arc;

use kiln_fingerprint::ElfInfo;
use kiln_rainbow::vendored::Templates;
use kiln_tree::Facts;

/// Inspect only executable files: where Go binaries are.
pub fn executables(_path: &str, mode: u32, _size: u64) -> bool {
    mode & 0o111 != 0
}

/// ELF identity facts for ELF files (build-ids for matching, Go build info
/// and cargo-auditable data for the catalogers).
pub fn elf_facts(_path: &str, data: &[u8]) -> Option<Facts> {
    ElfInfo::parse_observed(data, None)
        .ok()
        .flatten()
        .map(|i| Arc::new(i) as Facts)
}

/// ELF facts plus version clues, evaluating only the functions the DB has
/// templates for.
pub fn elf_facts_with_clues(data: &[u8], t: &Templates) -> Option<Facts> {
    ElfInfo::parse_observed(data, Some(&|n: &str| t.wants(n)))
        .ok()
        .flatten()
        .map(|i| Arc::new(i) as Facts)
}

/// Only Go build info and `cargo auditable` data: what `kiln sbom`
/// catalogs from binaries.
pub fn embedded_build_data(_path: &str, data: &[u8]) -> Option<Facts> {
    ElfInfo::parse_embedded(data).map(|i| Arc::new(i) as Facts)
}
