//! `kiln strip`: write an obfuscated copy of an image (the adversary
//! images kiln's scanner must see through).

use std::process::ExitCode;

use anyhow::{Context, Result};
use kiln_image::SourceRef;
use kiln_strip::Transform;
use kiln_tree::BuildOptions;

use super::source::SourceArgs;
use crate::progress;

/// `kiln strip SOURCE DEST`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    source: SourceArgs,
    /// Where to write: oci-archive:FILE[:REF], oci-dir:DIR[:REF] or
    /// registry:HOST/REPO:TAG (pushed; --creds and TLS flags apply).
    dest: String,
    /// Comma-separated transforms: delete-db, delete-docs, append-elf,
    /// hide-app-metadata, rename-elf [default: all but rename-elf].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    transforms: Vec<Transform>,
    /// Also rename ELF files.
    #[arg(long)]
    rename_elf: bool,
    /// Write one squashed layer instead of keeping the image's layers.
    #[arg(long)]
    squash: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, quiet: bool) -> Result<ExitCode> {
    let destination = super::dest::Destination::parse(&args.dest)?;
    let dest = destination.target.clone();
    let mut transforms = if args.transforms.is_empty() {
        Transform::DEFAULT.to_vec()
    } else {
        args.transforms
    };
    if args.rename_elf && !transforms.contains(&Transform::RenameElf) {
        transforms.push(Transform::RenameElf);
    }
    let reference = SourceRef::parse(&args.source.source)?;
    let squash = args.squash || matches!(reference, SourceRef::Dir { .. });
    let report = if squash {
        let bar = progress::bytes("reading layers", quiet);
        let ticker = bar.clone();
        let opts = BuildOptions {
            progress: Some(Box::new(move |n| ticker.inc(n))),
            inspect: Some(Box::new(kiln_strip::elf_marker)),
            ..Default::default()
        };
        let (tree, _) = args.source.open_tree(&opts)?;
        bar.finish_and_clear();
        let config = tree.image().map(|i| i.config.clone());
        let bar = progress::spinner("writing image", quiet);
        let r = kiln_strip::strip(&tree, config.as_ref(), &dest, &transforms);
        bar.finish_and_clear();
        r
    } else {
        let image = args.source.open_image()?;
        let bar = progress::spinner("rewriting layers", quiet);
        let r = kiln_strip::strip_layers(&image, &dest, &transforms);
        bar.finish_and_clear();
        r
    }
    .with_context(|| format!("cannot write {}", args.dest))?;
    let pushed = destination.finish(&args.source.options.net, &reference)?;
    if let (Some(p), false) = (&pushed, quiet) {
        eprintln!(
            "kiln: pushed {} ({}): {} blob(s) uploaded ({} bytes), {} already there, {} mounted",
            args.dest, p.manifest_digest, p.uploaded, p.uploaded_bytes, p.present, p.mounted
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        let names: Vec<&str> = report.transforms.iter().map(|t| t.name()).collect();
        eprintln!(
            "kiln: wrote {} ({}): {} paths kept, {} deleted, {} ELF executables padded, {} renamed",
            args.dest,
            names.join(","),
            report.kept,
            report.deleted,
            report.appended,
            report.renamed
        );
    }
    Ok(ExitCode::SUCCESS)
}
