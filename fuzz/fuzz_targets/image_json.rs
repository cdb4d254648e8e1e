//! OCI `index.json`, manifest and config: the input is three JSON
//! documents separated by NUL bytes, stored under their digests.
//! Invariants: an opened image's config and layer digests are what the
//! manifest says, and its layers are in the store.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(index), Some(manifest), Some(config)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let mut s = MemStore::default();
    s.blob(manifest);
    s.blob(config);
    s.blob(b"");
    s.0.insert("index.json".into(), index.to_vec());
    s.0.insert("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
    if let Ok(image) = open(s) {
        assert_eq!(image.config_digest.to_string().len(), 71);
        for (i, l) in image.layers.iter().enumerate() {
            assert_eq!(l.index, i);
        }
    }
});
