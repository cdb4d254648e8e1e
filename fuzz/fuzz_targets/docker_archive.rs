//! A `docker save` archive's `manifest.json` and config (NUL-separated),
//! with one layer member.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(manifest), Some(config)) = (parts.next(), parts.next()) else {
        return;
    };
    let mut s = MemStore::default();
    s.0.insert("manifest.json".into(), manifest.to_vec());
    s.0.insert("config.json".into(), config.to_vec());
    s.0.insert("layer.tar".into(), Vec::new());
    if let Ok(image) = open(s) {
        for i in 0..image.layers.len() {
            let _ = image.open_layer(i).map(|mut r| std::io::copy(&mut r, &mut std::io::sink()));
        }
    }
});
