#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests (no root) and the
# privileged tests (real AF_XDP sockets in sandboxes driven by kernel clients),
# then a check that nothing of ours was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"

bash scripts/deps.sh all

if [[ $EUID -ne 0 ]]; then
  echo "the privileged tests need root: run as root (sudo $0)" >&2
  exit 1
fi
# Privileged tests fail instead of skipping when this is set.
export XDPSTACK_REQUIRE_PRIV=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
# The vendored smoltcp is outside the workspace: its own tests (195 of the
# TCP socket among them) are the regression suite of our patches. Its default
# features plus cubic and reno cover what our patches touch (its tests need
# some of the defaults to compile); its lock file is committed, its build
# goes to target/.
echo "== cargo test (vendor/smoltcp)"
cargo test --manifest-path vendor/smoltcp/Cargo.toml --target-dir target/smoltcp \
  --lib --features socket-tcp-cubic,socket-tcp-reno
echo "== leftovers"
cargo run -q -p xdpstack -- sandbox leaks
