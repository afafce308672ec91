//! Builds the XDP program (bpf/steer.bpf.c) with clang through libbpf-cargo.
//! The object is embedded in the crate and loaded with libbpf-rs
//! (`nic::steer`). Only linux/bpf.h (linux-libc-dev) and libbpf's
//! bpf_helpers.h (extracted by libbpf-cargo from libbpf-sys) are needed: no
//! vmlinux.h, no bpftool.

use std::path::PathBuf;

fn main() {
    let src = "bpf/steer.bpf.c";
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("steer.bpf.o");
    // Debian keeps asm/types.h under the multiarch directory, which clang's
    // bpf target does not search on its own.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => other,
    };
    let mut builder = libbpf_cargo::SkeletonBuilder::new();
    builder.source(src).obj(&out).clang_args([
        format!("-I/usr/include/{multiarch}"),
        "-Wall".to_string(),
        "-Werror".to_string(),
    ]);
    if let Err(e) = builder.build() {
        panic!("building {src} with clang failed: {e:#}");
    }
    println!("cargo:rerun-if-changed={src}");
}
