//! Opening a source and squashing it into a tree, with the description of
//! what was read that every report carries.

use kiln_image::{Image, OpenOptions, Source, SourceRef};
use kiln_report::{LayerRef, SourceInfo};
use kiln_tree::{BuildOptions, Tree};

use crate::{Result, ScanError};

/// Open what `source` names (a transport-prefixed reference or a bare
/// path) and squash it into a tree.
pub fn open_tree(
    source: &str,
    open: &OpenOptions,
    build: &BuildOptions,
) -> Result<(Tree, SourceInfo)> {
    let reference = SourceRef::parse(source).map_err(ScanError::Reference)?;
    let opened = Source::open(&reference, open).map_err(|err| ScanError::open(source, err))?;
    let mut info = SourceInfo::named(reference.transport(), &reference.location());
    if let Source::Image(image) = &opened {
        describe(&mut info, image);
    }
    let tree = Tree::build(opened, build).map_err(|err| ScanError::Read {
        input: source.to_string(),
        err,
    })?;
    Ok((tree, info))
}

/// Name, digests, platform and layers of an image.
fn describe(info: &mut SourceInfo, image: &Image) {
    info.name = image.name.clone();
    info.manifest_digest = image.manifest_digest.as_ref().map(|d| d.to_string());
    info.image_id = Some(image.config_digest.to_string());
    if !image.config.os.is_empty() {
        let c = &image.config;
        info.platform = Some(match &c.variant {
            Some(v) => format!("{}/{}/{}", c.os, c.architecture, v),
            None => format!("{}/{}", c.os, c.architecture),
        });
    }
    info.layers = image
        .layers
        .iter()
        .map(|l| LayerRef {
            index: l.index,
            digest: l.digest.to_string(),
            media_type: l.media_type.clone(),
            size: l.size,
        })
        .collect();
}
