//! Python `METADATA`/`PKG-INFO` headers.
//! Invariant: a parsed name and version are non-empty.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((name, version, _)) = kiln_catalog::python::parse_metadata(text) {
            assert!(!name.is_empty() && !version.is_empty());
        }
    }
});
