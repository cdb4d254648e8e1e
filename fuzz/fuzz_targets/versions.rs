//! Version order of every ecosystem: three versions from the input.
//! Invariants: a total order — reflexive, antisymmetric, transitive.
#![no_main]
use std::cmp::Ordering;

use kiln_catalog::version::Scheme;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    for scheme in Scheme::ALL {
        let cmp = |x: &str, y: &str| scheme.cmp(x, y);
        assert_eq!(cmp(a, a), Ordering::Equal, "{scheme:?}: {a:?} != itself");
        assert_eq!(cmp(a, b), cmp(b, a).reverse(), "{scheme:?}: {a:?} vs {b:?}");
        if cmp(a, b) != Ordering::Greater && cmp(b, c) != Ordering::Greater {
            assert_ne!(cmp(a, c), Ordering::Greater, "{scheme:?}: {a:?} <= {b:?} <= {c:?}");
        }
    }
});
