//! Maven's version order (`ComparableVersion`): items split at `.`, `-`
//! and digit/letter changes; numbers by value; the well-known qualifiers
//! `alpha < beta < milestone < rc < snapshot < "" (release) < sp`, other
//! qualifiers after them in text order; trailing zero and empty items do
//! not count (`1.0` = `1`).

use std::cmp::Ordering;

use super::{tokens, Token};

/// Rank of a qualifier; unknown ones share the top rank and compare by text.
fn rank(q: &str) -> u8 {
    match q {
        "alpha" | "a" => 0,
        "beta" | "b" => 1,
        "milestone" | "m" => 2,
        "rc" | "cr" => 3,
        "snapshot" => 4,
        "" | "ga" | "final" | "release" => 5,
        "sp" => 6,
        _ => 7,
    }
}

fn items(v: &str) -> Vec<Token> {
    let mut out = tokens(&v.to_ascii_lowercase(), &['.', '-', '_']);
    while matches!(out.last(), Some(Token::Num(0)))
        || matches!(out.last(), Some(Token::Word(q)) if rank(q) == 5)
    {
        out.pop();
    }
    out
}

fn cmp_item(a: Option<&Token>, b: Option<&Token>) -> Ordering {
    let null = Token::Word(String::new());
    let zero = Token::Num(0);
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (Some(x @ Token::Num(_)), None) => (x, &zero),
        (None, Some(y @ Token::Num(_))) => (&zero, y),
        (Some(x), None) => (x, &null),
        (None, Some(y)) => (&null, y),
        (Some(x), Some(y)) => (x, y),
    };
    match (a, b) {
        (Token::Num(x), Token::Num(y)) => x.cmp(y),
        (Token::Num(_), Token::Word(_)) => Ordering::Greater,
        (Token::Word(_), Token::Num(_)) => Ordering::Less,
        (Token::Word(x), Token::Word(y)) => rank(x).cmp(&rank(y)).then_with(|| {
            if rank(x) == 7 {
                x.cmp(y)
            } else {
                Ordering::Equal
            }
        }),
    }
}

/// Compare two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (items(a), items(b));
    for i in 0..x.len().max(y.len()) {
        match cmp_item(x.get(i), y.get(i)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_order() {
        let order = [
            "1-alpha",
            "1-beta",
            "1-milestone",
            "1-rc",
            "1-snapshot",
            "1",
            "1-sp",
            "1-abc",
            "1.0.1",
            "1.1",
            "1.10",
            "2.0",
        ];
        for w in order.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare("1.0", "1"), Ordering::Equal);
        assert_eq!(compare("1.0.0-final", "1"), Ordering::Equal);
        assert_eq!(compare("3.12.0", "3.9"), Ordering::Greater);
        assert_eq!(compare("31.1-jre", "31.1-android"), Ordering::Greater);
        assert_eq!(compare("1.0-RC1", "1.0-rc2"), Ordering::Less);
    }
}
