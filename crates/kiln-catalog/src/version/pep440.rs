//! PEP 440 versions and their order.

use std::cmp::Ordering;

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    // Alphanumeric segments sort before numeric ones.
    Alpha(String),
    Num(u64),
}

fn split_num(s: &str) -> (&str, Option<u64>) {
    let idx = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
    let (word, num) = s.split_at(idx);
    (word.trim_end_matches(['.', '-', '_']), num.parse().ok())
}

/// (epoch, release, pre, post, dev) in PEP 440 order.
type Key = (u64, Vec<u64>, (i8, u8, u64), (i8, u64), (i8, u64));

impl Version {
    /// Parse, accepting the spellings PEP 440 normalises (`1.0-alpha.1`,
    /// `1.0.post-2`, `v1.0`, upper case).
    pub fn parse(input: &str) -> Option<Version> {
        let s = input.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let (s, local) = match s.split_once('+') {
            Some((v, l)) => (v, Some(l)),
            None => (s, None),
        };
        let (epoch, s) = match s.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, s),
        };
        let rel_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let rel = s[..rel_end].trim_end_matches('.');
        if rel.is_empty() {
            return None;
        }
        let release: Vec<u64> = rel
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let mut rest = &s[rel_end..];
        let mut v = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        };
        while !rest.is_empty() {
            let trimmed = rest.trim_start_matches(['.', '-', '_']);
            let sep_dash = rest.starts_with('-');
            let word_end = trimmed
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(trimmed.len());
            let word = &trimmed[..word_end];
            let after = trimmed[word_end..].trim_start_matches(['.', '-', '_']);
            let num_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let n: u64 = after[..num_end].parse().unwrap_or(0);
            let consumed = rest.len() - after.len() + num_end;
            match word {
                "a" | "alpha" => v.pre = Some((0, n)),
                "b" | "beta" => v.pre = Some((1, n)),
                "c" | "rc" | "pre" | "preview" => v.pre = Some((2, n)),
                "post" | "rev" | "r" => v.post = Some(n),
                "dev" => v.dev = Some(n),
                "" if sep_dash && num_end > 0 => v.post = Some(n),
                _ => return None,
            }
            if consumed == 0 {
                return None;
            }
            rest = &rest[consumed..];
        }
        if let Some(l) = local {
            for part in l.split(['.', '-', '_']) {
                let (w, n) = split_num(part);
                v.local.push(match (w.is_empty(), n) {
                    (true, Some(n)) => LocalPart::Num(n),
                    _ => LocalPart::Alpha(part.to_string()),
                });
            }
        }
        Some(v)
    }

    /// The sort key of PEP 440's "Summary of permitted suffixes and
    /// relative ordering".
    fn key(&self) -> Key {
        let mut release = self.release.clone();
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0), // 1.0.dev0 < 1.0a0
            (None, _, _) => (1, 0, 0),
            (Some((r, n)), _, _) => (0, r, n),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (self.epoch, release, pre, post, dev)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.local.cmp(&other.local))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} does not parse"))
    }

    /// The ordering example from PEP 440 itself, in increasing order.
    #[test]
    fn pep440_example_order() {
        let order = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalised_spellings_and_equality() {
        assert_eq!(v("1.0"), v("1.0"));
        assert_eq!(v("1.0").cmp(&v("1.0.0")), Ordering::Equal);
        assert_eq!(v("1.0-ALPHA.1").cmp(&v("1.0a1")), Ordering::Equal);
        assert_eq!(v("1.0-1").cmp(&v("1.0.post1")), Ordering::Equal);
        assert!(v("2!1.0") > v("3.0"));
        assert!(v("11.3.0") > v("10.4.0"));
        assert!(v("42.0.8") < v("44.0.0"));
        assert!(Version::parse("not a version").is_none());
    }
}
