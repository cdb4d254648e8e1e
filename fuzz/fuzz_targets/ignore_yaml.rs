//! `.kilnignore` YAML.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = temp_file(data, ".yaml");
    if let Ok(rules) = kiln_vuln::ignore::Ignores::load(f.path()) {
        let _ = rules.expired("2026-11-30");
    }
});
