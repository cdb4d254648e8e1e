//! Look-ups that start while layers still stream.
//!
//! A scan learns each file's digest long before the last layer byte is
//! read, and the questions identification asks of each file (which builds
//! ship these bytes, this build-id, this path) do not depend on the rest
//! of the tree. [`LookAhead`] asks them on its own thread, from a second
//! reader, in batches as files arrive; [`super::identify_with`] then asks
//! the store only what the look-ahead could not know (hard links, paths
//! through links it was not told of, files it never heard of). Directory
//! links are learnt from the stream as well (`bin -> usr/bin`), so a file
//! is also asked for by its path through them, whichever arrives first.
//!
//! The answers are exact per key: every hit of every key asked, or the key
//! is not in [`Answers`] at all. So the look-ahead can only save time; it
//! cannot change what identification concludes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::lookup::{Build, BuildId, KeyHit, PathHit, SignatureLookup};
use crate::error::{RainbowError, Result};

/// Files gathered before a batch goes out: one query per kind and batch,
/// so tiny batches would spend the saving on round trips.
const MIN_BATCH: usize = 256;
/// Files the look-ahead takes at most. Past this it ignores files, and
/// identification asks for the rest itself: the look-ahead holds each
/// file's path and answers a second time, and an image of a million empty
/// files (the hostile corpus) must stay under 1 GiB. Most images have far
/// fewer files than this.
const MAX_FILES: usize = 50_000;
/// A partial batch goes out after this long without a new file (a layer
/// that stalls, or the last files of a small image).
const IDLE_FLUSH: Duration = Duration::from_millis(20);

/// What the store said about the keys the look-ahead asked, each key with
/// all of its hits (possibly none).
#[derive(Debug, Default)]
pub struct Answers {
    pub(super) content: HashMap<Vec<u8>, Vec<KeyHit>>,
    pub(super) build_id: HashMap<Vec<u8>, Vec<KeyHit>>,
    pub(super) path: HashMap<String, Vec<PathHit>>,
    pub(super) builds: HashMap<BuildId, Build>,
}

impl Answers {
    /// Keys answered, of every kind (what a test or a diagnostic wants to
    /// know).
    pub fn len(&self) -> usize {
        self.content.len() + self.build_id.len() + self.path.len()
    }

    /// Whether nothing was answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Msg {
    File {
        path: String,
        digest: [u8; 32],
        build_id: Option<Vec<u8>>,
    },
    Link {
        path: String,
        target: String,
    },
    End,
}

/// A running look-ahead. Tell it of files with [`LookAhead::sender`];
/// [`LookAhead::finish`] waits for the last batch and returns the answers
/// with the reader, whose caches are now warm for the questions left.
pub struct LookAhead<L> {
    tx: Sender<Msg>,
    thread: JoinHandle<Result<(Answers, L)>>,
}

/// Where files are reported to a [`LookAhead`], from any thread.
#[derive(Clone)]
pub struct FileSender(Sender<Msg>);

impl FileSender {
    /// A regular file at `path` (tree-relative, no leading `/`) with these
    /// bytes and, for ELF files, this GNU build-id.
    pub fn file(&self, path: &str, digest: &[u8; 32], build_id: Option<&[u8]>) {
        // A look-ahead that stopped (its store failed) reports that from
        // `finish`; files sent after that are simply not asked.
        let _ = self.0.send(Msg::File {
            path: path.to_string(),
            digest: *digest,
            build_id: build_id.map(<[u8]>::to_vec),
        });
    }

    /// A symbolic link at `path` (tree-relative) to `target`, as recorded:
    /// files under a linked directory are also asked for by their path
    /// through the link, as packages may record either.
    pub fn link(&self, path: &str, target: &str) {
        let _ = self.0.send(Msg::Link {
            path: path.to_string(),
            target: target.to_string(),
        });
    }
}

impl<L: SignatureLookup + Send + 'static> LookAhead<L> {
    /// Start a helper thread that connects with `open` (a reader of its
    /// own) and asks it. Files sent meanwhile wait in the queue.
    pub fn start(open: impl FnOnce() -> Result<L> + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let db = open()?;
            run(&db, &rx).map(|a| (a, db))
        });
        LookAhead { tx, thread }
    }

    /// A handle to report files with.
    pub fn sender(&self) -> FileSender {
        FileSender(self.tx.clone())
    }

    /// Ask what is still pending and return every answer, and the reader.
    pub fn finish(self) -> Result<(Answers, L)> {
        let _ = self.tx.send(Msg::End);
        self.thread
            .join()
            .map_err(|panic| RainbowError::panicked("look-ahead", &*panic))?
    }
}

/// One reported file, waiting for its batch.
struct Pending {
    path: String,
    digest: [u8; 32],
    build_id: Option<Vec<u8>>,
}

/// The look-ahead thread's state between batches.
#[derive(Default)]
struct State {
    answers: Answers,
    /// Files reported but not yet asked about.
    batch: Vec<Pending>,
    /// Paths asked for through links learnt after their files were.
    late_paths: Vec<String>,
    /// Links so far, by their target (tree-relative): a file's aliases
    /// are found through its ancestor directories, not by trying every
    /// link (an image has thousands, mostly to files).
    links: HashMap<String, Vec<String>>,
    /// Every file path taken, to alias those a later link covers.
    seen: BTreeSet<String>,
}

impl State {
    fn take(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::File {
                path,
                digest,
                build_id,
            } => {
                if self.seen.len() >= MAX_FILES {
                    return false;
                }
                self.seen.insert(path.clone());
                self.batch.push(Pending {
                    path,
                    digest,
                    build_id,
                });
                false
            }
            Msg::Link { path, target } => {
                self.link(path, &target);
                false
            }
            Msg::End => true,
        }
    }

    /// A symbolic link: files already seen under its target get their
    /// alias through it asked with the next batch.
    fn link(&mut self, path: String, target: &str) {
        let resolved = if target.starts_with('/') {
            kiln_tree::path::clean(target)
        } else {
            kiln_tree::path::clean(&kiln_tree::path::join(
                kiln_tree::path::parent(&path),
                target,
            ))
        };
        let Some(target) = resolved.filter(|t| !t.is_empty() && *t != path) else {
            return;
        };
        let under = format!("{target}/");
        self.late_paths.extend(
            self.seen
                .range(under.clone()..)
                .take_while(|p| p.starts_with(&under))
                .map(|p| format!("/{path}/{}", &p[under.len()..])),
        );
        self.links.entry(target).or_default().push(path);
    }

    /// Every path `path` may be recorded at ([`super::aliases`]), through
    /// the links learnt so far.
    fn aliases(&self, path: &str) -> Vec<String> {
        let mut out = super::aliases(path, &[]);
        let mut dir = kiln_tree::path::parent(path);
        while !dir.is_empty() {
            let rest = &path[dir.len() + 1..];
            for link in self.links.get(dir).into_iter().flatten() {
                out.push(format!("/{link}/{rest}"));
            }
            dir = kiln_tree::path::parent(dir);
        }
        out
    }

    fn due(&self) -> bool {
        self.batch.len() + self.late_paths.len() >= MIN_BATCH
    }

    fn flush<L: SignatureLookup>(&mut self, db: &L) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let late = std::mem::take(&mut self.late_paths);
        let paths: BTreeSet<String> = batch
            .iter()
            .flat_map(|p| self.aliases(&p.path))
            .chain(late)
            .filter(|a| !self.answers.path.contains_key(a))
            .collect();
        ask(db, &mut self.answers, &batch, paths)
    }
}

fn run<L: SignatureLookup>(db: &L, rx: &Receiver<Msg>) -> Result<Answers> {
    let mut st = State::default();
    loop {
        let mut ended = match rx.recv_timeout(IDLE_FLUSH) {
            Ok(msg) => st.take(msg),
            Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => {
                st.flush(db)?;
                continue;
            }
        };
        // Take whatever else is already queued without waiting.
        while !ended {
            match rx.try_recv() {
                Ok(msg) => ended = st.take(msg),
                Err(mpsc::TryRecvError::Disconnected) => ended = true,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if ended || st.due() {
            st.flush(db)?;
        }
        if ended {
            return Ok(st.answers);
        }
    }
}

/// Ask the store about one batch (and `paths`, its files' aliases and
/// those through links learnt late): keys not asked before, sorted (the
/// store probes its indexes in order), and the builds the hits name.
fn ask<L: SignatureLookup>(
    db: &L,
    answers: &mut Answers,
    batch: &[Pending],
    paths: BTreeSet<String>,
) -> Result<()> {
    let digests: BTreeSet<&[u8]> = batch
        .iter()
        .map(|p| &p.digest[..])
        .filter(|d| !answers.content.contains_key(*d))
        .collect();
    let ids: BTreeSet<&[u8]> = batch
        .iter()
        .filter_map(|p| p.build_id.as_deref())
        .filter(|b| !answers.build_id.contains_key(*b))
        .collect();
    let mut named = HashSet::new();
    if !digests.is_empty() {
        let hits = db.by_content(&digests.iter().copied().collect::<Vec<_>>())?;
        record(
            &mut answers.content,
            &digests,
            hits,
            |h| &h.0[..],
            &mut named,
            |h| h.1,
        );
    }
    if !ids.is_empty() {
        let hits = db.by_build_id(&ids.iter().copied().collect::<Vec<_>>())?;
        record(
            &mut answers.build_id,
            &ids,
            hits,
            |h| &h.0[..],
            &mut named,
            |h| h.1,
        );
    }
    if !paths.is_empty() {
        let keys: Vec<&str> = paths.iter().map(String::as_str).collect();
        let hits = db.by_path(&keys)?;
        record(
            &mut answers.path,
            &keys,
            hits,
            |h| h.0.as_str(),
            &mut named,
            |h| h.1,
        );
    }
    let new: BTreeSet<BuildId> = named
        .into_iter()
        .filter(|b| !answers.builds.contains_key(b))
        .collect();
    if !new.is_empty() {
        answers.builds.extend(db.builds(&new)?);
    }
    Ok(())
}

/// File each hit under its key, and every asked key (hits or not).
fn record<'k, Q, K, H>(
    into: &mut HashMap<K, Vec<H>>,
    asked: impl IntoIterator<Item = &'k &'k Q>,
    hits: Vec<H>,
    key_of: impl Fn(&H) -> &Q,
    named: &mut HashSet<BuildId>,
    build_of: impl Fn(&H) -> BuildId,
) where
    Q: ?Sized + 'k + ToOwned<Owned = K> + std::hash::Hash + Eq,
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
{
    for k in asked {
        into.entry((*k).to_owned()).or_default();
    }
    for h in hits {
        named.insert(build_of(&h));
        if let Some(v) = into.get_mut(key_of(&h)) {
            v.push(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;

    use kiln_fingerprint::ElfInfo;
    use kiln_image::Source;
    use kiln_tree::{BuildOptions, Facts, Tree};

    use super::*;
    use crate::identify::{identify, identify_with};
    use crate::Db;

    /// A real `.deb` of `files`, built by `dpkg-deb`.
    fn deb(dir: &Path, name: &str, version: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let root = dir.join(format!("{name}_{version}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        let control = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: kiln <kiln@example.org>\nDescription: look-ahead test\n"
        );
        std::fs::write(root.join("DEBIAN/control"), control).unwrap();
        for (path, bytes) in files {
            let at = root.join(path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, bytes).unwrap();
        }
        let out = dir.join(format!("{name}_{version}_amd64.deb"));
        let built = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&root)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        out
    }

    fn have_dpkg_deb() -> bool {
        if Command::new("dpkg-deb").arg("--version").output().is_ok() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "dpkg-deb is missing (apt-get install dpkg)"
        );
        eprintln!("skipping: dpkg-deb is not installed");
        false
    }

    fn elf_facts(_: &str, data: &[u8]) -> Option<Facts> {
        ElfInfo::parse_observed(data, None)
            .ok()
            .flatten()
            .map(|i| Arc::new(i) as Facts)
    }

    /// Identify `root` plainly, and with a look-ahead told of the files
    /// `tell` accepts; both as JSON.
    fn both(db: &Db, root: &Path, tell: fn(&str) -> bool) -> (String, String, usize) {
        let plain_opts = BuildOptions {
            hash: true,
            inspect: Some(Box::new(elf_facts)),
            ..Default::default()
        };
        let tree = Tree::build(Source::Dir(root.into()), &plain_opts).unwrap();
        let plain = serde_json::to_string(&identify(db, &tree).unwrap()).unwrap();
        let opener = db.reader_opener();
        let ahead = LookAhead::start(move || opener.open());
        let to = ahead.sender();
        let links = ahead.sender();
        let opts = BuildOptions {
            hash: true,
            inspect: Some(Box::new(elf_facts)),
            on_file: Some(Box::new(move |path, digest, facts| {
                if tell(path) {
                    let elf = facts.and_then(|f| f.downcast_ref::<ElfInfo>());
                    to.file(path, digest, elf.and_then(|e| e.build_id.as_deref()));
                }
            })),
            on_link: Some(Box::new(move |path, target| links.link(path, target))),
            ..Default::default()
        };
        let tree = Tree::build(Source::Dir(root.into()), &opts).unwrap();
        let (known, reader) = ahead.finish().unwrap();
        let with = identify_with(&reader, &tree, Some(&known)).unwrap();
        (plain, serde_json::to_string(&with).unwrap(), known.len())
    }

    /// Whatever the look-ahead was told (everything, part, nothing), the
    /// identification is the one a plain look-up gives: same bytes, a
    /// build-id with other bytes, a path through `lib -> usr/lib`, a
    /// renamed file, and a file that contradicts its package.
    #[test]
    fn answers_ahead_change_nothing_but_the_time() {
        if !have_dpkg_deb() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let host_elf = std::fs::read("/usr/bin/true").unwrap();
        let foo = deb(
            d.path(),
            "libfoo1",
            "1.0-1",
            &[
                ("usr/lib/libfoo.so.1", b"foo one"),
                ("usr/share/foo/notes", b"foo notes, long enough to count"),
                ("usr/bin/true", &host_elf),
            ],
        );
        let bar = deb(
            d.path(),
            "bar",
            "2.0-1",
            &[("usr/share/bar/data", b"bar two")],
        );
        let mut db = Db::open(d.path().join("sig.db")).unwrap();
        db.ingest_debs(&[foo, bar], &|_| {}).unwrap();

        let root = d.path().join("root");
        for dir in ["usr/lib", "usr/bin", "usr/share/bar", "opt"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("usr/lib/libfoo.so.1"), b"foo one").unwrap();
        let mut padded = host_elf.clone();
        padded.extend_from_slice(b"appended");
        std::fs::write(root.join("usr/bin/true"), padded).unwrap();
        std::fs::write(root.join("usr/share/bar/data"), b"bar other").unwrap();
        std::fs::write(root.join("opt/notes"), b"foo notes, long enough to count").unwrap();
        std::fs::write(root.join("opt/unknown"), b"nobody ships this").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();

        let (plain, with, asked) = both(&db, &root, |_| true);
        assert!(
            plain.contains("libfoo1") && plain.contains("\"bar\""),
            "{plain}"
        );
        assert_eq!(plain, with);
        assert!(asked > 0);
        let (plain, with, _) = both(&db, &root, |p| p.starts_with("usr/lib/"));
        assert_eq!(plain, with);
        let (plain, with, asked) = both(&db, &root, |_| false);
        assert_eq!(plain, with);
        assert_eq!(asked, 0);
    }

    fn file(path: &str) -> Msg {
        Msg::File {
            path: path.into(),
            digest: [0; 32],
            build_id: None,
        }
    }

    fn link(path: &str, target: &str) -> Msg {
        Msg::Link {
            path: path.into(),
            target: target.into(),
        }
    }

    /// A file is asked for through a directory link whether the link came
    /// before it or after it; links to files alias nothing.
    #[test]
    fn links_alias_files_whichever_comes_first() {
        let mut st = State::default();
        st.take(file("usr/bin/early"));
        st.take(link("bin", "usr/bin"));
        st.take(link("usr/lib/libx.so", "libx.so.1"));
        st.take(link("lib64", "/usr/lib64"));
        assert_eq!(st.late_paths, vec!["/bin/early".to_string()]);
        assert_eq!(
            st.aliases("usr/bin/late"),
            vec!["/usr/bin/late".to_string(), "/bin/late".to_string()]
        );
        assert_eq!(
            st.aliases("usr/lib64/ld.so"),
            vec!["/usr/lib64/ld.so".to_string(), "/lib64/ld.so".to_string()]
        );
        assert_eq!(
            st.aliases("usr/lib/libx.so.1"),
            vec!["/usr/lib/libx.so.1".to_string()]
        );
        // A link that climbs out of the root is ignored.
        st.take(link("evil", "../../x"));
        assert!(st.links.keys().all(|t| !t.contains("..")));
    }

    /// Past its bound the look-ahead takes no more files (identification
    /// asks for them itself), so its memory stays bounded.
    #[test]
    fn files_past_the_bound_are_left_to_identification() {
        let mut st = State::default();
        for i in 0..MAX_FILES + 10 {
            st.take(file(&format!("f/{i}")));
        }
        assert_eq!(st.batch.len(), MAX_FILES);
        assert_eq!(st.seen.len(), MAX_FILES);
    }
}
