//! Generic upstream versions, for vendored components without an
//! ecosystem: dot/dash separated segments, numbers compared as numbers,
//! and a letter suffix after a number as a later release of it, so
//! OpenSSL's `1.1.1w` > `1.1.1v` > `1.1.1` and `3.0.2` < `3.0.10`.
//! Pre-release words (`alpha`, `beta`, `rc`, `pre`) sort before the release.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// alpha < beta < rc: pre-releases, below the bare release.
    Pre(u8, u64),
    Num(u64, String),
    Word(String),
}

fn parts(v: &str) -> Vec<Part> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let mut out = Vec::new();
    for seg in v.split(['.', '-', '_', '+']) {
        if seg.is_empty() {
            continue;
        }
        let digits: String = seg.chars().take_while(char::is_ascii_digit).collect();
        let rest = &seg[digits.len()..];
        let lower = rest.to_ascii_lowercase();
        let pre = [
            ("alpha", 0u8),
            ("a", 0),
            ("beta", 1),
            ("b", 1),
            ("rc", 2),
            ("pre", 2),
        ]
        .iter()
        .find(|(w, _)| {
            lower.starts_with(w) && lower[w.len()..].chars().all(|c| c.is_ascii_digit())
        });
        if digits.is_empty() {
            match pre {
                Some((w, rank)) => {
                    out.push(Part::Pre(*rank, lower[w.len()..].parse().unwrap_or(0)))
                }
                None => out.push(Part::Word(lower)),
            }
        } else {
            let n = digits.parse().unwrap_or(u64::MAX);
            // A lone letter after a number is a later release (OpenSSL's
            // 1.1.1a), not an alpha.
            let lone_letter = |w: &str| w.len() == 1 && lower.len() == 1;
            match pre {
                Some((w, rank)) if !rest.is_empty() && !lone_letter(w) => {
                    out.push(Part::Num(n, String::new()));
                    out.push(Part::Pre(*rank, lower[w.len()..].parse().unwrap_or(0)));
                }
                _ => out.push(Part::Num(n, lower)),
            }
        }
    }
    out
}

/// Compare two generic versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let ord = match (pa.get(i), pb.get(i)) {
            (Some(x), Some(y)) => x.cmp(y),
            // A missing part is a release: greater than a pre-release,
            // smaller than any further number.
            (None, Some(Part::Pre(..))) => Ordering::Greater,
            (Some(Part::Pre(..)), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn openssl_letters_and_numbers() {
        assert_eq!(compare("1.1.1w", "1.1.1v"), Greater);
        assert_eq!(compare("1.1.1", "1.1.1a"), Less);
        assert_eq!(compare("1.1.1w", "3.0.0"), Less);
        assert_eq!(compare("3.0.2", "3.0.10"), Less);
        assert_eq!(compare("3.4.0", "3.4.0"), Equal);
        assert_eq!(compare("1.6.43", "1.6.9"), Greater);
        assert_eq!(compare("2.0.0-rc1", "2.0.0"), Less);
        assert_eq!(compare("2.0.0rc1", "2.0.0"), Less);
        assert_eq!(compare("2.0.0beta", "2.0.0rc1"), Less);
        assert_eq!(compare("v1.2", "1.2.0"), Less);
        assert_eq!(compare("5.4.1", "5.4.1.1"), Less);
    }
}
