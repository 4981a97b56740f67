//! `berth inspect REF`: digest, media type, platforms, config and layers of an image.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image reference (`registry/repo:tag`, `repo@sha256:...`).
    pub reference: String,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    Err(crate::exit::usage("inspect is not built yet"))
}
