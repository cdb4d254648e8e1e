//! RubyGems' version order (`Gem::Version#<=>`): segments split at `.` and
//! digit/letter changes; a letter segment marks a pre-release, which sorts
//! before the release (`1.0.a` < `1.0`); trailing zeros do not count.

use std::cmp::Ordering;

use super::{tokens, Token};

fn segments(v: &str) -> Vec<Token> {
    let mut out = tokens(v, &['.', '-']);
    while matches!(out.last(), Some(Token::Num(0))) {
        out.pop();
    }
    out
}

/// Compare two gem versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (segments(a), segments(b));
    let zero = Token::Num(0);
    for i in 0..x.len().max(y.len()) {
        let (p, q) = (x.get(i).unwrap_or(&zero), y.get(i).unwrap_or(&zero));
        let o = match (p, q) {
            (Token::Num(m), Token::Num(n)) => m.cmp(n),
            (Token::Num(_), Token::Word(_)) => Ordering::Greater,
            (Token::Word(_), Token::Num(_)) => Ordering::Less,
            (Token::Word(s), Token::Word(t)) => s.cmp(t),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gem_order() {
        let order = [
            "1.0.a", "1.0.b1", "1.0", "1.0.1", "1.1.rc1", "1.1", "2.2.4", "2.2.10",
        ];
        for w in order.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare("1.0", "1"), Ordering::Equal);
    }
}
