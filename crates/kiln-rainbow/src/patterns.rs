//! Many regexes matched at once. One `RegexSet` is fastest, but its
//! automaton has a size limit that a large signature DB can exceed; then
//! the patterns are split into as many sets as it takes, rather than a
//! failed build quietly matching nothing.

use regex::{Regex, RegexSet, RegexSetBuilder};

/// Largest automaton one set may compile to.
const SET_SIZE_LIMIT: usize = 256 << 20;

/// Patterns compiled into one or more sets, with match indexes into the
/// original list.
#[derive(Debug, Default)]
pub(crate) struct PatternSets {
    /// (index of the set's first pattern, the set).
    sets: Vec<(usize, RegexSet)>,
}

impl PatternSets {
    /// Compile `patterns`. An invalid pattern is an error naming it.
    pub(crate) fn build(patterns: &[&str]) -> Result<Self, String> {
        Self::build_with_limit(patterns, SET_SIZE_LIMIT)
    }

    fn build_with_limit(patterns: &[&str], limit: usize) -> Result<Self, String> {
        let mut out = PatternSets::default();
        out.add(patterns, 0, limit)?;
        Ok(out)
    }

    fn add(&mut self, patterns: &[&str], offset: usize, limit: usize) -> Result<(), String> {
        if patterns.is_empty() {
            return Ok(());
        }
        match RegexSetBuilder::new(patterns).size_limit(limit).build() {
            Ok(set) => {
                self.sets.push((offset, set));
                Ok(())
            }
            Err(regex::Error::CompiledTooBig(_)) if patterns.len() > 1 => {
                let half = patterns.len() / 2;
                self.add(&patterns[..half], offset, limit)?;
                self.add(&patterns[half..], offset + half, limit)
            }
            Err(e) => Err(describe(patterns, e)),
        }
    }

    /// Indexes of the patterns that match `s`, in order.
    pub(crate) fn matches<'a>(&'a self, s: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.sets
            .iter()
            .flat_map(move |(offset, set)| set.matches(s).into_iter().map(move |i| offset + i))
    }

    /// How many sets the patterns needed.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sets.len()
    }
}

/// Name the pattern at fault when one alone is the problem.
fn describe(patterns: &[&str], e: regex::Error) -> String {
    match patterns.iter().find(|p| Regex::new(p).is_err()) {
        Some(p) => format!("template pattern {p:?} does not compile: {e}"),
        None => format!("template patterns do not compile: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_carry_original_indexes_across_split_sets() {
        let pats: Vec<String> = (0..40)
            .map(|i| format!(r"^lib{i}\s+(\d+\.\d+)\w{{0,40}}$"))
            .collect();
        let refs: Vec<&str> = pats.iter().map(String::as_str).collect();
        let one = PatternSets::build(&refs).unwrap();
        assert_eq!(one.len(), 1);
        // A limit two patterns fit in forces splits; the answers do not
        // change.
        let fits_one = (10..30)
            .map(|b| 1usize << b)
            .find(|l| {
                RegexSetBuilder::new([refs[0]])
                    .size_limit(*l)
                    .build()
                    .is_ok()
            })
            .unwrap();
        let split = PatternSets::build_with_limit(&refs, 2 * fits_one).unwrap();
        assert!(split.len() > 1, "{}", split.len());
        for s in ["lib7 1.2", "lib33 4.5x", "nothing"] {
            let a: Vec<usize> = one.matches(s).collect();
            let b: Vec<usize> = split.matches(s).collect();
            assert_eq!(a, b, "{s}");
        }
        assert_eq!(one.matches("lib33 4.5x").collect::<Vec<_>>(), vec![33]);
    }

    #[test]
    fn an_invalid_pattern_is_named() {
        let err = PatternSets::build(&["^ok$", "(unclosed"]).unwrap_err();
        assert!(err.contains("(unclosed"), "{err}");
    }
}
