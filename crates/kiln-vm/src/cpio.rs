//! The newc ("070701") cpio format the kernel unpacks an initramfs from:
//! a 110-byte ASCII header per member, name and data padded to 4 bytes,
//! and a `TRAILER!!!` member at the end.

/// An archive being written in memory.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::HashSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

impl Writer {
    pub(crate) fn dir(&mut self, path: &str) {
        if self.dirs.insert(path.to_string()) {
            self.member(path, S_IFDIR | 0o755, (0, 0), &[]);
        }
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        // Parents first; the kernel does not make missing directories.
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.dir(&path[..at + i]);
            at += i + 1;
        }
        self.member(path, S_IFREG | mode, (0, 0), data);
    }

    pub(crate) fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.member(path, S_IFCHR | 0o600, (major, minor), &[]);
    }

    fn member(&mut self, path: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            path.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(path.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.member("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GNU cpio, the format's reference reader, lists what was written.
    #[test]
    fn gnu_cpio_reads_the_archive() {
        let mut w = Writer::default();
        w.file("kiln/modules/a.ko", 0o644, b"module");
        w.file("init", 0o755, b"lib\0 looks like a member name");
        w.file("lib/x.so", 0o755, b"");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, w.finish()).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-t", "--quiet", "-F"])
            .arg(&path)
            .output()
            .expect("cpio (Debian's cpio package)");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            [
                "kiln",
                "kiln/modules",
                "kiln/modules/a.ko",
                "init",
                "lib",
                "lib/x.so"
            ]
        );
    }
}
