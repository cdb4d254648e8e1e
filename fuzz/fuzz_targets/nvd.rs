//! NVD CVE JSON 2.0.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln_vuln::nvd::parse(data);
});
