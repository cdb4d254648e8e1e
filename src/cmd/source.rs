//! Options every command that reads an image shares, and opening the tree.

use anyhow::{Context, Result};
use clap::Args;
use kiln_image::{Limits, OpenOptions, Platform, SourceRef};
use kiln_report::SourceInfo;
use kiln_tree::{BuildOptions, Tree};

/// How to find and open the image.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The image: registry:HOST[:PORT]/REPO[:TAG|@DIGEST] (or
    /// docker://…), oci-archive:FILE[:REF], oci-dir:DIR[:REF],
    /// docker-archive:FILE[:TAG], dir:PATH, or a bare path (detected).
    pub source: String,
    #[command(flatten)]
    pub options: SourceOptions,
}

/// How to open any image: platform, limits, registry access.
#[derive(Args, Debug, Clone)]
pub struct SourceOptions {
    /// Platform to pick from a multi-platform image, as os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Refuse a layer that expands to more than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_layer_size)]
    pub max_layer_size: u64,
    /// Refuse a layer whose uncompressed/compressed ratio passes this.
    #[arg(long, value_name = "RATIO", default_value_t = Limits::default().max_expansion_ratio)]
    pub max_expansion_ratio: u64,
    #[command(flatten)]
    pub net: super::net::NetArgs,
}

impl SourceOptions {
    /// Platform choice and decompression limits, as given.
    pub fn open_options(&self) -> Result<OpenOptions> {
        let platform = self.platform.as_deref().map(Platform::parse).transpose()?;
        Ok(OpenOptions {
            platform,
            limits: Limits {
                max_layer_size: self.max_layer_size,
                max_expansion_ratio: self.max_expansion_ratio,
                ..Limits::default()
            },
            registry: self.net.registry()?,
        })
    }
}

impl SourceArgs {
    /// Platform choice and decompression limits, as given.
    pub fn open_options(&self) -> Result<OpenOptions> {
        self.options.open_options()
    }

    /// Open the source as an image (not a `dir:` root).
    pub fn open_image(&self) -> Result<kiln_image::Image> {
        let reference = SourceRef::parse(&self.source)?;
        kiln_image::Image::open(&reference, &self.open_options()?)
            .with_context(|| format!("cannot open {}", self.source))
    }

    /// Open the source and squash it into a tree.
    pub fn open_tree(&self, opts: &BuildOptions) -> Result<(Tree, SourceInfo)> {
        Ok(kiln_scan::source::open_tree(
            &self.source,
            &self.open_options()?,
            opts,
        )?)
    }
}
