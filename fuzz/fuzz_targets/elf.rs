//! ELF files: headers, notes, dynamic section, symbol versions, Go build
//! info, cargo-auditable data, version clues and the x86-64/AArch64
//! function hashes.
//! Invariants: a build-id is a slice of the input; function hashes are
//! sorted and distinct.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let all = |_: &str| true;
    if let Ok(Some(info)) = kiln_fingerprint::ElfInfo::parse_with(data, Some(&all)) {
        if let Some(id) = &info.build_id {
            assert!(id.len() <= data.len());
        }
    }
    let h = kiln_fingerprint::functions::file_function_hashes(data);
    assert!(h.windows(2).all(|w| w[0] < w[1]), "hashes not sorted and distinct");
});
