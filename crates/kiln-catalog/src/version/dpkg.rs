//! Debian's version order, implemented exactly as `dpkg --compare-versions`
//! (the tests cross-check against dpkg itself).

use std::cmp::Ordering;

/// Compare two Debian versions `[epoch:]upstream[-revision]`.
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character order: `~` sorts before everything, even the end of
/// the string; letters sort before non-letters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, compared character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Numeric part, compared as numbers (leading zeros ignored).
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const PAIRS: &[(&str, &str)] = &[
        ("1.0", "1.0"),
        ("1.0", "1.0-0"),
        ("1.0~rc1", "1.0"),
        ("1.0", "1.0+b1"),
        ("1:2.38.1-5+deb12u1", "2.38.1-5+deb12u3"),
        ("2.38.1-5+deb12u1", "2.38.1-5+deb12u3"),
        ("3.0.17-1~deb12u2", "3.0.17-1"),
        ("3.0.17-1~deb12u2", "3.0.9-1"),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u15"),
        ("2025b-0+deb12u1", "2026f-0+deb12u1"),
        ("1.2.13.dfsg-1", "1.2.13-1"),
        ("5.2.15-2+b13", "5.2.15-2+b2"),
        ("0.5.12-2", "0.5.12-10"),
        ("1.0a", "1.0"),
        ("1.0a", "1.0+"),
        ("1.0-1", "1.0.1-1"),
        ("0:1.0", "1.0"),
        ("1.0~~", "1.0~"),
        ("20230311+deb12u1", "20250419~deb12u2"),
        ("a", "B"),
    ];

    #[test]
    fn known_orders() {
        assert_eq!(dpkg_cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(dpkg_cmp("1:0.1", "9.9"), Ordering::Greater);
        assert_eq!(dpkg_cmp("1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(
            dpkg_cmp("3.0.20-1~deb12u2", "3.0.17-1~deb12u2"),
            Ordering::Greater
        );
    }

    /// Every pair agrees with `dpkg --compare-versions` itself.
    #[test]
    fn agrees_with_dpkg() {
        if Command::new("dpkg").arg("--version").output().is_err() {
            eprintln!("skipping: dpkg is not installed");
            return;
        }
        for (a, b) in PAIRS {
            for (x, y) in [(a, b), (b, a)] {
                let ours = dpkg_cmp(x, y);
                let lt = Command::new("dpkg")
                    .args(["--compare-versions", x, "lt", y])
                    .status()
                    .unwrap()
                    .success();
                let eq = Command::new("dpkg")
                    .args(["--compare-versions", x, "eq", y])
                    .status()
                    .unwrap()
                    .success();
                let theirs = if lt {
                    Ordering::Less
                } else if eq {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                };
                assert_eq!(ours, theirs, "{x} vs {y}");
            }
        }
    }
}
