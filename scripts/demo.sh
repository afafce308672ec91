#!/usr/bin/env bash
# The kernel-bypass HTTP demo: build, then `xdpstack demo` builds a sandbox,
# serves HTTP on the stack, drives it with curl and wrk, reports and removes
# everything (Ctrl-C included).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
bash scripts/deps.sh demo
cargo build --release -q -p xdpstack
exec ./target/release/xdpstack demo "$@"
