//! `xdpstack pktgen`: an AF_XDP packet generator.

use std::process::ExitCode;

/// `xdpstack pktgen` options.
#[derive(clap::Args, Clone, Debug)]
pub struct PktgenArgs {}

/// Generate traffic.
pub fn run(_args: &PktgenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("pktgen is being written (issue: benchmarks)".into())
}
