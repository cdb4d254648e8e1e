//! One module per subcommand, plus what they share.

pub mod sbom;
pub mod source;
