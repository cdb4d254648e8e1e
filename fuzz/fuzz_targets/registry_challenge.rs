//! `WWW-Authenticate` challenges from a registry.
//! Invariant: a bearer challenge always names a non-empty realm (kiln
//! would otherwise ask an empty URL for a token).
#![no_main]
use kiln_image::registry::{parse_challenge, Challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(Challenge::Bearer { realm, .. }) = parse_challenge(text) {
            assert!(!realm.is_empty());
        }
    }
});
