//! rpm header blobs as the rpmdb stores them: `il` and `dl` (big-endian
//! counts), `il` index entries of 16 bytes (tag, type, offset, count),
//! then `dl` bytes of data. Every offset and string is bounds-checked, so
//! a truncated or corrupt blob is an error, never a panic.

use super::RpmError;

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const VENDOR: u32 = 1011;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const OLDFILENAMES: u32 = 1027;
const FILEDIGESTS: u32 = 1035;
const SOURCERPM: u32 = 1044;
const DIRINDEXES: u32 = 1116;
const BASENAMES: u32 = 1117;
const DIRNAMES: u32 = 1118;
const FILEDIGESTALGO: u32 = 5011;

const INT32: u32 = 4;
const STRING: u32 = 6;
const STRING_ARRAY: u32 = 8;
const I18NSTRING: u32 = 9;

/// rpm's own limits on a header (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`).
const MAX_TAGS: usize = 0xffff;
const MAX_DATA: usize = 0x0fff_ffff;

/// The fields of one installed package's header that kiln reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// `NAME`.
    pub name: String,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `EPOCH`, when set.
    pub epoch: Option<u32>,
    /// `ARCH` (absent on `gpg-pubkey` pseudo-packages).
    pub arch: Option<String>,
    /// `SOURCERPM`, e.g. `bash-5.1.8-6.el9.src.rpm`.
    pub source_rpm: Option<String>,
    /// `VENDOR`.
    pub vendor: Option<String>,
    /// `LICENSE`.
    pub license: Option<String>,
    /// Owned files, with their digests as `algorithm:hex` where recorded.
    pub files: Vec<(String, Option<String>)>,
}

impl Header {
    /// `[EPOCH:]VERSION-RELEASE`, as kiln reports rpm versions.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }

    /// Source package name and `VERSION-RELEASE`, from `SOURCERPM`.
    pub fn source(&self) -> Option<(String, String)> {
        let s = self.source_rpm.as_deref()?;
        let s = s
            .strip_suffix(".src.rpm")
            .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
        let (rest, release) = s.rsplit_once('-')?;
        let (name, version) = rest.rsplit_once('-')?;
        Some((name.to_string(), format!("{version}-{release}")))
    }
}

struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
}

struct Blob<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Result<u32, RpmError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(RpmError::Header("truncated header"))
}

impl<'a> Blob<'a> {
    fn parse(blob: &'a [u8]) -> Result<Blob<'a>, RpmError> {
        let il = be32(blob, 0)? as usize;
        let dl = be32(blob, 4)? as usize;
        if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
            return Err(RpmError::Header("header counts out of range"));
        }
        let start = 8 + il * 16;
        let data = blob
            .get(start..start + dl)
            .ok_or(RpmError::Header("truncated header"))?;
        let mut entries = Vec::with_capacity(il);
        for i in 0..il {
            let at = 8 + i * 16;
            let offset = be32(blob, at + 8)? as usize;
            if offset > dl {
                return Err(RpmError::Header("tag data offset past the end"));
            }
            entries.push(Entry {
                tag: be32(blob, at)?,
                kind: be32(blob, at + 4)?,
                offset,
                count: be32(blob, at + 12)? as usize,
            });
        }
        Ok(Blob { entries, data })
    }

    fn find(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    fn strings(&self, tag: u32) -> Result<Vec<String>, RpmError> {
        let Some(e) = self.find(tag) else {
            return Ok(Vec::new());
        };
        if !matches!(e.kind, STRING | STRING_ARRAY | I18NSTRING) {
            return Err(RpmError::Header("string tag of another type"));
        }
        let n = if e.kind == STRING { 1 } else { e.count };
        if n > self.data.len() {
            return Err(RpmError::Header("string count past the end"));
        }
        let mut out = Vec::with_capacity(n);
        let mut at = e.offset;
        for _ in 0..n {
            let rest = self.data.get(at..).unwrap_or_default();
            let len = rest
                .iter()
                .position(|&c| c == 0)
                .ok_or(RpmError::Header("unterminated string"))?;
            out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            at += len + 1;
        }
        Ok(out)
    }

    fn string(&self, tag: u32) -> Result<Option<String>, RpmError> {
        Ok(self.strings(tag)?.into_iter().next())
    }

    fn ints(&self, tag: u32) -> Result<Vec<u32>, RpmError> {
        let Some(e) = self.find(tag) else {
            return Ok(Vec::new());
        };
        if e.kind != INT32 {
            return Err(RpmError::Header("integer tag of another type"));
        }
        let end = e
            .count
            .checked_mul(4)
            .and_then(|n| n.checked_add(e.offset))
            .filter(|&end| end <= self.data.len())
            .ok_or(RpmError::Header("integer array past the end"))?;
        Ok(self.data[e.offset..end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Parse one header blob.
pub fn parse(blob: &[u8]) -> Result<Header, RpmError> {
    let b = Blob::parse(blob)?;
    let name = b
        .string(NAME)?
        .ok_or(RpmError::Header("header has no NAME"))?;
    Ok(Header {
        name,
        version: b.string(VERSION)?.unwrap_or_default(),
        release: b.string(RELEASE)?.unwrap_or_default(),
        epoch: b.ints(EPOCH)?.first().copied(),
        arch: b.string(ARCH)?,
        source_rpm: b.string(SOURCERPM)?,
        vendor: b.string(VENDOR)?,
        license: b.string(LICENSE)?,
        files: files(&b)?,
    })
}

/// The file list: `DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]` (or the old
/// flat `OLDFILENAMES`), paired with `FILEDIGESTS`.
fn files(b: &Blob) -> Result<Vec<(String, Option<String>)>, RpmError> {
    let mut paths = b.strings(OLDFILENAMES)?;
    if paths.is_empty() {
        let (base, dirs, idx) = (
            b.strings(BASENAMES)?,
            b.strings(DIRNAMES)?,
            b.ints(DIRINDEXES)?,
        );
        if base.len() != idx.len() {
            return Err(RpmError::Header(
                "BASENAMES and DIRINDEXES differ in length",
            ));
        }
        paths = base
            .iter()
            .zip(&idx)
            .map(|(name, &i)| {
                dirs.get(i as usize)
                    .map(|d| format!("{d}{name}"))
                    .ok_or(RpmError::Header("DIRINDEXES past DIRNAMES"))
            })
            .collect::<Result<_, _>>()?;
    }
    let digests = b.strings(FILEDIGESTS)?;
    let algo = match b.ints(FILEDIGESTALGO)?.first().copied().unwrap_or(1) {
        1 => "md5",
        2 => "sha1",
        8 => "sha256",
        9 => "sha384",
        10 => "sha512",
        11 => "sha224",
        _ => "unknown",
    };
    Ok(paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let d = digests
                .get(i)
                .filter(|d| !d.is_empty())
                .map(|d| format!("{algo}:{d}"));
            (p, d)
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Assemble a header blob from `(tag, type, payload, count)` entries,
    /// in rpm's layout (the tests' stand-in only for corrupting real ones).
    pub(crate) fn blob(entries: &[(u32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, payload, count) in entries {
            while *kind == INT32 && data.len() % 4 != 0 {
                data.push(0);
            }
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(payload);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    pub(crate) fn s(v: &str) -> Vec<u8> {
        let mut b = v.as_bytes().to_vec();
        b.push(0);
        b
    }

    pub(crate) fn sample() -> Vec<u8> {
        blob(&[
            (NAME, STRING, s("bash"), 1),
            (VERSION, STRING, s("5.1.8"), 1),
            (RELEASE, STRING, s("6.el9"), 1),
            (EPOCH, INT32, 1u32.to_be_bytes().to_vec(), 1),
            (ARCH, STRING, s("x86_64"), 1),
            (SOURCERPM, STRING, s("bash-5.1.8-6.el9.src.rpm"), 1),
            (
                DIRINDEXES,
                INT32,
                [0u32, 1].iter().flat_map(|v| v.to_be_bytes()).collect(),
                2,
            ),
            (
                BASENAMES,
                STRING_ARRAY,
                [s("bash"), s("bash.1.gz")].concat(),
                2,
            ),
            (
                DIRNAMES,
                STRING_ARRAY,
                [s("/usr/bin/"), s("/usr/share/man/man1/")].concat(),
                2,
            ),
            (FILEDIGESTS, STRING_ARRAY, [s("ab12"), s("")].concat(), 2),
            (FILEDIGESTALGO, INT32, 8u32.to_be_bytes().to_vec(), 1),
        ])
    }

    #[test]
    fn reads_the_fields_kiln_reports() {
        let h = parse(&sample()).unwrap();
        assert_eq!(h.name, "bash");
        assert_eq!(h.evr(), "1:5.1.8-6.el9");
        assert_eq!(h.source(), Some(("bash".into(), "5.1.8-6.el9".into())));
        assert_eq!(
            h.files,
            vec![
                ("/usr/bin/bash".into(), Some("sha256:ab12".into())),
                ("/usr/share/man/man1/bash.1.gz".into(), None)
            ]
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = sample();
        for n in 0..full.len() {
            assert!(parse(&full[..n]).is_err(), "prefix of {n} bytes parsed");
        }
        let mut bad = full.clone();
        bad[8 + 8..8 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&bad).is_err());
        let unterminated = blob(&[(NAME, STRING, b"bash".to_vec(), 1)]);
        assert!(parse(&unterminated).is_err());
    }
}
