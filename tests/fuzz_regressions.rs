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
