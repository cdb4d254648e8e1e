//! RubyGems' version order (`Gem::Version#<=>`): segments split at `.` and
//! digit/letter changes; a letter segment marks a pre-release, which sorts
//! before the release (`1.0.a` < `1.0`); trailing zeros do not count.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq)]
enum Seg {
    Num(u128),
    Str(String),
}

fn segments(v: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in v.trim().split(['.', '-']) {
        let mut rest = part;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n = if digits > 0 {
                digits
            } else {
                rest.bytes().take_while(|c| !c.is_ascii_digit()).count()
            };
            let (tok, tail) = rest.split_at(n);
            out.push(match tok.parse() {
                Ok(x) => Seg::Num(x),
                Err(_) => Seg::Str(tok.to_string()),
            });
            rest = tail;
        }
    }
    while matches!(out.last(), Some(Seg::Num(0))) {
        out.pop();
    }
    out
}

/// Compare two gem versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (segments(a), segments(b));
    let zero = Seg::Num(0);
    for i in 0..x.len().max(y.len()) {
        let (p, q) = (x.get(i).unwrap_or(&zero), y.get(i).unwrap_or(&zero));
        let o = match (p, q) {
            (Seg::Num(m), Seg::Num(n)) => m.cmp(n),
            (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
            (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
            (Seg::Str(s), Seg::Str(t)) => s.cmp(t),
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
