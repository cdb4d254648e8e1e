//! Alpine (apk) versions: `1.2.3[_suffix[N]]...[-rN]`, with apk-tools'
//! order: pre-release suffixes `_alpha < _beta < _pre < _rc` sort before
//! the release and `_cvs < _svn < _git < _hg < _p` after it; the `-rN`
//! package release breaks ties.

use std::cmp::Ordering;

fn split_release(v: &str) -> (&str, u64) {
    match v.rsplit_once("-r") {
        Some((base, r)) if r.chars().all(|c| c.is_ascii_digit()) => (base, r.parse().unwrap_or(0)),
        _ => (v, 0),
    }
}

fn suffix_rank(s: &str) -> Option<i8> {
    Some(match s {
        "alpha" => -4,
        "beta" => -3,
        "pre" => -2,
        "rc" => -1,
        "cvs" => 1,
        "svn" => 2,
        "git" => 3,
        "hg" => 4,
        "p" => 5,
        _ => return None,
    })
}

/// (numbers, trailing letter, suffixes)
fn parse(base: &str) -> (Vec<u64>, Option<char>, Vec<(i8, u64)>) {
    let mut parts = base.split('_');
    let head = parts.next().unwrap_or("");
    let mut nums = Vec::new();
    let mut letter = None;
    for seg in head.split('.') {
        let digits: String = seg.chars().take_while(char::is_ascii_digit).collect();
        nums.push(digits.parse().unwrap_or(0));
        letter = seg[digits.len()..].chars().next().or(letter);
    }
    let suffixes = parts
        .map(|p| {
            let word: String = p.chars().take_while(char::is_ascii_alphabetic).collect();
            let n = p[word.len()..].parse().unwrap_or(0);
            (suffix_rank(&word).unwrap_or(0), n)
        })
        .collect();
    (nums, letter, suffixes)
}

/// Compare two apk versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let ((ba, ra), (bb, rb)) = (split_release(a), split_release(b));
    let (na, la, sa) = parse(ba);
    let (nb, lb, sb) = parse(bb);
    na.cmp(&nb)
        .then_with(|| la.cmp(&lb))
        .then_with(|| {
            for i in 0..sa.len().max(sb.len()) {
                let x = sa.get(i).copied().unwrap_or((0, 0));
                let y = sb.get(i).copied().unwrap_or((0, 0));
                if x != y {
                    return x.cmp(&y);
                }
            }
            Ordering::Equal
        })
        .then_with(|| ra.cmp(&rb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn apk_order() {
        assert_eq!(compare("1.2.4-r2", "1.2.4-r10"), Less);
        assert_eq!(compare("1.2.4_rc1-r0", "1.2.4-r0"), Less);
        assert_eq!(compare("1.2.4_p1-r0", "1.2.4-r0"), Greater);
        assert_eq!(compare("1.36.1-r15", "1.36.1-r15"), Equal);
        assert_eq!(compare("3.1.4a-r0", "3.1.4-r0"), Greater);
        assert_eq!(compare("2.10-r0", "2.9-r0"), Greater);
    }
}
