//! Every input the fuzz targets (fuzz/, bench/fuzz.sh) found failing, with
//! the invariant it broke, checked on stable Rust without the fuzzer.

use std::cmp::Ordering;

use kiln_catalog::version::Scheme;
use kiln_image::registry::{parse_challenge, Challenge};

/// versions: semver's order fell back to the generic one pair by pair,
/// which was not transitive across strings semver cannot read.
#[test]
fn version_orders_stay_transitive_across_unparseable_strings() {
    let (a, b, c) = ("1.0.0-*rc.1", "1.0.0", "1.0.00.0-rc0ld.5.0");
    for scheme in Scheme::ALL {
        let cmp = |x: &str, y: &str| scheme.cmp(x, y);
        for (x, y) in [(a, b), (b, c), (a, c)] {
            assert_eq!(cmp(x, y), cmp(y, x).reverse(), "{scheme:?}");
        }
        if cmp(a, b) != Ordering::Greater && cmp(b, c) != Ordering::Greater {
            assert_ne!(cmp(a, c), Ordering::Greater, "{scheme:?}");
        }
    }
}

/// registry_challenge: `BearEr reAlm=,…` gave a bearer challenge with an
/// empty realm, a token URL of "".
#[test]
fn a_bearer_challenge_without_a_realm_is_no_challenge() {
    let text = "BearEr reAlm=,serva&lmarer real";
    assert!(
        !matches!(parse_challenge(text), Some(Challenge::Bearer { ref realm, .. }) if realm.is_empty())
    );
    assert_eq!(parse_challenge("Bearer realm=\"\""), None);
}

/// python_metadata: `Name:` with nothing after it made a package with an
/// empty name.
#[test]
fn python_metadata_with_an_empty_name_or_version_is_no_package() {
    use kiln_catalog::python::parse_metadata;
    assert_eq!(
        parse_metadata("Metadata-Version: 2.1\nName:\nVersion: 1.0\n"),
        None
    );
    assert_eq!(
        parse_metadata("Metadata-Version: 2.1\nName: x\nVersion:  \n"),
        None
    );
    assert!(parse_metadata("Name: x\nVersion: 1.0\n").is_some());
}

/// osv: events whose versions a strict scheme cannot all read made the
/// event sort's comparator partial, and `sort_by` panicked (the record the
/// fuzzer found is `tests/fuzz-regressions/osv-partial-order.json`).
#[test]
fn osv_ranges_with_unreadable_versions_do_not_panic() {
    let found = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz-regressions/osv-partial-order.json"),
    )
    .unwrap();
    let a: kiln_vuln::osv::Advisory = serde_json::from_slice(&found).unwrap();
    for affected in &a.affected {
        for eco in [
            "Debian:12",
            "PyPI",
            "Alpine:v3.19",
            "npm",
            "crates.io",
            "Go",
        ] {
            for v in ["0", "1.0", "2.36-9+deb12u4", "1.2.3-r0", "v1.0.0"] {
                let _ = kiln_vuln::osv::affects(affected, eco, v);
            }
        }
    }
    let odd = [
        "0",
        "1.0.0",
        "x",
        "2.0.0-",
        "1.0.0+b",
        "v3",
        "1..0",
        "",
        "9.9.9",
        "~1",
        "1.0.0-rc.1",
    ];
    let mut events = Vec::new();
    for (i, v) in odd.iter().cycle().take(40).enumerate() {
        let kind = ["introduced", "fixed", "last_affected", "limit"][i % 4];
        events.push(serde_json::json!({ kind: v }));
    }
    let affected: kiln_vuln::osv::Affected = serde_json::from_value(serde_json::json!({
        "package": {"ecosystem": "npm", "name": "x"},
        "ranges": [{"type": "SEMVER", "events": events}],
    }))
    .unwrap();
    for eco in ["npm", "PyPI", "Go", "crates.io", "Debian:12"] {
        for v in odd {
            let _ = kiln_vuln::osv::affects(&affected, eco, v);
        }
    }
}
