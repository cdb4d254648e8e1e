//! Debian control-file syntax (deb822): paragraphs of `Field: value` with
//! indented continuation lines. Used by dpkg's status database and by
//! `.deb` control files.

/// One paragraph, fields in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// A field's value (field names compare case-insensitively). Multi-line
    /// values keep their continuation lines joined by `\n`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// A line that is neither a field, a continuation nor a blank line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected `Field: value` or an indented continuation")]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
}

/// Parse every paragraph in `text`.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, SyntaxError> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match cur.fields.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim_start());
                }
                None => return Err(SyntaxError { line: i + 1 }),
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(' ') => {
                cur.fields.push((k.to_string(), v.trim().to_string()));
            }
            _ => return Err(SyntaxError { line: i + 1 }),
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Split a `Source:` field: `util-linux (2.38.1-5+deb12u1)` gives the
/// name and the version; a bare name gives no version.
pub fn split_source(field: &str) -> (String, Option<String>) {
    match field.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_string(),
            Some(rest.trim_end_matches(')').trim().to_string()),
        ),
        None => (field.trim().to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let text = "Package: libuuid1\nStatus: install ok installed\nSource: util-linux (2.38.1-5+deb12u1)\nDescription: Universally Unique ID library\n The libuuid library generates and parses 128-bit UUIDs.\n .\n\nPackage: tzdata\nVersion: 2025b-0+deb12u1\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("libuuid1"));
        assert!(ps[0].get("Description").unwrap().contains("\nThe libuuid"));
        assert_eq!(
            split_source(ps[0].get("Source").unwrap()),
            ("util-linux".into(), Some("2.38.1-5+deb12u1".into()))
        );
        assert_eq!(split_source("bash"), ("bash".into(), None));
        assert_eq!(parse(" orphan continuation").unwrap_err().line, 1);
    }
}
