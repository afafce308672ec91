//! What `ip -d link show` says about XDP programs, for the test files that
//! check one was attached or is gone (`#[path = "support/xdp.rs"] mod xdp;`,
//! next to `mod common;`).
#![allow(dead_code)]

use std::process::Command;

use crate::common::run_ok;

/// `ip -d link show dev <dev>` in namespace `ns`.
pub fn link(ns: &str, dev: &str) -> String {
    run_ok(Command::new("ip").args(["-n", ns, "-d", "link", "show", "dev", dev]))
}

/// Whether `link` (what [`link`] returned) shows an XDP program attached.
pub fn xdp_attached(link: &str) -> bool {
    link.lines().any(|l| l.trim_start().starts_with("prog/xdp"))
}
