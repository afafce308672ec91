//! `xdpstack bench reflect`: the raw AF_XDP ceiling.

use std::process::ExitCode;

/// `xdpstack bench reflect` options.
#[derive(clap::Args, Clone, Debug)]
pub struct ReflectArgs {}

/// Reflect frames.
pub fn run(_args: &ReflectArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("the reflector is being written (issue: benchmarks)".into())
}
