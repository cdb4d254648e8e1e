//! deb822 paragraphs (dpkg `status`, `control`).
//! Invariant: every field has a non-empty name without a colon.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(paras) = kiln_catalog::deb822::parse(text) {
        for p in &paras {
            for (k, _) in p.fields() {
                assert!(!k.is_empty() && !k.contains(':'), "field name {k:?}");
            }
        }
    }
    let _ = kiln_catalog::deb822::split_source(text);
});
