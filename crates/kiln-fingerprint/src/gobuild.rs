//! Go build information (`runtime/debug.BuildInfo`), which the Go linker
//! embeds in every binary since Go 1.13 — including `-trimpath` and
//! stripped builds: the `.go.buildinfo` blob starts with a magic string,
//! found by section name or, failing that, by scanning for the magic.

use goblin::elf::Elf;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Sentinels Go wraps the module info string in.
const INFO_START: usize = 16;
const INFO_END: usize = 16;

/// One module line of the build info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoModule {
    /// Module path.
    pub path: String,
    /// Version (`(devel)` for an unversioned main module).
    pub version: String,
    /// `h1:` checksum, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// The replacement (`=>`), if the module was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<Box<GoModule>>,
}

/// What a Go binary says about how it was built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoBuildInfo {
    /// Toolchain, e.g. `go1.19.8`.
    pub go_version: String,
    /// Main package path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Main module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<GoModule>,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<GoModule>,
    /// `build` settings (`-trimpath`, `GOOS`, `vcs.revision`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<(String, String)>,
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((x, i + 1));
        }
    }
    None
}

fn varstr(b: &[u8]) -> Option<(&[u8], usize)> {
    let (n, k) = uvarint(b)?;
    let end = k.checked_add(usize::try_from(n).ok()?)?;
    Some((b.get(k..end)?, end))
}

/// Translate a virtual address to a file offset through the PT_LOAD
/// segments (pre-1.18 build info stores pointers).
fn vaddr_to_offset(elf: &Elf, vaddr: u64) -> Option<usize> {
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .find(|p| vaddr >= p.p_vaddr && vaddr < p.p_vaddr + p.p_filesz)
        .and_then(|p| usize::try_from(vaddr - p.p_vaddr + p.p_offset).ok())
}

fn read_ptr(b: &[u8], at: usize, size: usize, big: bool) -> Option<u64> {
    let s = b.get(at..at + size)?;
    Some(match (size, big) {
        (8, false) => u64::from_le_bytes(s.try_into().ok()?),
        (8, true) => u64::from_be_bytes(s.try_into().ok()?),
        (4, false) => u64::from(u32::from_le_bytes(s.try_into().ok()?)),
        (4, true) => u64::from(u32::from_be_bytes(s.try_into().ok()?)),
        _ => return None,
    })
}

/// A Go string header (ptr, len) at a virtual address, dereferenced.
fn go_string<'a>(data: &'a [u8], elf: &Elf, vaddr: u64, ptr: usize, big: bool) -> Option<&'a [u8]> {
    let hdr = vaddr_to_offset(elf, vaddr)?;
    let p = read_ptr(data, hdr, ptr, big)?;
    let n = usize::try_from(read_ptr(data, hdr + ptr, ptr, big)?).ok()?;
    let at = vaddr_to_offset(elf, p)?;
    data.get(at..at.checked_add(n)?)
}

impl GoBuildInfo {
    /// Find and parse the build info of an ELF file; `None` for non-Go files.
    pub fn parse(data: &[u8], elf: &Elf) -> Option<GoBuildInfo> {
        let start = elf
            .section_headers
            .iter()
            .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".go.buildinfo"))
            .and_then(|s| usize::try_from(s.sh_offset).ok())
            .filter(|o| data.get(*o..).is_some_and(|d| d.starts_with(MAGIC)))
            // Without section headers (sstrip'd), look for the magic itself;
            // with them, a file lacking the section is not Go.
            .or_else(|| {
                elf.section_headers
                    .is_empty()
                    .then(|| data.windows(MAGIC.len()).position(|w| w == MAGIC))
                    .flatten()
            })?;
        let hdr = data.get(start..start + 32)?;
        let ptr_size = usize::from(hdr[14]);
        let flags = hdr[15];
        let big = flags & 1 != 0;
        let (version, info) = if flags & 2 != 0 {
            // Go 1.18+: two varint-prefixed strings right after the header.
            let rest = data.get(start + 32..)?;
            let (v, k) = varstr(rest)?;
            let (m, _) = varstr(&rest[k..])?;
            (v, m)
        } else {
            let vp = read_ptr(data, start + 16, ptr_size, big)?;
            let mp = read_ptr(data, start + 16 + ptr_size, ptr_size, big)?;
            (
                go_string(data, elf, vp, ptr_size, big)?,
                go_string(data, elf, mp, ptr_size, big).unwrap_or_default(),
            )
        };
        let mut out = GoBuildInfo {
            go_version: String::from_utf8_lossy(version).into_owned(),
            ..Default::default()
        };
        if info.len() > INFO_START + INFO_END {
            let text =
                String::from_utf8_lossy(&info[INFO_START..info.len() - INFO_END]).into_owned();
            out.parse_modinfo(&text);
        }
        (!out.go_version.is_empty()).then_some(out)
    }

    fn parse_modinfo(&mut self, text: &str) {
        for line in text.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            let module = |c: &[&str]| GoModule {
                path: c.get(1).unwrap_or(&"").to_string(),
                version: c.get(2).unwrap_or(&"").to_string(),
                sum: c.get(3).filter(|s| !s.is_empty()).map(|s| s.to_string()),
                replaced_by: None,
            };
            match cols.first().copied() {
                Some("path") => self.path = cols.get(1).map(|s| s.to_string()),
                Some("mod") => self.main = Some(module(&cols)),
                Some("dep") => self.deps.push(module(&cols)),
                Some("=>") => {
                    let target = self.deps.last_mut().or(self.main.as_mut());
                    if let Some(m) = target {
                        m.replaced_by = Some(Box::new(module(&cols)));
                    }
                }
                Some("build") => {
                    if let Some((k, v)) = cols.get(1).and_then(|kv| kv.split_once('=')) {
                        self.settings.push((k.to_string(), v.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(uvarint(&[0xac, 0x02]), Some((300, 2)));
        assert_eq!(varstr(&[3, b'a', b'b', b'c', b'x']), Some((&b"abc"[..], 4)));
        assert_eq!(varstr(&[9, b'a']), None);
    }

    #[test]
    fn modinfo_lines() {
        let mut b = GoBuildInfo::default();
        b.parse_modinfo(
            "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/sys\tv0.5.0\th1:abc=\n=>\t/src/sys\t(devel)\t\nbuild\t-trimpath=true\n",
        );
        assert_eq!(b.path.as_deref(), Some("example.com/app"));
        assert_eq!(b.main.as_ref().unwrap().version, "(devel)");
        assert_eq!(b.deps[0].version, "v0.5.0");
        assert_eq!(b.deps[0].sum.as_deref(), Some("h1:abc="));
        assert_eq!(b.deps[0].replaced_by.as_ref().unwrap().path, "/src/sys");
        assert_eq!(
            b.settings,
            vec![("-trimpath".to_string(), "true".to_string())]
        );
    }
}
