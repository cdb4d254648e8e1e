//! Maven's version order (`ComparableVersion`): items split at `.`, `-`
//! and digit/letter changes; numbers by value; the well-known qualifiers
//! `alpha < beta < milestone < rc < snapshot < "" (release) < sp`, other
//! qualifiers after them in text order; trailing zero and empty items do
//! not count (`1.0` = `1`).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Num(u128),
    Qual(String),
}

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

fn items(v: &str) -> Vec<Item> {
    let lower = v.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    for seg in lower.split(['.', '-', '_']) {
        let mut rest = seg;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let n = if digits > 0 {
                digits
            } else {
                rest.bytes().take_while(|c| !c.is_ascii_digit()).count()
            };
            let (tok, tail) = rest.split_at(n);
            out.push(match tok.parse::<u128>() {
                Ok(x) => Item::Num(x),
                Err(_) => Item::Qual(tok.to_string()),
            });
            rest = tail;
        }
    }
    while matches!(out.last(), Some(Item::Num(0)))
        || matches!(out.last(), Some(Item::Qual(q)) if rank(q) == 5)
    {
        out.pop();
    }
    out
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    let null = Item::Qual(String::new());
    let zero = Item::Num(0);
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (Some(x @ Item::Num(_)), None) => (x, &zero),
        (None, Some(y @ Item::Num(_))) => (&zero, y),
        (Some(x), None) => (x, &null),
        (None, Some(y)) => (&null, y),
        (Some(x), Some(y)) => (x, y),
    };
    match (a, b) {
        (Item::Num(x), Item::Num(y)) => x.cmp(y),
        (Item::Num(_), Item::Qual(_)) => Ordering::Greater,
        (Item::Qual(_), Item::Num(_)) => Ordering::Less,
        (Item::Qual(x), Item::Qual(y)) => rank(x).cmp(&rank(y)).then_with(|| {
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
