//! What the bytes of a file prove, independent of any package metadata.
//!
//! `kiln-fingerprint` is the byte half of kiln's third stage (beside
//! `kiln-catalog`, which reads what metadata claims). It computes, for one
//! file's content, the facts the rainbow table is keyed on:
//!
//! - for ELF files, an [`ElfInfo`]: the GNU build-id, the systemd-style
//!   `.note.package` JSON, SONAME, `DT_NEEDED`, the symbol versions the
//!   file defines, interpreter and machine, the BLAKE3 digest of its loaded
//!   sections (notes excluded), Go build info ([`GoBuildInfo`]),
//!   `cargo auditable` data ([`RustCrate`]) and version [`Clues`] (data
//!   strings, and constants version functions return or store, read by
//!   evaluating their x86-64 code);
//! - [`functions`]: a normalised hash of every function (boundaries from
//!   `.eh_frame` and symbols; x86-64 and AArch64), which survives
//!   stripping and relinking.
//!
//! The same functions run when `kiln db build` ingests a package and when
//! `kiln scan` looks at an image, so both sides always agree on what a
//! fingerprint is. (The whole-file digest both sides key contents by is
//! `kiln_tree::content_digest`.) Build-ids survive what breaks whole-file hashes: bytes
//! appended to an executable (SlimToolkit's `--obfuscate-metadata`) or a
//! renamed file.
//!
//! ```
//! use kiln_fingerprint::ElfInfo;
//! assert!(ElfInfo::parse(b"#!/bin/sh\n").unwrap().is_none());
//! ```
#![deny(missing_docs)]

mod auditable;
mod clues;
mod elf;
pub mod functions;
mod gobuild;
mod mapped;

pub use auditable::RustCrate;
pub use clues::{version_strings, Clues, FunctionConsts, Store};
pub use elf::{ElfError, ElfInfo};
pub use gobuild::{GoBuildInfo, GoModule};

/// Does `head` start like an ELF file?
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}
