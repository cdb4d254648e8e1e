//! The posting-list varint decoder.
//! Invariants: decoding never panics; encoding sorted distinct ids and
//! decoding them gives them back.
#![no_main]
use kiln_rainbow::funcmatch::postings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ids = postings::decode(data);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(postings::decode(&postings::encode(&sorted)), sorted);
});
