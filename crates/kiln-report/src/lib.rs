//! Render what kiln found in the formats users and pipelines consume.
//!
//! `kiln-report` is the last stage of kiln's pipeline. It takes an
//! [`Sbom`] (the source description plus the [`kiln_catalog::Catalog`]) and
//! writes it as a human table, kiln's own JSON, CycloneDX 1.6 JSON or SPDX
//! 2.3 JSON; and a [`vuln::VulnReport`] (the SBOM with the findings
//! matched on it) as a table, JSON, SARIF 2.1.0 or CycloneDX with
//! vulnerabilities. Every package carries its package URL in every format.
//!
//! ```
//! use kiln_report::{Format, Sbom, SourceInfo};
//! let sbom = Sbom { source: SourceInfo::named("dir", "/"), catalog: Default::default() };
//! let mut out = Vec::new();
//! kiln_report::write(&sbom, Format::CycloneDxJson, &mut out).unwrap();
//! assert!(String::from_utf8(out).unwrap().contains("\"specVersion\": \"1.6\""));
//! ```
#![deny(missing_docs)]

mod cyclonedx;
mod spdx;
mod table;
pub mod vuln;

use std::io::Write;
use std::str::FromStr;

use kiln_catalog::Catalog;
use serde::Serialize;

/// Output formats, named as Syft and Grype name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// kiln's own JSON document.
    Json,
    /// CycloneDX 1.6 JSON.
    CycloneDxJson,
    /// SPDX 2.3 JSON.
    SpdxJson,
    /// SARIF 2.1.0 (vulnerability reports only).
    Sarif,
}

/// The formats an SBOM is written in.
pub const SBOM_FORMATS: &[Format] = &[
    Format::Table,
    Format::Json,
    Format::CycloneDxJson,
    Format::SpdxJson,
];

impl Format {
    /// The name users type after `-o`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::CycloneDxJson => "cyclonedx-json",
            Format::SpdxJson => "spdx-json",
            Format::Sarif => "sarif",
        }
    }

    /// Parse a format name, accepting only those in `allowed`; the error
    /// lists them.
    pub fn parse_among(s: &str, allowed: &[Format]) -> Result<Format, String> {
        match s.parse::<Format>() {
            Ok(f) if allowed.contains(&f) => Ok(f),
            _ => {
                let names: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
                Err(format!(
                    "unknown output format {s:?}; use {}",
                    names.join(", ")
                ))
            }
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "table" => Format::Table,
            "json" => Format::Json,
            "cyclonedx-json" | "cyclonedx" => Format::CycloneDxJson,
            "spdx-json" | "spdx" => Format::SpdxJson,
            "sarif" => Format::Sarif,
            other => {
                return Err(format!(
                    "unknown output format {other:?}; use table, json, cyclonedx-json, spdx-json or sarif"
                ))
            }
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One layer of the scanned image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRef {
    /// Position, 0 = bottom.
    pub index: usize,
    /// Blob digest.
    pub digest: String,
    /// Media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Stored size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What was scanned.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// Transport (`oci-archive`, `dir`, …).
    pub transport: String,
    /// The path given.
    pub path: String,
    /// Display name: ref name, tag or file name.
    pub name: String,
    /// Manifest digest, for images that have one.
    #[serde(rename = "manifestDigest", skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Config digest (image ID).
    #[serde(rename = "imageId", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// `os/arch` from the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Layers, bottom first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRef>,
}

impl SourceInfo {
    /// A source described only by transport and path.
    pub fn named(transport: &str, path: &str) -> Self {
        SourceInfo {
            transport: transport.into(),
            path: path.into(),
            name: path.into(),
            manifest_digest: None,
            image_id: None,
            platform: None,
            layers: Vec::new(),
        }
    }

    /// Layer digest for a layer index.
    pub fn layer_digest(&self, index: Option<usize>) -> Option<&str> {
        index
            .and_then(|i| self.layers.get(i))
            .map(|l| l.digest.as_str())
    }
}

/// A software bill of materials: the source and what it contains.
#[derive(Debug, Clone, Serialize)]
pub struct Sbom {
    /// What was scanned.
    pub source: SourceInfo,
    /// What its metadata declares.
    #[serde(flatten)]
    pub catalog: Catalog,
}

/// kiln's name and version, as written into documents.
pub const TOOL_NAME: &str = "kiln";
/// kiln's version.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// kiln's JSON document: the SBOM with its schema and producer.
#[derive(Serialize)]
struct JsonDoc<'a> {
    schema: &'static str,
    descriptor: Descriptor,
    #[serde(flatten)]
    sbom: &'a Sbom,
}

#[derive(Serialize)]
struct Descriptor {
    name: &'static str,
    version: &'static str,
}

impl JsonDoc<'_> {
    fn of(sbom: &Sbom) -> JsonDoc<'_> {
        JsonDoc {
            schema: "kiln-sbom/1",
            descriptor: Descriptor {
                name: TOOL_NAME,
                version: TOOL_VERSION,
            },
            sbom,
        }
    }
}

/// `sbom` as `-o json` writes it, on one line (JSON lines: one document
/// per scanned image).
pub fn json_line(sbom: &Sbom) -> String {
    serde_json::to_string(&JsonDoc::of(sbom)).unwrap_or_default()
}

/// Write `sbom` in `format`.
pub fn write(sbom: &Sbom, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Table => table::write(sbom, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &JsonDoc::of(sbom))?;
            writeln!(out)
        }
        Format::CycloneDxJson => {
            serde_json::to_writer_pretty(&mut *out, &cyclonedx::document(sbom))?;
            writeln!(out)
        }
        Format::SpdxJson => {
            serde_json::to_writer_pretty(&mut *out, &spdx::document(sbom))?;
            writeln!(out)
        }
        Format::Sarif => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "an SBOM cannot be written as SARIF; SARIF reports vulnerabilities (kiln vuln)",
        )),
    }
}

/// The document timestamp: `SOURCE_DATE_EPOCH` when set (reproducible
/// builds), else now; whole seconds, RFC 3339, UTC.
pub(crate) fn timestamp() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
