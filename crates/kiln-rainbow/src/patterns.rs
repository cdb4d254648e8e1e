//! Many anchored regexes matched at once. A signature DB of all of
//! Debian's libraries holds thousands of learned string templates; one
//! `RegexSet` over all of them outgrows its lazy DFA and falls back to a
//! slow NFA. So:
//! - identical patterns (projects sharing `^(VER)$`) compile and match
//!   once, and answer for every template that has them;
//! - templates mostly begin with literal text (`^OpenSSL\s+…`), so they
//!   are indexed by that literal: a string is only tried against the
//!   templates whose literal it starts with;
//! - the few that begin with no literal share small sets (split further
//!   if one outgrows its size limit), and those that must begin with a
//!   digit (`^(\d+…`, `^\d+…`) are only tried on strings that do.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Compile `pattern` with ASCII classes where it allows them. Every
/// haystack is printable ASCII (`kiln_fingerprint::clues` keeps only
/// bytes 0x20–0x7e), where ASCII `\d`, `\s`, `\b` and case folding match
/// exactly what the Unicode ones do, and the ASCII automaton compiles
/// about five times faster: with a large DB, first-use compiles were a
/// tenth of a scan. A pattern that needs Unicode mode (one that could
/// match invalid UTF-8 without it) keeps it.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .or_else(|_| Regex::new(pattern))
}

/// A regex checked when made but compiled on first use: of a big DB's
/// thousands of templates a scan tries only the few whose literal a string
/// starts with, and compiling them all would cost more than the scan.
#[derive(Debug)]
pub(crate) struct LazyRegex {
    pattern: String,
    compiled: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    /// Check `pattern`'s syntax (cheap) without compiling it; an invalid
    /// pattern is an error naming it.
    pub(crate) fn new(pattern: &str) -> Result<LazyRegex, String> {
        regex_syntax::ast::parse::Parser::new()
            .parse(pattern)
            .map_err(|e| format!("template pattern {pattern:?}: {e}"))?;
        Ok(LazyRegex {
            pattern: pattern.to_string(),
            compiled: OnceLock::new(),
        })
    }

    /// The compiled regex; `None` for a pattern that parses but does not
    /// compile (past the size limit), which then matches nothing.
    pub(crate) fn get(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| compile(&self.pattern).ok())
            .as_ref()
    }
}

/// Largest automaton one set may compile to.
const SET_SIZE_LIMIT: usize = 256 << 20;
/// Cache of a set's lazy DFA: big enough that matching thousands of
/// strings does not thrash it into the (much slower) NFA.
const DFA_CACHE: usize = 64 << 20;
/// Characters of a literal prefix used as the index key.
const KEY: usize = 4;

/// Patterns indexed for matching, with match indexes into the original
/// list.
#[derive(Debug, Default)]
pub(crate) struct PatternSets {
    /// Each distinct pattern once.
    regexes: Vec<LazyRegex>,
    /// Distinct pattern -> the indexes (into the original list) it stands for.
    owners: Vec<Vec<usize>>,
    /// Original index -> distinct pattern.
    distinct_of: Vec<usize>,
    /// First `KEY` characters of a literal prefix -> (distinct pattern, prefix).
    by_key: HashMap<String, Vec<(usize, String)>>,
    /// Patterns whose literal prefix is shorter than `KEY` (but not empty).
    short: Vec<(usize, String)>,
    /// Patterns with no literal prefix: (distinct patterns, set, whether
    /// they all must begin with an ASCII digit).
    sets: Vec<(Vec<usize>, RegexSet, bool)>,
}

impl PatternSets {
    /// Compile `patterns`. An invalid pattern is an error naming it.
    pub(crate) fn build(patterns: &[&str]) -> Result<Self, String> {
        Self::build_with_limit(patterns, SET_SIZE_LIMIT)
    }

    fn build_with_limit(patterns: &[&str], limit: usize) -> Result<Self, String> {
        let mut out = PatternSets::default();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let (mut digit_led, mut open) = (Vec::new(), Vec::new());
        for (i, p) in patterns.iter().enumerate() {
            if let Some(&d) = seen.get(p) {
                out.owners[d].push(i);
                out.distinct_of.push(d);
                continue;
            }
            let d = out.regexes.len();
            seen.insert(p, d);
            out.regexes.push(LazyRegex::new(p)?);
            out.owners.push(vec![i]);
            out.distinct_of.push(d);
            let lit = literal_prefix(p);
            match lit.chars().count() {
                0 if digit_first(p) => digit_led.push(d),
                0 => open.push(d),
                n if n < KEY => out.short.push((d, lit)),
                _ => {
                    let key: String = lit.chars().take(KEY).collect();
                    out.by_key.entry(key).or_default().push((d, lit));
                }
            }
        }
        for (ids, digit) in [(open, false), (digit_led, true)] {
            let texts: Vec<&str> = ids.iter().map(|d| patterns[out.owners[*d][0]]).collect();
            out.add_sets(&ids, &texts, limit, digit)?;
        }
        Ok(out)
    }

    fn add_sets(
        &mut self,
        ids: &[usize],
        patterns: &[&str],
        limit: usize,
        digit: bool,
    ) -> Result<(), String> {
        if patterns.is_empty() {
            return Ok(());
        }
        let build = |unicode: bool| {
            RegexSetBuilder::new(patterns)
                .unicode(unicode)
                .size_limit(limit)
                .dfa_size_limit(DFA_CACHE)
                .build()
        };
        // ASCII classes as in `compile`, unless a pattern needs Unicode.
        let built = match build(false) {
            Err(regex::Error::Syntax(_)) => build(true),
            other => other,
        };
        match built {
            Ok(set) => {
                self.sets.push((ids.to_vec(), set, digit));
                Ok(())
            }
            Err(regex::Error::CompiledTooBig(_)) if patterns.len() > 1 => {
                let half = patterns.len() / 2;
                self.add_sets(&ids[..half], &patterns[..half], limit, digit)?;
                self.add_sets(&ids[half..], &patterns[half..], limit, digit)
            }
            Err(e) => Err(format!("template patterns do not compile: {e}")),
        }
    }

    /// The distinct patterns that match `s`, each with the original
    /// indexes it stands for (ascending by pattern).
    pub(crate) fn matching(&self, s: &str) -> Vec<(&Regex, &[usize])> {
        let key: String = s.chars().take(KEY).collect();
        let mut hits: Vec<usize> = self
            .by_key
            .get(&key)
            .into_iter()
            .flatten()
            .chain(&self.short)
            .filter(|(d, lit)| {
                s.starts_with(lit.as_str()) && self.regexes[*d].get().is_some_and(|r| r.is_match(s))
            })
            .map(|(d, _)| *d)
            .collect();
        let digit = begins_numeric(s);
        for (ids, set, needs_digit) in &self.sets {
            if *needs_digit && !digit {
                continue;
            }
            hits.extend(set.matches(s).into_iter().map(|j| ids[j]));
        }
        hits.sort_unstable();
        hits.into_iter()
            .filter_map(|d| Some((self.regexes[d].get()?, self.owners[d].as_slice())))
            .collect()
    }

    /// Indexes of the patterns that match `s`, ascending.
    pub(crate) fn matches(&self, s: &str) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .matching(s)
            .into_iter()
            .flat_map(|(_, owners)| owners.iter().copied())
            .collect();
        out.sort_unstable();
        out
    }

    /// The compiled pattern `i` (for its captures).
    pub(crate) fn regex(&self, i: usize) -> Option<&Regex> {
        self.regexes[self.distinct_of[i]].get()
    }

    /// How many no-literal sets the patterns needed.
    #[cfg(test)]
    fn set_count(&self) -> usize {
        self.sets.len()
    }
}

/// Whether an anchored pattern can only match text that begins with a
/// decimal digit: `^\d`, `^(\d`, `^(?:\d`, `^[0-9]`. (`\d` is Unicode's
/// decimal digits; the check on the text, [`begins_numeric`], admits every
/// numeric character, a superset, so no match is ever skipped.)
fn digit_first(pattern: &str) -> bool {
    let Some(mut rest) = pattern.strip_prefix('^') else {
        return false;
    };
    while let Some(r) = rest.strip_prefix("(?:").or_else(|| rest.strip_prefix('(')) {
        rest = r;
    }
    (rest.starts_with(r"\d") || rest.starts_with("[0-9]"))
        && !rest.starts_with(r"\d*")
        && !rest.starts_with(r"\d?")
        && !rest.starts_with(r"\d{0")
        && !rest.starts_with("[0-9]*")
        && !rest.starts_with("[0-9]?")
}

/// Whether `s` begins with a numeric character.
fn begins_numeric(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_numeric)
}

/// The literal text an anchored pattern (as `learn::generalize` writes
/// them: `^`, escaped characters, `\d+`, `\s+`, classes, the capture)
/// must begin with; empty for an unanchored pattern.
fn literal_prefix(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('^') else {
        return String::new();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if !e.is_ascii_alphanumeric() => out.push(e),
                _ => break,
            },
            '(' | '[' | '.' | '*' | '+' | '?' | '{' | '|' | '$' | '^' | ')' => {
                // A quantifier makes the last literal character optional.
                if matches!(c, '*' | '?' | '{') {
                    out.pop();
                }
                break;
            }
            c => {
                if matches!(chars.peek(), Some('*' | '?' | '{')) {
                    break;
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_compiles_match_as_unicode_ones_on_printable_text() {
        let texts = [
            "OpenSSL 3.0.17  1 Jul 2025",
            "zlib\t1.2.13",
            "libFOO version 2.1-rc1",
            "x",
        ];
        for p in [
            r"^OpenSSL\s+(\d+(?:\.\d+)+[a-z]?)\s+\d+\s+\w+",
            r"^zlib\s(\d+\.\d+\.\d+)$",
            r"^libFOO\b.*?(\d+\.\d+)",
            r"^(.)$",
        ] {
            let (ascii, unicode) = (compile(p).unwrap(), Regex::new(p).unwrap());
            for t in texts {
                let cap = |r: &Regex| r.captures(t).map(|c| c[1].to_string());
                assert_eq!(cap(&ascii), cap(&unicode), "{p} on {t}");
            }
        }
    }

    #[test]
    fn literal_prefixes_of_learned_templates() {
        assert_eq!(literal_prefix(r"^OpenSSL\s+(\d+)$"), "OpenSSL");
        assert_eq!(literal_prefix(r"^lib\-png\.so\.(\d+)$"), "lib-png.so.");
        assert_eq!(literal_prefix(r"^(\d+(?:\.\d+)+)$"), "");
        assert_eq!(literal_prefix(r"^[A-Z][a-z]{2}\s+\d+"), "");
        assert_eq!(literal_prefix(r"^ab?c"), "a");
        assert_eq!(literal_prefix("unanchored"), "");
    }

    #[test]
    fn indexed_and_open_patterns_match_like_one_set() {
        let pats: Vec<String> = (0..60)
            .map(|i| match i % 3 {
                0 => format!(r"^lib{i}\s+(\d+\.\d+)\w{{0,40}}$"),
                1 => format!(r"^(\d+\.\d+)\s+build{i}$"),
                _ => format!(r"^v{}(\d+\.\d+)$", i % 10),
            })
            .collect();
        let refs: Vec<&str> = pats.iter().map(String::as_str).collect();
        let all = RegexSetBuilder::new(&refs)
            .unicode(false)
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .unwrap();
        let fits_one = (10..30)
            .map(|b| 1usize << b)
            .find(|l| {
                RegexSetBuilder::new([refs[1]])
                    .unicode(false)
                    .size_limit(*l)
                    .build()
                    .is_ok()
            })
            .unwrap();
        for limit in [SET_SIZE_LIMIT, 2 * fits_one] {
            let p = PatternSets::build_with_limit(&refs, limit).unwrap();
            for s in [
                "lib3 1.2",
                "lib33 4.5x",
                "1.2 build7",
                "v21.0",
                "v81.0",
                "nothing",
            ] {
                let want: Vec<usize> = all.matches(s).into_iter().collect();
                assert_eq!(p.matches(s), want, "{s} at limit {limit}");
            }
        }
        let split = PatternSets::build_with_limit(&refs, 2 * fits_one).unwrap();
        assert!(split.set_count() > 1);
    }

    #[test]
    fn shared_and_digit_led_patterns_match_as_their_own() {
        let pats = [
            r"^(\d+\.\d+)$",
            r"^(\d+\.\d+)$",
            r"^x(\d+)$",
            r"^(\d+\.\d+)$",
            r"^\d*v(\d)$",
        ];
        let p = PatternSets::build(&pats).unwrap();
        assert_eq!(p.matches("1.2"), vec![0, 1, 3]);
        let alone: Vec<usize> = (0..pats.len())
            .filter(|i| compile(pats[*i]).unwrap().is_match("٣.٤"))
            .collect();
        assert_eq!(p.matches("٣.٤"), alone, "the digit lead skips no match");
        assert_eq!(p.matches("v7"), vec![4], "a \\d* lead is not digit-led");
        assert_eq!(p.matching("1.2").len(), 1, "one distinct pattern");
        assert!(digit_first(r"^(?:\d+)"));
        assert!(!digit_first(r"^(\d?x)"));
    }

    #[test]
    fn an_invalid_pattern_is_named() {
        let err = PatternSets::build(&["^ok$", "(unclosed"]).unwrap_err();
        assert!(err.contains("(unclosed"), "{err}");
    }
}
