//! A wheel (zip): `RECORD`, `METADATA` and the files.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = temp_file(data, ".whl");
    let _ = kiln_rainbow::wheel::read_wheel(f.path());
});
