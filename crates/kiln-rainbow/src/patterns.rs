//! Many anchored regexes matched at once. A signature DB of all of
//! Debian's libraries holds thousands of learned string templates; one
//! `RegexSet` over all of them outgrows its lazy DFA and falls back to a
//! slow NFA. Templates mostly begin with literal text (`^OpenSSL\s+…`), so
//! they are indexed by that literal: a string is only tried against the
//! templates whose literal it starts with, plus the few that begin with no
//! literal, which share one small set (split further if even that outgrows
//! its size limit).

use std::collections::HashMap;

use regex::{Regex, RegexSet, RegexSetBuilder};

/// Largest automaton one set may compile to.
const SET_SIZE_LIMIT: usize = 256 << 20;
/// Characters of a literal prefix used as the index key.
const KEY: usize = 4;

/// Patterns indexed for matching, with match indexes into the original
/// list.
#[derive(Debug, Default)]
pub(crate) struct PatternSets {
    regexes: Vec<Regex>,
    /// First `KEY` characters of a literal prefix -> (pattern, prefix).
    by_key: HashMap<String, Vec<(usize, String)>>,
    /// Patterns whose literal prefix is shorter than `KEY` (but not empty).
    short: Vec<(usize, String)>,
    /// Patterns with no literal prefix: (index of the set's first, set).
    sets: Vec<(Vec<usize>, RegexSet)>,
}

impl PatternSets {
    /// Compile `patterns`. An invalid pattern is an error naming it.
    pub(crate) fn build(patterns: &[&str]) -> Result<Self, String> {
        Self::build_with_limit(patterns, SET_SIZE_LIMIT)
    }

    fn build_with_limit(patterns: &[&str], limit: usize) -> Result<Self, String> {
        let mut out = PatternSets::default();
        let mut open = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let re = Regex::new(p).map_err(|e| format!("template pattern {p:?}: {e}"))?;
            out.regexes.push(re);
            let lit = literal_prefix(p);
            match lit.chars().count() {
                0 => open.push(i),
                n if n < KEY => out.short.push((i, lit)),
                _ => {
                    let key: String = lit.chars().take(KEY).collect();
                    out.by_key.entry(key).or_default().push((i, lit));
                }
            }
        }
        let open_patterns: Vec<&str> = open.iter().map(|i| patterns[*i]).collect();
        out.add_sets(&open, &open_patterns, limit)?;
        Ok(out)
    }

    fn add_sets(&mut self, ids: &[usize], patterns: &[&str], limit: usize) -> Result<(), String> {
        if patterns.is_empty() {
            return Ok(());
        }
        match RegexSetBuilder::new(patterns).size_limit(limit).build() {
            Ok(set) => {
                self.sets.push((ids.to_vec(), set));
                Ok(())
            }
            Err(regex::Error::CompiledTooBig(_)) if patterns.len() > 1 => {
                let half = patterns.len() / 2;
                self.add_sets(&ids[..half], &patterns[..half], limit)?;
                self.add_sets(&ids[half..], &patterns[half..], limit)
            }
            Err(e) => Err(format!("template patterns do not compile: {e}")),
        }
    }

    /// Indexes of the patterns that match `s`, ascending.
    pub(crate) fn matches(&self, s: &str) -> Vec<usize> {
        let key: String = s.chars().take(KEY).collect();
        let mut out: Vec<usize> = self
            .by_key
            .get(&key)
            .into_iter()
            .flatten()
            .chain(&self.short)
            .filter(|(i, lit)| s.starts_with(lit.as_str()) && self.regexes[*i].is_match(s))
            .map(|(i, _)| *i)
            .collect();
        for (ids, set) in &self.sets {
            out.extend(set.matches(s).into_iter().map(|j| ids[j]));
        }
        out.sort_unstable();
        out
    }

    /// The compiled pattern `i` (for its captures).
    pub(crate) fn regex(&self, i: usize) -> &Regex {
        &self.regexes[i]
    }

    /// How many no-literal sets the patterns needed.
    #[cfg(test)]
    fn set_count(&self) -> usize {
        self.sets.len()
    }
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
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .unwrap();
        let fits_one = (10..30)
            .map(|b| 1usize << b)
            .find(|l| {
                RegexSetBuilder::new([refs[1]])
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
    fn an_invalid_pattern_is_named() {
        let err = PatternSets::build(&["^ok$", "(unclosed"]).unwrap_err();
        assert!(err.contains("(unclosed"), "{err}");
    }
}
