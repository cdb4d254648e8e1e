//! Layer-preserving strip: each source layer becomes one output layer with
//! the same members minus what the transforms delete, so stripped images
//! keep their structure (and a base layer strips to the same bytes in every
//! image built on it). Layers are rewritten in parallel.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use kiln_image::spec::History;
use kiln_image::write::ImageOutput;
use kiln_image::{Compression, Digest, Image, LayerReader, SourceRef};
use kiln_tree::path;
use rayon::prelude::*;

use crate::{plan_for, StripError, StripReport, Transform};

fn layer_err(digest: &str, e: impl std::fmt::Display) -> StripError {
    StripError::Layer {
        layer: digest.to_string(),
        reason: e.to_string(),
    }
}

/// One rewritten layer: its descriptor and diff ID, and what was done.
type Rewritten = ((kiln_image::spec::Descriptor, Digest), Counts);

/// Counts from one layer.
#[derive(Default)]
struct Counts {
    deleted: usize,
    appended: usize,
    renamed: usize,
    kept: usize,
}

/// Strip every layer of `image` into `dest`, keeping the layering.
pub fn strip_layers(
    image: &Image,
    dest: &SourceRef,
    transforms: &[Transform],
) -> Result<StripReport, StripError> {
    let out = ImageOutput::create(dest)?;
    let results: Vec<Result<Rewritten, StripError>> = (0..image.layers.len())
        .into_par_iter()
        .map(|i| {
            let digest = image.layers[i].digest.to_string();
            let reader = image.open_layer(i)?;
            let sink = out.layer_sink(Compression::Gzip)?;
            let (sink, counts, reader) = rewrite(reader, sink, &digest, transforms)?;
            reader.finish()?;
            Ok((sink.finish()?, counts))
        })
        .collect();
    let mut layers = Vec::new();
    let mut report = StripReport {
        transforms: transforms.to_vec(),
        ..Default::default()
    };
    for r in results {
        let (layer, c) = r?;
        layers.push(layer);
        report.deleted += c.deleted;
        report.appended += c.appended;
        report.renamed += c.renamed;
        report.kept += c.kept;
    }
    let mut cfg = image.config.clone();
    let names: Vec<&str> = transforms.iter().map(|t| t.name()).collect();
    cfg.history.push(History {
        created: Some(kiln_image::spec::creation_time(Some(&image.config))),
        created_by: Some(format!("kiln strip --transforms {}", names.join(","))),
        empty_layer: true,
    });
    let labels = cfg.config.labels.get_or_insert_with(BTreeMap::new);
    labels.insert("dev.kiln.strip.transforms".into(), names.join(","));
    out.finish(cfg, &layers)?;
    Ok(report)
}

fn rewrite<W: Write>(
    reader: LayerReader,
    sink: W,
    digest: &str,
    transforms: &[Transform],
) -> Result<(W, Counts, LayerReader), StripError> {
    let mut counts = Counts::default();
    let mut archive = tar::Archive::new(reader);
    let mut b = tar::Builder::new(sink);
    b.mode(tar::HeaderMode::Complete);
    {
        let entries = archive.entries().map_err(|e| layer_err(digest, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| layer_err(digest, e))?;
            let raw = kiln_tree::member_path(&mut entry).map_err(|e| layer_err(digest, e))?;
            let clean = path::clean(&raw).ok_or_else(|| {
                layer_err(
                    digest,
                    format!("entry {raw:?} climbs out of the image root"),
                )
            })?;
            if clean.is_empty() {
                continue; // the root directory itself
            }
            let mut header = entry.header().clone();
            let mut kind = header.entry_type();
            if kind == tar::EntryType::GNUSparse {
                // Written expanded, as a regular file (bounded).
                let real =
                    kiln_tree::sparse_size(&entry, &clean).map_err(|e| layer_err(digest, e))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(real);
                kind = tar::EntryType::Regular;
            }
            let name = path::file_name(&clean);
            // Whiteouts pass through unless what they hide is deleted anyway.
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let target = if hidden == ".wh..opq" {
                    path::parent(&clean).to_string()
                } else {
                    path::join(path::parent(&clean), hidden)
                };
                if plan_for(&target, false, 0, false, transforms).is_none() {
                    counts.deleted += 1;
                    continue;
                }
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| layer_err(digest, e))?;
                b.append_data(&mut header, &clean, &data[..])
                    .map_err(|e| layer_err(digest, e))?;
                continue;
            }
            let is_file = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
            let mode = header.mode().unwrap_or(0o644);
            let mut head = [0u8; 4];
            let mut got = 0;
            if is_file {
                while got < 4 {
                    let n = entry
                        .read(&mut head[got..])
                        .map_err(|e| layer_err(digest, e))?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
            }
            let elf = got == 4 && &head == b"\x7fELF";
            let Some(x) = plan_for(&clean, is_file, mode, elf, transforms) else {
                counts.deleted += 1;
                continue;
            };
            counts.kept += 1;
            counts.appended += usize::from(!x.append.is_empty());
            counts.renamed += usize::from(x.rename.is_some());
            let out_name = x.rename.unwrap_or(clean);
            if kind == tar::EntryType::Link {
                // A hard link follows its target's fate.
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .and_then(|t| path::clean(&t))
                    .unwrap_or_default();
                let Some(tx) = plan_for(&target, true, 0o755, elf, transforms) else {
                    counts.kept -= 1;
                    counts.deleted += 1;
                    continue;
                };
                let target = tx.rename.unwrap_or(target);
                b.append_link(&mut header, &out_name, &target)
                    .map_err(|e| layer_err(digest, e))?;
            } else if kind == tar::EntryType::Symlink {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                b.append_link(&mut header, &out_name, &target)
                    .map_err(|e| layer_err(digest, e))?;
            } else {
                let size = header.size().unwrap_or(0);
                header.set_size(size + x.append.len() as u64);
                let body = (&head[..got]).chain(&mut entry).chain(&x.append[..]);
                let name = if kind == tar::EntryType::Directory {
                    format!("{out_name}/")
                } else {
                    out_name
                };
                b.append_data(&mut header, &name, body)
                    .map_err(|e| layer_err(digest, e))?;
            }
        }
    }
    let sink = b.into_inner().map_err(|e| layer_err(digest, e))?;
    Ok((sink, counts, archive.into_inner()))
}
