//! CVSS v3.x base scores from vectors, and severity ratings.

use serde::Serialize;

/// Severity levels, ordered, as Grype and Trivy name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// No rating available.
    Unknown,
    /// Debian's "unimportant".
    Negligible,
    /// CVSS 0.1-3.9.
    Low,
    /// CVSS 4.0-6.9.
    Medium,
    /// CVSS 7.0-8.9.
    High,
    /// CVSS 9.0-10.0.
    Critical,
}

impl Severity {
    /// Parse a name (case-insensitive), as `--fail-on` takes it.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "unknown" => Severity::Unknown,
            "negligible" => Severity::Negligible,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    /// The rating of a CVSS base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Negligible,
        }
    }

    /// Debian security tracker urgency.
    pub fn from_urgency(u: &str) -> Severity {
        match u.trim_end_matches('*').trim() {
            "unimportant" => Severity::Negligible,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            _ => Severity::Unknown,
        }
    }

    /// Upper-case name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unknown => "Unknown",
            Severity::Negligible => "Negligible",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// CVSS v3.0/v3.1 base score of a vector such as
/// `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`.
pub fn v3_base_score(vector: &str) -> Option<f64> {
    let mut rest = vector.split('/');
    let head = rest.next()?;
    if !head.starts_with("CVSS:3") {
        return None;
    }
    let m = |k: &str| -> Option<&str> {
        vector.split('/').skip(1).find_map(|p| {
            p.split_once(':')
                .filter(|(key, _)| *key == k)
                .map(|(_, v)| v)
        })
    };
    let scope_changed = m("S")? == "C";
    let av = match m("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match m("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (m("PR")?, scope_changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match m("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k| -> Option<f64> {
        Some(match m(k)? {
            "H" => 0.56,
            "L" => 0.22,
            "N" => 0.0,
            _ => return None,
        })
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if scope_changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let raw = if scope_changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Some(roundup(raw))
}

/// CVSS v3.1 "Roundup": the smallest one-decimal number >= x, computed in
/// integers to avoid floating-point surprises.
fn roundup(x: f64) -> f64 {
    let i = (x * 100_000.0).round() as i64;
    if i % 10_000 == 0 {
        i as f64 / 100_000.0
    } else {
        ((i / 10_000) + 1) as f64 / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores as NVD publishes them for these vectors.
    #[test]
    fn known_vectors() {
        assert_eq!(
            v3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Some(9.8)
        );
        assert_eq!(
            v3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"),
            Some(10.0)
        );
        assert_eq!(
            v3_base_score("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"),
            Some(5.9)
        );
        assert_eq!(
            v3_base_score("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"),
            Some(7.8)
        );
        assert_eq!(
            v3_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"),
            Some(6.1)
        );
        assert_eq!(
            v3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"),
            Some(0.0)
        );
        assert_eq!(v3_base_score("CVSS:4.0/AV:N"), None);
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_urgency("low*"), Severity::Low);
        assert!(Severity::High > Severity::Medium);
    }
}
