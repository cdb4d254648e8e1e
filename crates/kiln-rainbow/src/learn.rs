//! Learning version signatures from real packages.
//!
//! When a package is ingested, kiln knows its upstream project and version
//! (from the Debian source version). Every place in its ELF files where that
//! version shows up becomes a *template* that can read the version of
//! another build of the same project — one that no package database lists:
//!
//! - a string: `OpenSSL 3.0.17 1 Jul 2025` becomes
//!   `^OpenSSL\s+(VER)\s+\d+\s+[A-Z][a-z]{2}\s+\d+$`;
//! - an integer a function returns: `WebPGetDecoderVersion` returning
//!   `0x10204` for 1.2.4 becomes "hex digits at bit 16, 8, 0";
//! - integers a function stores: `FT_New_Library` storing 2, 12, 1 at
//!   offsets 8, 12, 16; `ldap_get_option` storing 20513 at offset 0x20;
//! - a string a function returns (`raqm_version_string`);
//! - the version in a library's file name (`libbrotlidec.so.1.0.9`), and how
//!   it relates to the upstream version.
//!
//! Templates are keyed by project and, where there is one, by symbol, so a
//! function template only ever reads the function it was learned from.

use std::fmt;

use kiln_fingerprint::{Clues, Store};

use crate::project::components;

/// Kinds of template, in the order of their stored names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateKind {
    /// An integer a function returns.
    FnInt,
    /// A string a function returns.
    FnStr,
    /// A shared library's base name, and how its file-name version maps to
    /// the upstream version.
    Libname,
    /// Version components a function stores through consecutive pointer
    /// arguments (`zmq_version(&major, &minor, &patch)`).
    StoreArgs,
    /// One integer a function stores at a displacement.
    StoreInt,
    /// Version components stored at consecutive 4-byte fields.
    StoreSeq,
    /// A printable string.
    String,
}

impl TemplateKind {
    /// Every kind.
    pub const ALL: [TemplateKind; 7] = [
        TemplateKind::FnInt,
        TemplateKind::FnStr,
        TemplateKind::Libname,
        TemplateKind::StoreArgs,
        TemplateKind::StoreInt,
        TemplateKind::StoreSeq,
        TemplateKind::String,
    ];

    /// The name stored in the DB.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::FnInt => "fn-int",
            TemplateKind::FnStr => "fn-str",
            TemplateKind::Libname => "libname",
            TemplateKind::StoreArgs => "store-args",
            TemplateKind::StoreInt => "store-int",
            TemplateKind::StoreSeq => "store-seq",
            TemplateKind::String => "string",
        }
    }

    /// The kind a stored name names.
    pub fn parse(s: &str) -> Option<TemplateKind> {
        TemplateKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A learned template (one observation of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template {
    /// What it reads.
    pub kind: TemplateKind,
    /// Function symbol (or library base name); empty for strings.
    pub symbol: String,
    /// Regex, encoding or relation.
    pub pattern: String,
}

/// Whether a function template can be believed: version functions name
/// themselves (`WebPGetDecoderVersion`, `zmq_version`, `PQlibVersion`,
/// `lzma_version_number`), a template that held for two releases is no
/// coincidence, and a returned string with enough literal context around
/// the version (`"libjpeg-turbo version 3.1.0 (build …)"`) speaks for
/// itself. Stored sequences of several components are specific already.
pub fn credible(kind: TemplateKind, symbol: &str, pattern: &str, versions: i64) -> bool {
    let lower = symbol.to_ascii_lowercase();
    let named = lower.contains("vers") || lower.contains("_ver") || lower.ends_with("ver");
    match kind {
        TemplateKind::FnStr => named || versions >= 2 || literal_len(pattern) >= 5,
        TemplateKind::FnInt | TemplateKind::StoreInt => {
            // A regular encoding of three components is no coincidence
            // either (`ldap_get_option` stores 20513 for 2.5.13).
            let enc = pattern.rsplit_once(':').map_or(pattern, |(head, tail)| {
                if head.contains(':') {
                    // `disp:x:24,16,8` (store-int): the encoding is after
                    // the displacement.
                    pattern.split_once(':').map_or(pattern, |(_, e)| e)
                } else if matches!(head, "x" | "d") {
                    pattern
                } else {
                    tail
                }
            });
            let regular = enc
                .parse::<IntEncoding>()
                .is_ok_and(|e| e.regular() && e.exps.len() >= 3);
            named || versions >= 2 || regular
        }
        TemplateKind::StoreArgs => named || versions >= 2,
        _ => true,
    }
}

/// Source paths of the build (`/build/openfoam-yfGgh/openfoam-2212/src/…`,
/// `/usr/src/rustc-1.85.0/…`, `assert` messages naming `foo.c`) hold the
/// version only because Debian's build directory does: no other build of
/// the project carries them, so they are not learned.
pub fn build_path(s: &str) -> bool {
    const SOURCE: &[&str] = &[
        ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".rs", ".go", ".f", ".F", ".f90", ".F90",
        ".C", ".m", ".mm", ".S", ".s", ".py", ".java",
    ];
    s.contains("/build/")
        || s.contains("/usr/src/")
        || s.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ':')
            .any(|t| t.contains('/') && SOURCE.iter().any(|x| t.ends_with(x)))
}

/// The regex a version is captured with: dotted numbers, with OpenSSL's
/// letter suffix and a pre-release tag (`5.0.0-alpha`, `2.1.0-rc1`).
pub const VERSION_RE: &str = r"(\d+(?:\.\d+)+[a-z]?(?:-(?:alpha|beta|rc|pre)\d*)?)";

/// Month abbreviations generalise, so a release date matches any date.
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Turn `s`, which holds `version` at byte `at`, into an anchored regex with
/// the version as the only capture.
pub fn generalize(s: &str, at: usize, version: &str) -> String {
    let (prefix, rest) = s.split_at(at);
    let suffix = &rest[version.len()..];
    format!("^{}{VERSION_RE}{}$", shape(prefix), shape(suffix))
}

/// Least literal context before the version for a prefix-only template.
const MIN_PREFIX: usize = 5;

/// An anchored regex for `s` up to and including the version at `at`,
/// whatever follows it.
pub fn generalize_prefix(s: &str, at: usize) -> String {
    format!("^{}{VERSION_RE}", shape(&s[..at]))
}

fn shape(text: &str) -> String {
    let mut out = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str(r"\d+");
        } else if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push_str(r"\s+");
        } else if let Some(m) = MONTHS.iter().find(|m| {
            text[i..].starts_with(**m) && !b.get(i + 3).is_some_and(u8::is_ascii_alphabetic)
        }) {
            let _ = m;
            out.push_str("[A-Z][a-z]{2}");
            i += 3;
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push_str(&regex::escape(&ch.to_string()));
            i += ch.len_utf8();
        }
    }
    out
}

/// Literal characters of a string template: how much context pins it.
pub fn literal_len(pattern: &str) -> usize {
    // The version group and generalised classes contribute their letters;
    // subtract the fixed parts of VERSION_RE and of the month class.
    counted(pattern).saturating_sub(literal_len_of_fixed(pattern))
}

/// Characters of a pattern that are not regex syntax.
fn counted(pattern: &str) -> usize {
    let mut n: usize = 0;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(e) = chars.next() {
                    if !e.is_ascii_alphabetic() {
                        n += 1;
                    }
                }
            }
            '^' | '$' | '(' | ')' | '?' | '+' | '*' | '[' | ']' | '{' | '}' | '|' => {}
            _ => n += 1,
        }
    }
    n
}

fn literal_len_of_fixed(pattern: &str) -> usize {
    let version = if pattern.contains(VERSION_RE) {
        counted(VERSION_RE)
    } else {
        0
    };
    let months = pattern.matches("[A-Z][a-z]{2}").count() * 7;
    version + months
}

/// Where `version` occurs in `s` as a whole token (not inside a longer
/// number or dotted version).
pub fn find_version(s: &str, version: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(pos) = s[from..].find(version) {
        let at = from + pos;
        let end = at + version.len();
        let before_ok = at == 0 || !(b[at - 1].is_ascii_digit() || b[at - 1] == b'.');
        let after_ok = end == b.len()
            || !(b[end].is_ascii_alphanumeric()
                || b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit));
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// How an integer carries version components: component `i` sits at
/// `base^exps[i]` (hex digits at bit shifts, or decimal places).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntEncoding {
    /// 16 (shifts in bits, multiples of 4) or 10 (decimal places).
    pub base: u32,
    /// One exponent per component, strictly decreasing.
    pub exps: Vec<u32>,
    /// Learned with a remainder below the last field (a release-status
    /// digit); an exact encoding reads nothing from a value that has one,
    /// since that value carries a component the encoding lacks.
    pub loose: bool,
}

impl fmt::Display for IntEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.base == 16 { "x" } else { "d" };
        let exps: Vec<String> = self.exps.iter().map(u32::to_string).collect();
        let loose = if self.loose { "+" } else { "" };
        write!(f, "{tag}:{}{loose}", exps.join(","))
    }
}

impl std::str::FromStr for IntEncoding {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (tag, exps) = s.split_once(':').ok_or(())?;
        let (exps, loose) = match exps.strip_suffix('+') {
            Some(e) => (e, true),
            None => (exps, false),
        };
        let base = match tag {
            "x" => 16,
            "d" => 10,
            _ => return Err(()),
        };
        let exps = exps
            .split(',')
            .map(|e| e.parse().map_err(|_| ()))
            .collect::<Result<Vec<u32>, ()>>()?;
        if exps.is_empty() || exps.windows(2).any(|w| w[0] <= w[1]) {
            return Err(());
        }
        Ok(IntEncoding { base, exps, loose })
    }
}

impl IntEncoding {
    fn weight(&self, e: u32) -> Option<u64> {
        match self.base {
            16 => 1u64.checked_shl(e),
            _ => 10u64.checked_pow(e),
        }
    }

    /// Read the version out of `v`.
    pub fn decode(&self, v: u64) -> Option<String> {
        let mut parts = Vec::with_capacity(self.exps.len());
        let mut prev: Option<u64> = None;
        for &e in &self.exps {
            let w = self.weight(e)?;
            let c = v / w;
            let c = match prev {
                Some(pw) => c % (pw / w),
                None => c,
            };
            parts.push(c);
            prev = Some(w);
        }
        if parts[0] == 0 && parts.iter().all(|c| *c == 0) || parts[0] > 999 {
            return None;
        }
        // Data below the last field of an exact encoding: the value has a
        // component this encoding does not know (0x000909 read as `x:16,8`
        // is 0.9.9, not 0.9).
        if !self.loose && prev.is_some_and(|w| !v.is_multiple_of(w)) {
            return None;
        }
        Some(
            parts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        )
    }

    /// Every encoding under which `v` carries `comps` exactly, or (when
    /// none does) with a remainder below the last place (a release-status
    /// digit, as xz and zlib add).
    pub fn learn(v: u64, comps: &[u64]) -> Vec<IntEncoding> {
        if v < 256 || comps.len() < 2 || comps.len() > 4 {
            return Vec::new();
        }
        let mut exact = Vec::new();
        let mut loose = Vec::new();
        for (base, exps) in [
            (16u32, (0..=28).step_by(4).collect::<Vec<u32>>()),
            (10, (0..=9).collect()),
        ] {
            let mut pick = vec![0usize; comps.len()];
            combos(
                &exps,
                comps.len(),
                0,
                &mut pick,
                0,
                &mut |chosen: &[u32]| {
                    let enc = IntEncoding {
                        base,
                        exps: chosen.to_vec(),
                        loose: false,
                    };
                    let mut sum: u64 = 0;
                    for (i, (&c, &e)) in comps.iter().zip(chosen).enumerate() {
                        let Some(w) = enc.weight(e) else { return };
                        if i > 0 {
                            let Some(pw) = enc.weight(chosen[i - 1]) else {
                                return;
                            };
                            if c >= pw / w {
                                return;
                            }
                        }
                        sum = match c.checked_mul(w).and_then(|x| x.checked_add(sum)) {
                            Some(s) => s,
                            None => return,
                        };
                    }
                    let Some(last) = enc.weight(*chosen.last().unwrap_or(&0)) else {
                        return;
                    };
                    if v == sum {
                        exact.push(enc);
                    } else if v > sum && v - sum < last {
                        loose.push(IntEncoding { loose: true, ..enc });
                    }
                },
            );
        }
        let mut found = if exact.is_empty() { loose } else { exact };
        found.sort_by_key(IntEncoding::oddness);
        found
    }

    /// Equal, natural field widths: a byte (hex) or two decimal digits per
    /// field, whatever sits below the last.
    pub fn regular(&self) -> bool {
        self.oddness() <= 1
    }

    /// How unusual an encoding is; one observation often fits several, and
    /// the usual one (equal field widths, a byte or two decimal digits per
    /// field, nothing below the last field) is the one to believe.
    pub fn oddness(&self) -> u32 {
        let gaps: Vec<u32> = self.exps.windows(2).map(|w| w[0] - w[1]).collect();
        let natural = if self.base == 16 { 8 } else { 2 };
        let uneven = gaps.windows(2).filter(|g| g[0] != g[1]).count() as u32;
        let off = gaps.iter().filter(|g| **g != natural).count() as u32;
        let last = self.exps.last().copied().unwrap_or(0);
        uneven * 4 + off * 2 + u32::from(last != 0)
    }
}

/// Call `f` with every strictly decreasing choice of `k` exponents.
fn combos(
    exps: &[u32],
    k: usize,
    start: usize,
    pick: &mut Vec<usize>,
    depth: usize,
    f: &mut dyn FnMut(&[u32]),
) {
    if depth == k {
        let mut chosen: Vec<u32> = pick.iter().map(|i| exps[*i]).collect();
        chosen.reverse();
        f(&chosen);
        return;
    }
    for i in start..exps.len() {
        pick[depth] = i;
        combos(exps, k, i + 1, pick, depth + 1, f);
    }
}

/// The version a function stores through its pointer arguments `start`,
/// `start + 1`, … (`n` of them, one value each, at offset 0).
pub fn read_args(stores: &[Store], start: u8, n: usize) -> Option<String> {
    let mut parts = Vec::with_capacity(n);
    for k in 0..n {
        let arg = start.checked_add(u8::try_from(k).ok()?)?;
        let mut vals = stores
            .iter()
            .filter(|s| s.arg == Some(arg) && s.disp == 0)
            .map(|s| s.value & 0xffff_ffff);
        let v = vals.next()?;
        if vals.any(|w| w != v) || v > 99_999 {
            return None;
        }
        parts.push(v.to_string());
    }
    Some(parts.join("."))
}

/// 4-byte words a function stores: 8-byte stores split in two.
pub fn words(stores: &[Store]) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for s in stores {
        match s.width {
            8 => {
                out.push((s.disp, s.value & 0xffff_ffff));
                out.push((s.disp + 4, s.value >> 32));
            }
            4 => out.push((s.disp, s.value)),
            _ => {}
        }
    }
    out
}

/// Read version components stored at `disp`, `disp+4`, ... (a
/// `store-seq` template), if each field gets exactly one constant.
pub fn read_seq(stores: &[Store], disp: i64, n: usize) -> Option<String> {
    let w = words(stores);
    let mut parts = Vec::new();
    for i in 0..n as i64 {
        let mut vals: Vec<u64> = w
            .iter()
            .filter(|(d, _)| *d == disp + 4 * i)
            .map(|(_, v)| *v)
            .collect();
        vals.dedup();
        match vals.as_slice() {
            [v] if *v < 10_000 => parts.push(v.to_string()),
            _ => return None,
        }
    }
    Some(parts.join("."))
}

/// Everything one ELF file of project version `version` teaches.
pub fn observe(version: &str, clues: &Clues) -> Vec<Template> {
    let mut out = Vec::new();
    for s in clues.strings.iter().filter(|s| !build_path(s)) {
        if let Some(at) = find_version(s, version) {
            out.push(Template {
                kind: TemplateKind::String,
                symbol: String::new(),
                pattern: generalize(s, at, version),
            });
            // What follows the version is often the build's configuration
            // or a packaging suffix (`OpenSSL 1.1.1k  FIPS 25 Mar 2021`,
            // OpenBLAS's feature list, `HDF5 library version: 1.14.4-3`):
            // the context before it is what the project keeps across
            // releases and builds.
            let prefix = generalize_prefix(s, at);
            if literal_len(&prefix) >= MIN_PREFIX {
                out.push(Template {
                    kind: TemplateKind::String,
                    symbol: String::new(),
                    pattern: prefix,
                });
            }
        }
    }
    let comps = components(version);
    for f in &clues.functions {
        for s in &f.returns_str {
            if let Some(at) = find_version(s, version) {
                out.push(Template {
                    kind: TemplateKind::FnStr,
                    symbol: f.name.clone(),
                    pattern: generalize(s, at, version),
                });
            }
        }
        let Some(comps) = &comps else { continue };
        for v in &f.returns {
            for enc in IntEncoding::learn(*v, comps) {
                out.push(Template {
                    kind: TemplateKind::FnInt,
                    symbol: f.name.clone(),
                    pattern: enc.to_string(),
                });
            }
        }
        for (disp, v) in words(&f.stores) {
            for enc in IntEncoding::learn(v, comps) {
                out.push(Template {
                    kind: TemplateKind::StoreInt,
                    symbol: f.name.clone(),
                    pattern: format!("{disp}:{enc}"),
                });
            }
        }
        // Small stored numbers are everywhere; a sequence like 1, 0, 0 is
        // no evidence of version 1.0.0.
        if comps.len() >= 2 && comps.iter().filter(|c| **c != 0).count() >= 2 {
            for start in 0..6u8 {
                if read_args(&f.stores, start, comps.len()).as_deref() == Some(version) {
                    out.push(Template {
                        kind: TemplateKind::StoreArgs,
                        symbol: f.name.clone(),
                        pattern: format!("{start}:{}", comps.len()),
                    });
                }
            }
            let w = words(&f.stores);
            for (disp, v) in &w {
                if *v == comps[0]
                    && read_seq(&f.stores, *disp, comps.len()).as_deref() == Some(version)
                {
                    out.push(Template {
                        kind: TemplateKind::StoreSeq,
                        symbol: f.name.clone(),
                        pattern: format!("{disp}:{}", comps.len()),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How a library file name's version relates to the upstream version,
/// learned from (file version, upstream version) pairs.
pub fn libname_relation(pairs: &[(String, String)]) -> Option<String> {
    let holds = |rel: &str| {
        pairs
            .iter()
            .all(|(f, u)| apply_relation(rel, f).as_deref() == Some(u.as_str()))
    };
    if pairs.is_empty() {
        return None;
    }
    for rel in ["same", "nozero"] {
        if holds(rel) {
            return Some(rel.into());
        }
    }
    // One component of the file version encodes the whole version
    // (harfbuzz: libharfbuzz.so.0.60000.0 for 6.0.0).
    let (f0, u0) = &pairs[0];
    let comps = components(u0)?;
    for (j, part) in f0.split('.').enumerate() {
        let Ok(v) = part.parse::<u64>() else { continue };
        for enc in IntEncoding::learn(v, &comps) {
            let rel = format!("part:{j}:{enc}");
            if holds(&rel) {
                return Some(rel);
            }
        }
    }
    None
}

/// Apply a relation from [`libname_relation`] to a file-name version.
pub fn apply_relation(rel: &str, file_version: &str) -> Option<String> {
    let parts: Vec<&str> = file_version.split('.').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        || parts.len() < 2
    {
        return None;
    }
    match rel {
        "same" => Some(file_version.to_string()),
        "nozero" => {
            let kept: Vec<&str> = parts
                .iter()
                .enumerate()
                .filter(|(i, p)| *i == 0 || !p.trim_start_matches('0').is_empty())
                .map(|(_, p)| *p)
                .collect();
            (kept.len() >= 2 && kept.len() < parts.len()).then(|| kept.join("."))
        }
        _ => {
            let mut it = rel.splitn(3, ':');
            if it.next() != Some("part") {
                return None;
            }
            let j: usize = it.next()?.parse().ok()?;
            let enc: IntEncoding = it.next()?.parse().ok()?;
            enc.decode(parts.get(j)?.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn string_templates_generalise_dates_and_spacing() {
        let s = "OpenSSL 3.0.17 1 Jul 2025";
        let p = generalize(s, find_version(s, "3.0.17").unwrap(), "3.0.17");
        let re = Regex::new(&p).unwrap();
        let cap = |t: &str| re.captures(t).map(|c| c[1].to_string());
        assert_eq!(
            cap("OpenSSL 1.1.1w  11 Sep 2023").as_deref(),
            Some("1.1.1w")
        );
        assert_eq!(cap("OpenSSL 3.4.0 22 Oct 2024").as_deref(), Some("3.4.0"));
        assert_eq!(
            cap("OpenSSL 3.0.0"),
            None,
            "a bare mention is not the template"
        );
        assert!(literal_len(&p) >= 7, "{p}: {}", literal_len(&p));
        let bare = generalize("1.2.3", 0, "1.2.3");
        assert_eq!(literal_len(&bare), 0, "{bare}");
    }

    #[test]
    fn version_tokens() {
        assert_eq!(find_version("keyutils-1.6.3", "1.6.3"), Some(9));
        assert_eq!(find_version("11.6.3", "1.6.3"), None);
        assert_eq!(find_version("1.6.35", "1.6.3"), None);
        assert_eq!(find_version("v3.6.0 (x)", "3.6.0"), Some(1));
    }

    #[test]
    fn integer_encodings_round_trip() {
        let webp = IntEncoding::learn(0x10204, &[1, 2, 4]);
        assert!(webp.contains(&"x:16,8,0".parse().unwrap()), "{webp:?}");
        assert_eq!(
            "x:16,8,0"
                .parse::<IntEncoding>()
                .unwrap()
                .decode(0x10400)
                .unwrap(),
            "1.4.0"
        );
        // PQlibVersion: 150013 for 15.13, 160000 for 16.0.
        let pg = IntEncoding::learn(150013, &[15, 13]);
        assert!(
            pg.iter()
                .any(|e| e.decode(160000).as_deref() == Some("16.0")),
            "{pg:?}"
        );
        // cmsGetEncodedCMMversion: 2140 for 2.14.
        let lcms = IntEncoding::learn(2140, &[2, 14]);
        assert!(
            lcms.iter()
                .any(|e| e.decode(2160).as_deref() == Some("2.16")),
            "{lcms:?}"
        );
        // BrotliDecoderVersion: (1 << 24) | (0 << 12) | 9.
        let br = IntEncoding::learn(0x100_0009, &[1, 0, 9]);
        assert!(
            br.iter()
                .any(|e| e.decode(0x100_1000).as_deref() == Some("1.1.0")),
            "{br:?}"
        );
        // lzma_version_number: 50040012 for 5.4.1 (stable = 2).
        let xz = IntEncoding::learn(50040012, &[5, 4, 1]);
        assert!(
            xz.iter()
                .any(|e| e.decode(50040052).as_deref() == Some("5.4.5")),
            "{xz:?}"
        );
        assert!(IntEncoding::learn(7, &[1, 2]).is_empty());
    }

    #[test]
    fn exact_encodings_read_no_value_with_an_extra_component() {
        let two = IntEncoding::learn(0x010000, &[1, 0]);
        let hex = two.iter().find(|e| e.to_string() == "x:16,8").unwrap();
        assert_eq!(hex.decode(0x000a00).as_deref(), Some("0.10"));
        assert_eq!(hex.decode(0x000909), None);
        // A loose encoding (xz's status digit) keeps reading past it.
        let xz = IntEncoding::learn(50040012, &[5, 4, 1]);
        assert!(xz.iter().all(|e| e.loose), "{xz:?}");
        let round: IntEncoding = xz[0].to_string().parse().unwrap();
        assert_eq!(round, xz[0]);
    }

    #[test]
    fn library_name_relations() {
        let p = |f: &str, u: &str| vec![(f.to_string(), u.to_string())];
        assert_eq!(libname_relation(&p("1.0.9", "1.0.9")).unwrap(), "same");
        assert_eq!(libname_relation(&p("2.0.14", "2.14")).unwrap(), "nozero");
        assert_eq!(apply_relation("nozero", "2.0.16").unwrap(), "2.16");
        // One component packs the version (a libtool `current` of
        // major*10000 + minor*100 + micro).
        let packed = libname_relation(&p("0.20513.0", "2.5.13")).unwrap();
        assert_eq!(apply_relation(&packed, "0.20603.0").unwrap(), "2.6.3");
        assert_eq!(libname_relation(&p("7.1.5", "1.2.4")), None);
    }

    #[test]
    fn stored_sequences() {
        let stores = [
            Store {
                disp: 8,
                value: (12 << 32) | 2,
                width: 8,
                arg: Some(0),
            },
            Store {
                disp: 16,
                value: 1,
                width: 4,
                arg: Some(0),
            },
            Store {
                disp: 0x188,
                value: 1,
                width: 4,
                arg: None,
            },
        ];
        assert_eq!(read_seq(&stores, 8, 3).as_deref(), Some("2.12.1"));
        let clues = Clues {
            functions: vec![kiln_fingerprint::FunctionConsts {
                name: "FT_New_Library".into(),
                stores: stores.to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = observe("2.12.1", &clues);
        assert!(
            t.iter()
                .any(|t| t.kind == TemplateKind::StoreSeq && t.pattern == "8:3"),
            "{t:?}"
        );
    }

    #[test]
    fn prefix_templates_read_other_builds() {
        let clues = Clues {
            strings: vec!["OpenSSL 3.0.17 1 Jul 2025".into(), "v3.0.17 build".into()],
            ..Default::default()
        };
        let t = observe("3.0.17", &clues);
        let prefix = t
            .iter()
            .find(|t| !t.pattern.ends_with('$') && t.pattern.starts_with("^OpenSSL"))
            .expect("a prefix template");
        let re = Regex::new(&prefix.pattern).unwrap();
        let cap = re.captures("OpenSSL 1.1.1k  FIPS 25 Mar 2021").unwrap();
        assert_eq!(&cap[1], "1.1.1k");
        // Too little context before the version: no prefix template.
        assert!(!t
            .iter()
            .any(|t| t.pattern.starts_with("^v") && !t.pattern.ends_with('$')));
    }

    #[test]
    fn coincidental_function_templates_are_not_believed() {
        assert!(credible(
            TemplateKind::FnInt,
            "WebPGetDecoderVersion",
            "x:16,8,0",
            1
        ));
        assert!(credible(TemplateKind::StoreArgs, "zmq_version", "0:3", 1));
        assert!(credible(
            TemplateKind::FnInt,
            "lzma_version_number",
            "d:7,4,1",
            1
        ));
        assert!(!credible(
            TemplateKind::FnInt,
            "gss_import_sec_context",
            "x:24,20,0",
            1
        ));
        assert!(!credible(
            TemplateKind::StoreInt,
            "matchpathcon_index",
            "148:d:1,0",
            1
        ));
        assert!(credible(
            TemplateKind::StoreInt,
            "matchpathcon_index",
            "148:d:1,0",
            2
        ));
        assert!(credible(
            TemplateKind::FnStr,
            "jinit_c_master_control",
            &format!(r"^libjpeg\-turbo\s+version\s+{VERSION_RE}"),
            1
        ));
        assert!(!credible(
            TemplateKind::FnStr,
            "get_name",
            &format!("^{VERSION_RE}$"),
            1
        ));
        assert!(credible(TemplateKind::StoreSeq, "FT_New_Library", "8:3", 1));
    }

    #[test]
    fn build_paths_are_not_learned() {
        assert!(build_path(
            "/build/openfoam-yfGgh/openfoam-2212/src/OpenFOAM/x.C"
        ));
        assert!(build_path(
            "/usr/src/rustc-1.85.0/library/std/src/io/mod.rs"
        ));
        assert!(build_path(
            "../src/lib/foo-1.2.3/bar.c:123: assertion failed"
        ));
        assert!(!build_path("OpenSSL 3.0.17 1 Jul 2025"));
        assert!(!build_path("libpng version 1.6.39"));
        assert!(!build_path("https://example.org/foo-1.2/"));
        let clues = Clues {
            strings: vec![
                "/build/foo-AbC12/foo-1.2.3/src/a.c".into(),
                "foo 1.2.3".into(),
            ],
            ..Default::default()
        };
        let t = observe("1.2.3", &clues);
        assert_eq!(t.len(), 1, "{t:?}");
    }

    #[test]
    fn stores_through_pointer_arguments() {
        // zmq_version(&major, &minor, &patch) of libzmq 4.3.4.
        let store = |arg, value| Store {
            disp: 0,
            value,
            width: 4,
            arg: Some(arg),
        };
        let clues = Clues {
            functions: vec![kiln_fingerprint::FunctionConsts {
                name: "zmq_version".into(),
                stores: vec![store(0, 4), store(1, 3), store(2, 4)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = observe("4.3.4", &clues);
        assert!(
            t.iter()
                .any(|t| t.kind == TemplateKind::StoreArgs && t.pattern == "0:3"),
            "{t:?}"
        );
        // The same function of 4.3.5 reads as 4.3.5.
        let next = [store(0, 4), store(1, 3), store(2, 5)];
        assert_eq!(read_args(&next, 0, 3).as_deref(), Some("4.3.5"));
        // An argument written twice with different values reads nothing.
        let twice = [store(0, 4), store(0, 5), store(1, 3)];
        assert_eq!(read_args(&twice, 0, 2), None);
    }
}
