//! Dotted numeric versions with a pre-release tail, as NuGet and Composer
//! write them: up to four numbers (`1.2.3.4`, missing ones are 0), then a
//! pre-release after `-`. NuGet compares pre-release labels like semver,
//! case-insensitively; Composer ranks its stability words
//! (`dev < alpha < beta < RC < stable < patch`).

use std::cmp::Ordering;

fn split(v: &str) -> Option<([u64; 4], &str)> {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let v = v.split('+').next()?;
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    let mut nums = [0u64; 4];
    let mut parts = core.split('.');
    for n in nums.iter_mut() {
        match parts.next() {
            Some(p) => *n = p.parse().ok()?,
            None => break,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some((nums, pre))
}

/// Compare NuGet versions; `None` when one is not a NuGet version.
pub fn nuget(a: &str, b: &str) -> Option<Ordering> {
    let ((x, p), (y, q)) = (split(a)?, split(b)?);
    Some(x.cmp(&y).then_with(|| match (p.is_empty(), q.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => semver_labels(&p.to_ascii_lowercase(), &q.to_ascii_lowercase()),
    }))
}

fn semver_labels(p: &str, q: &str) -> Ordering {
    for (s, t) in p.split('.').zip(q.split('.')) {
        let o = match (s.parse::<u64>(), t.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => s.cmp(t),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    p.split('.').count().cmp(&q.split('.').count())
}

/// Composer's stability of a pre-release tail, and the number after it.
fn stability(pre: &str) -> (u8, u64) {
    let lower = pre.to_ascii_lowercase();
    let word: String = lower
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    let num = lower[word.len()..]
        .trim_start_matches(['.', '-'])
        .parse()
        .unwrap_or(0);
    let rank = match word.as_str() {
        "" => 4,
        "dev" => 0,
        "alpha" | "a" => 1,
        "beta" | "b" => 2,
        "rc" => 3,
        "patch" | "pl" | "p" => 5,
        _ => 0,
    };
    (rank, num)
}

/// Compare Composer versions; `None` for branch names (`dev-main`).
pub fn composer(a: &str, b: &str) -> Option<Ordering> {
    let ((x, p), (y, q)) = (split(a)?, split(b)?);
    Some(x.cmp(&y).then_with(|| stability(p).cmp(&stability(q))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuget_order() {
        assert_eq!(nuget("1.0.0-beta", "1.0.0"), Some(Ordering::Less));
        assert_eq!(nuget("1.0.0.1", "1.0.0"), Some(Ordering::Greater));
        assert_eq!(nuget("1.0", "1.0.0.0"), Some(Ordering::Equal));
        assert_eq!(nuget("1.0.0-Beta.2", "1.0.0-beta.10"), Some(Ordering::Less));
        assert_eq!(nuget("x", "1"), None);
    }

    #[test]
    fn composer_order() {
        let order = [
            "1.0.0-dev",
            "1.0.0-alpha2",
            "1.0.0-beta",
            "1.0.0-RC1",
            "1.0.0",
            "1.0.0-p1",
            "v1.0.1",
        ];
        for w in order.windows(2) {
            assert_eq!(
                composer(w[0], w[1]),
                Some(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(composer("dev-main", "1.0"), None);
    }
}
