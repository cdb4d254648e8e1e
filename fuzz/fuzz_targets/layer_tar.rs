//! A layer tar stream (whiteouts, links, PAX, sparse, devices) squashed
//! into a tree, cataloged, and exported again.
//! Invariants: every path is clean (never escapes the root); a file's
//! size never exceeds what the layer could hold (sparse members aside,
//! which are capped); the export is a tar that lists the same files.
#![no_main]
use kiln_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = image_of_layer(data, "application/vnd.oci.image.layer.v1.tar") else {
        return;
    };
    let opts = kiln_tree::BuildOptions {
        hash: true,
        capture: Box::new(kiln_catalog::wants),
        ..Default::default()
    };
    let Ok(tree) = kiln_tree::Tree::from_image(image, &opts) else {
        return;
    };
    for (path, e) in tree.iter() {
        assert!(is_clean(path), "unclean path {path:?}");
        if e.is_file() {
            assert!(
                e.size <= data.len() as u64 || e.size <= kiln_tree::MAX_SPARSE_SIZE,
                "{path}: {} bytes from a {}-byte layer",
                e.size,
                data.len()
            );
        }
    }
    let _ = kiln_catalog::catalog(&tree);
    let Ok(out) = tree.export(|_, _| Some(kiln_tree::Export::default()), Vec::new()) else {
        return;
    };
    let mut files = 0;
    let mut archive = tar::Archive::new(&out[..]);
    for member in archive.entries().expect("kiln's own export is a tar") {
        let member = member.expect("kiln's own export reads back");
        let kind = member.header().entry_type();
        if kind.is_file() || kind.is_hard_link() {
            files += 1;
        }
    }
    let want = tree.iter().filter(|(_, e)| e.is_file()).count();
    assert_eq!(files, want, "export lost or invented files");
});
