//! The three places a Java archive names itself: `pom.properties`,
//! `pom.xml`, and `META-INF/MANIFEST.MF` (with the file name as the last
//! resort).

/// Maven coordinates, as far as the metadata gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates {
    /// `groupId`, when known.
    pub group: Option<String>,
    /// `artifactId`.
    pub artifact: String,
    /// `version`.
    pub version: String,
    /// Declared licenses.
    pub licenses: Vec<String>,
}

/// `pom.properties`: `groupId`, `artifactId`, `version` (Java properties,
/// `=` or `:` separated, `#` comments).
pub fn pom_properties(text: &str) -> Option<Coordinates> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let l = l.trim();
            let (k, v) = l.split_once(['=', ':'])?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    Some(Coordinates {
        group: get("groupId"),
        artifact: get("artifactId")?,
        version: get("version").filter(|v| !v.is_empty())?,
        licenses: Vec::new(),
    })
}

/// `pom.xml`: the project's own `groupId`/`artifactId`/`version`, the
/// group and version inherited from `<parent>` when absent. Property
/// references (`${…}`) are left out rather than guessed.
pub fn pom_xml(text: &str) -> Option<Coordinates> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let project = doc.root_element();
    let child = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !t.contains("${"))
    };
    let parent = project.children().find(|c| c.tag_name().name() == "parent");
    Some(Coordinates {
        group: child(project, "groupId").or_else(|| parent.and_then(|p| child(p, "groupId"))),
        artifact: child(project, "artifactId")?,
        version: child(project, "version").or_else(|| parent.and_then(|p| child(p, "version")))?,
        licenses: Vec::new(),
    })
}

/// Main attributes of `MANIFEST.MF`, continuation lines joined.
fn attributes(mf: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in mf.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(cont) = line.strip_prefix(' ') {
            if let Some(last) = out.last_mut() {
                last.1.push_str(cont);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// From the manifest (OSGi bundle, then implementation, then
/// specification headers), falling back to `NAME-VERSION.jar`.
pub fn from_manifest(mf: &str, location: &str) -> Option<Coordinates> {
    let attrs = attributes(mf);
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let file = location.rsplit(['/', ':']).next().unwrap_or(location);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let (file_name, file_version) = split_file_name(stem);
    let version = get("Implementation-Version")
        .or_else(|| get("Bundle-Version"))
        .or_else(|| get("Specification-Version"))
        .or(file_version)?;
    let artifact = file_name
        .filter(|n| !n.is_empty())
        .or_else(|| get("Implementation-Title"))?;
    let group = get("Implementation-Vendor-Id").or_else(|| {
        get("Bundle-SymbolicName")
            .map(|s| s.split(';').next().unwrap_or(&s).trim().to_string())
            .and_then(|s| s.strip_suffix(&format!(".{artifact}")).map(str::to_string))
    });
    let licenses = get("Bundle-License").into_iter().collect();
    Some(Coordinates {
        group,
        artifact,
        version,
        licenses,
    })
}

/// `commons-lang3-3.12.0` → (`commons-lang3`, `3.12.0`): the version
/// starts at the first `-` followed by a digit.
fn split_file_name(stem: &str) -> (Option<String>, Option<String>) {
    let bytes = stem.as_bytes();
    for (i, w) in bytes.windows(2).enumerate() {
        if w[0] == b'-' && w[1].is_ascii_digit() {
            return (Some(stem[..i].to_string()), Some(stem[i + 1..].to_string()));
        }
    }
    (Some(stem.to_string()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pom_properties_and_xml() {
        let c = pom_properties(
            "#Generated\nversion=3.12.0\ngroupId=org.apache.commons\nartifactId=commons-lang3\n",
        )
        .unwrap();
        assert_eq!(
            (c.group.as_deref(), c.artifact.as_str(), c.version.as_str()),
            (Some("org.apache.commons"), "commons-lang3", "3.12.0")
        );
        let x = "<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><parent><groupId>com.google.guava</groupId><version>31.1-jre</version></parent><artifactId>guava</artifactId></project>";
        let c = pom_xml(x).unwrap();
        assert_eq!(
            (c.group.as_deref(), c.version.as_str()),
            (Some("com.google.guava"), "31.1-jre")
        );
        assert!(pom_xml(
            "<project><artifactId>x</artifactId><version>${revision}</version></project>"
        )
        .is_none());
    }

    #[test]
    fn manifest_and_file_name() {
        let mf = "Manifest-Version: 1.0\r\nBundle-SymbolicName: org.apache.commons.commons-lang\r\n 3\r\nBundle-Version: 3.12.0\r\n\r\nName: x\r\n";
        let c = from_manifest(mf, "/usr/share/java/commons-lang3.jar").unwrap();
        assert_eq!(c.artifact, "commons-lang3");
        assert_eq!(c.version, "3.12.0");
        assert_eq!(c.group.as_deref(), Some("org.apache.commons"));
        let c = from_manifest("", "/app/lib/foo-bar-1.2.3.jar").unwrap();
        assert_eq!(
            (c.artifact.as_str(), c.version.as_str()),
            ("foo-bar", "1.2.3")
        );
        assert!(from_manifest("", "/app/lib/plain.jar").is_none());
    }
}
