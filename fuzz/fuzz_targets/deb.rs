//! A `.deb`: the ar archive, `control.tar.*` and `data.tar.*`.
//! Invariant: every file path in the record is clean.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = temp_file(data, ".deb");
    if let Ok(rec) = kiln_rainbow::deb::read_deb(f.path()) {
        for file in &rec.files {
            assert!(is_clean(file.path.trim_start_matches('/')), "{:?}", file.path);
        }
    }
});
