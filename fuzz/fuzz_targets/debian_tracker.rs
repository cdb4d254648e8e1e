//! The Debian security tracker's JSON export.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln_vuln::debian::parse(data);
});
