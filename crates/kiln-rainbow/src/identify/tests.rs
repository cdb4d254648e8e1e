//! Each phase of resolution on hand-built look-ups: no DB, no tree.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kiln_catalog::{Ecosystem, Resolution};

use super::lookup::{Build, BuildId, Lookups};
use super::report::unknown_sources;
use super::resolve::{resolve, Draft, Key, Resolver};
use super::{Match, Obs};

fn build(name: &str, version: &str, source: &str) -> Build {
    Build {
        ecosystem: Ecosystem::Deb,
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        regular_files: 2,
    }
}

fn file(path: &str) -> Obs {
    Obs {
        path: path.into(),
        size: 4096,
        ..Default::default()
    }
}

fn key(name: &str) -> Key {
    (name.into(), "amd64".into())
}

/// libfoo 1.0-1 (id 1) and 1.0-2 (id 2), foo-bin 1.0-1 (3) and 1.0-2 (4),
/// all from source foo; bar 2.0 (5).
fn builds() -> HashMap<BuildId, Build> {
    HashMap::from([
        (1, build("libfoo", "1.0-1", "foo")),
        (2, build("libfoo", "1.0-2", "foo")),
        (3, build("foo-bin", "1.0-1", "foo")),
        (4, build("foo-bin", "1.0-2", "foo")),
        (5, build("bar", "2.0", "bar")),
    ])
}

/// Same bytes as `ids` ship at the file's own path.
fn same_bytes(l: &mut Lookups, i: usize, ids: &[BuildId], path: &str) {
    for id in ids {
        l.by_content.push((i, *id, path.into()));
        l.by_path.push((i, *id, false, Some(100 + *id)));
    }
}

/// `ids` ship the file's path with other bytes.
fn other_bytes(l: &mut Lookups, i: usize, ids: &[BuildId]) {
    for id in ids {
        l.by_path.push((i, *id, false, Some(200 + *id)));
    }
}

#[test]
fn support_prefers_in_place_matches_and_ignores_small_renamed_files() {
    let obs = vec![file("usr/lib/libfoo.so.1"), file("opt/copy.so"), {
        let mut o = file("usr/share/tiny");
        o.size = 10;
        o
    }];
    let mut l = Lookups::default();
    same_bytes(&mut l, 0, &[1], "/usr/lib/libfoo.so.1");
    l.by_content.push((0, 5, "/usr/lib/elsewhere".into()));
    l.by_content.push((1, 1, "/usr/lib/libfoo.so.1".into()));
    l.by_content.push((2, 5, "/usr/share/marker".into()));
    l.by_code.push((0, 2, Match::ElfFunctions));
    let b = builds();
    let r = Resolver {
        obs: &obs,
        l: &l,
        builds: &b,
    };
    let s = r.support();
    // In place for build 1; the renamed copy in build 5 is dropped.
    assert_eq!(
        s.matches[0],
        BTreeMap::from([(1, Match::FileDigest), (2, Match::ElfFunctions)])
    );
    assert_eq!(
        s.matches[1],
        BTreeMap::from([(1, Match::FileDigestRenamed)])
    );
    assert!(s.matches[2].is_empty(), "tiny files never match renamed");
    assert_eq!(s.at_path[0], HashSet::from([1]));
}

#[test]
fn anchors_need_one_name_and_skip_conffiles() {
    let obs = vec![
        file("usr/lib/libfoo.so.1"),
        file("usr/share/common"),
        file("usr/bin/bar"),
        file("etc/foo.conf"),
    ];
    let mut l = Lookups::default();
    same_bytes(&mut l, 0, &[1, 2], "/usr/lib/libfoo.so.1");
    same_bytes(&mut l, 1, &[1, 5], "/usr/share/common");
    // No build's bytes: a path only bar ships still anchors bar.
    other_bytes(&mut l, 2, &[5]);
    // A conffile anchors nothing.
    l.by_path.push((3, 3, true, Some(9)));
    let b = builds();
    let r = Resolver {
        obs: &obs,
        l: &l,
        builds: &b,
    };
    let anchored = r.anchors(&r.support());
    assert_eq!(anchored, HashSet::from([key("libfoo"), key("bar")]));
}

#[test]
fn tally_counts_support_and_contradictions_but_not_conffiles() {
    let obs = vec![file("usr/lib/libfoo.so.1"), file("etc/foo.conf")];
    let mut l = Lookups::default();
    same_bytes(&mut l, 0, &[2], "/usr/lib/libfoo.so.1");
    other_bytes(&mut l, 0, &[1]);
    l.by_path.push((1, 1, true, Some(7)));
    let b = builds();
    let r = Resolver {
        obs: &obs,
        l: &l,
        builds: &b,
    };
    let s = r.support();
    let t = r.tally(&s, &HashSet::from([key("libfoo")]));
    assert_eq!(t.versions[&key("libfoo")], BTreeSet::from([1, 2]));
    assert_eq!(t.support(2), 1);
    assert_eq!(t.contra.get(&1), Some(&vec![0]));
    assert!(!t.contradicted(2));
}

#[test]
fn drafts_pick_the_best_supported_consistent_builds_or_say_not_in_db() {
    let obs = vec![file("usr/lib/libfoo.so.1"), file("usr/bin/foo")];
    let mut l = Lookups::default();
    // libfoo: both builds fit equally (a tie, newest first).
    same_bytes(&mut l, 0, &[1, 2], "/usr/lib/libfoo.so.1");
    // foo-bin: every build ships the path with other bytes.
    other_bytes(&mut l, 1, &[3, 4]);
    let b = builds();
    let r = Resolver {
        obs: &obs,
        l: &l,
        builds: &b,
    };
    let s = r.support();
    let t = r.tally(&s, &HashSet::from([key("libfoo"), key("foo-bin")]));
    let d = r.drafts(&t);
    assert_eq!(d[&key("libfoo")].fit, vec![2, 1]);
    let unknown = &d[&key("foo-bin")];
    assert!(unknown.not_in_db);
    // Equally contradicted: the nearest is the newest.
    assert_eq!(unknown.nearest, Some(4));
}

#[test]
fn source_coherence_breaks_a_tie_with_a_settled_sibling() {
    let b = builds();
    let r = Resolver {
        obs: &[],
        l: &Lookups::default(),
        builds: &b,
    };
    let draft = |fit: Vec<BuildId>| Draft {
        fit,
        not_in_db: false,
        nearest: None,
    };
    let mut drafts = BTreeMap::from([
        (key("libfoo"), draft(vec![2, 1])),
        (key("foo-bin"), draft(vec![3])),
    ]);
    let why = r.cohere(&mut drafts);
    assert_eq!(drafts[&key("libfoo")].fit, vec![1]);
    assert_eq!(why[&key("libfoo")], "source foo 1.0-1");
    assert!(!why.contains_key(&key("foo-bin")));
}

#[test]
fn resolve_reports_exact_sets_and_unknown_versions_with_evidence() {
    let obs = vec![
        file("usr/lib/libfoo.so.1"),
        file("usr/bin/foo"),
        file("usr/bin/bar"),
        file("usr/share/bar/data"),
    ];
    let mut l = Lookups::default();
    same_bytes(&mut l, 0, &[1, 2], "/usr/lib/libfoo.so.1");
    same_bytes(&mut l, 1, &[4], "/usr/bin/foo");
    other_bytes(&mut l, 1, &[3]);
    same_bytes(&mut l, 2, &[5], "/usr/bin/bar");
    let b = builds();
    let found = resolve(&obs, &l, &b);
    let by: HashMap<&str, _> = found
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let foo_bin = by["foo-bin"];
    assert_eq!(foo_bin.resolution, Resolution::Exact);
    assert_eq!(foo_bin.version.as_deref(), Some("1.0-2"));
    assert_eq!(foo_bin.confidence, 0.95, "the bytes ruled out 1.0-1");
    let libfoo = by["libfoo"];
    assert_eq!(libfoo.resolution, Resolution::ExactBySourceCoherence);
    assert_eq!(libfoo.version.as_deref(), Some("1.0-2"));
    assert_eq!(libfoo.confidence, 0.8);
    assert_eq!(by["bar"].confidence, 0.95, "the only build of its name");
    assert_eq!(found.unexplained, vec!["/usr/share/bar/data".to_string()]);
    assert_eq!(found.files_seen, 4);
}

#[test]
fn a_version_set_gets_a_range_in_its_ecosystems_scheme() {
    let mut b = builds();
    for id in [1, 2] {
        if let Some(x) = b.get_mut(&id) {
            x.ecosystem = Ecosystem::Python;
            x.source = format!("wheel-{id}");
        }
    }
    let obs = vec![file("site-packages/foo/__init__.py")];
    let mut l = Lookups::default();
    same_bytes(&mut l, 0, &[1, 2], "/site-packages/foo/__init__.py");
    let found = resolve(&obs, &l, &b);
    let p = &found.packages[0];
    assert_eq!(p.resolution, Resolution::VersionSet);
    assert_eq!(p.version, None);
    assert_eq!(p.candidate_versions, vec!["1.0-2", "1.0-1"]);
    assert_eq!(p.version_range.as_deref(), Some("vers:pypi/1.0-2|1.0-1"));
    assert_eq!(p.confidence, 0.6);
}

#[test]
fn a_version_not_in_db_names_the_nearest_and_the_contradicting_files() {
    let obs = vec![file("usr/lib/libfoo.so.1"), file("usr/share/foo/a")];
    let mut l = Lookups::default();
    other_bytes(&mut l, 0, &[1, 2]);
    same_bytes(&mut l, 1, &[1], "/usr/share/foo/a");
    let found = resolve(&obs, &l, &builds());
    let p = &found.packages[0];
    assert_eq!(p.resolution, Resolution::VersionNotInDb);
    assert_eq!(p.version, None);
    assert_eq!(p.nearest_version.as_deref(), Some("1.0-1"));
    assert_eq!(
        p.contradictions,
        vec![("/usr/lib/libfoo.so.1".to_string(), None)]
    );
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("nearest known version 1.0-1")));
    assert!(found.unexplained.is_empty());
}

#[test]
fn siblings_of_an_unknown_source_version_are_never_exact() {
    let obs = vec![file("usr/lib/libfoo.so.1"), file("usr/bin/foo")];
    let mut l = Lookups::default();
    // libfoo's bytes did not change between revisions; foo-bin's did, to
    // a revision the DB lacks.
    same_bytes(&mut l, 0, &[1], "/usr/lib/libfoo.so.1");
    other_bytes(&mut l, 1, &[3, 4]);
    let b: HashMap<BuildId, Build> = builds().into_iter().filter(|(id, _)| *id != 2).collect();
    let found = resolve(&obs, &l, &b);
    let libfoo = found.packages.iter().find(|p| p.name == "libfoo").unwrap();
    assert_eq!(libfoo.resolution, Resolution::VersionNotInDb);
    assert_eq!(libfoo.nearest_version.as_deref(), Some("1.0-1"));
    assert!(libfoo.confidence <= 0.5);
    // And the phase alone, on a hand-made list:
    let mut again = found.packages.clone();
    let i = again.iter().position(|p| p.name == "libfoo").unwrap();
    again[i].resolution = Resolution::Exact;
    again[i].version = Some("1.0-1".into());
    again[i].confidence = 0.95;
    unknown_sources(&mut again);
    assert_eq!(again[i].resolution, Resolution::VersionNotInDb);
    assert_eq!(again[i].nearest_version.as_deref(), Some("1.0-1"));
    assert!(again[i].notes.iter().any(|n| n.contains("source foo")));
}

#[test]
fn code_only_exact_answers_are_capped() {
    let mut obs = vec![file("usr/lib/libfoo.so.1")];
    obs[0].elf = true;
    let mut l = Lookups::default();
    other_bytes(&mut l, 0, &[1]);
    l.by_code.push((0, 1, Match::ElfLoadedBytes));
    let b: HashMap<BuildId, Build> = builds().into_iter().filter(|(id, _)| *id == 1).collect();
    let found = resolve(&obs, &l, &b);
    let p = &found.packages[0];
    assert_eq!(p.resolution, Resolution::Exact);
    assert_eq!(p.confidence, 0.7);
    assert!(p.notes.iter().any(|n| n.contains("by code only")));
}

#[test]
fn npm_package_directories_are_their_own_groups() {
    use super::npm_root;
    assert_eq!(
        npm_root("app/node_modules/ms/index.js"),
        Some("app/node_modules/ms")
    );
    assert_eq!(
        npm_root("app/node_modules/a/node_modules/@s/b/lib/x.js"),
        Some("app/node_modules/a/node_modules/@s/b")
    );
    assert_eq!(npm_root("app/node_modules/.package-lock.json"), None);
    assert_eq!(npm_root("app/node_modules/.bin/x"), None);
    assert_eq!(npm_root("usr/lib/x.so"), None);
    assert_eq!(npm_root("app/node_modules/ms"), None);
}

#[test]
fn files_in_site_directories_answer_to_their_wheel_paths() {
    use super::site_relative;
    assert_eq!(
        site_relative("usr/lib/python3/dist-packages/idna/core.py"),
        Some("idna/core.py")
    );
    assert_eq!(
        site_relative("venv/lib/python3.11/site-packages/a/site-packages/b.py"),
        Some("b.py")
    );
    assert_eq!(site_relative("srv/my-site-packages/x.py"), None);
    assert_eq!(site_relative("usr/lib/python3/dist-packages/"), None);
}
