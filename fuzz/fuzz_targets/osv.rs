//! OSV records, and matching versions against their ranges.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = serde_json::from_slice::<kiln_vuln::osv::Advisory>(data) else {
        return;
    };
    for affected in &a.affected {
        for eco in ["Debian:12", "PyPI", "Alpine:v3.19", "npm", "crates.io", "Go"] {
            for v in ["0", "1.0", "2.36-9+deb12u4", "1.2.3-r0", "v1.0.0"] {
                let _ = kiln_vuln::osv::affects(affected, eco, v);
            }
        }
    }
});
