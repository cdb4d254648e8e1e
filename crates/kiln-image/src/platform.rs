//! Platforms (`os/arch[/variant]`) and how an image index entry is chosen.

use std::fmt;

use crate::error::ImageError;

/// An OCI platform, as in `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// GOARCH-style architecture, e.g. `amd64`.
    pub arch: String,
    /// Optional CPU variant, e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = |reason: &str| ImageError::BadReference {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: normalize_arch(arch).to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    arch: normalize_arch(arch).to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(bad("platform must be os/arch[/variant], e.g. linux/amd64")),
        }
    }

    /// The platform kiln itself runs on, in OCI (GOARCH) spelling.
    pub fn host() -> Self {
        Platform {
            os: "linux".into(),
            arch: normalize_arch(std::env::consts::ARCH).to_string(),
            variant: None,
        }
    }

    /// Does an index entry's platform satisfy this request? A request
    /// without a variant accepts any variant; `arm64` treats a missing
    /// variant as `v8`, as containerd does.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.arch != normalize_arch(arch) {
            return false;
        }
        match (&self.variant, variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.arch == "arm64" && want == "v8",
        }
    }
}

/// Map Rust/uname spellings onto GOARCH names used by OCI.
fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        "powerpc64le" => "ppc64le",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(!p.matches("linux", "amd64", None));
        let v = Platform::parse("linux/arm64/v8").unwrap();
        assert!(v.matches("linux", "arm64", None));
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert!(!arm.matches("linux", "arm", Some("v6")));
        assert_eq!(Platform::parse("linux/x86_64").unwrap().arch, "amd64");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
    }
}
