//! Bounds for `vers:` version ranges (package-url's VERS; written by
//! [`kiln_catalog::Ecosystem::vers_between`]): the known versions an
//! unknown build lies between.
//!
//! The bounds come from where a file's functions appear: a function that
//! only the known versions at positions `lo..=hi` (in version order) have
//! means the file is newer than the version before `lo` and older than the
//! one after `hi` (functions come and go with versions; they do not
//! return).

/// Positions (in version order, `n` known versions) of the newest version
/// the file must be newer than and the oldest it must be older than,
/// from the first and last position of each function's versions.
pub(crate) fn span_bounds(
    spans: impl IntoIterator<Item = (usize, usize)>,
    n: usize,
) -> (Option<usize>, Option<usize>) {
    let (mut lower, mut upper): (Option<usize>, Option<usize>) = (None, None);
    for (lo, hi) in spans {
        if lo > 0 {
            lower = Some(lower.map_or(lo - 1, |l| l.max(lo - 1)));
        }
        if hi + 1 < n {
            upper = Some(upper.map_or(hi + 1, |u| u.min(hi + 1)));
        }
    }
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_from_spans() {
        // 4 versions; a function only in 1..=2 and one only in 0..=1.
        assert_eq!(span_bounds([(1, 2), (0, 1)], 4), (Some(0), Some(2)));
        assert_eq!(span_bounds([(0, 3)], 4), (None, None));
        assert_eq!(span_bounds([(3, 3)], 4), (Some(2), None));
    }
}
