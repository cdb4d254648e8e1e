//! gzip and zstd layer framing under the bomb limits.
//! Invariants: never more than the layer-size limit comes out, and what
//! comes out was verified against the blob's digest before it is done.
#![no_main]
use std::io::Read;

use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, blob)) = data.split_first() else {
        return;
    };
    let media = if pick & 1 == 0 {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    };
    let Ok(image) = image_of_layer(blob, media) else {
        return;
    };
    let Ok(mut r) = image.open_layer(0) else {
        return;
    };
    let mut out = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out += n as u64,
        }
        assert!(out <= limits().max_layer_size, "{out} bytes out of a bomb");
    }
});
