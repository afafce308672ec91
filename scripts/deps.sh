#!/usr/bin/env bash
# Install the Debian packages xdpstack needs, only those missing.
#   build: libxdp-sys builds libxdp and libbpf from source; nic/build.rs compiles
#          the XDP program with clang against linux/bpf.h (linux-libc-dev)
#   run:   iproute2 and ethtool for the sandbox
#   test:  the real peers the tests and the demo drive (nghttp2-client: h2load,
#          HTTP/2 streams to the tokio example; openssl: certificates and
#          s_client, chromium: headless fetches over HTTPS (158 MB download),
#          testssl.sh: the HTTPS audit in docs/HTTP.md)
set -euo pipefail

BUILD=(clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 make gcc linux-libc-dev)
RUN=(iproute2 ethtool)
PEERS=(curl wrk apache2-utils nghttp2-client knot-dnsutils dnsperf iputils-ping python3 python3-scapy
       openssl chromium testssl.sh)

want=("${BUILD[@]}" "${RUN[@]}")
mode="${1:-all}"
case "$mode" in
  build) want=("${BUILD[@]}" "${RUN[@]}") ;;
  demo)  want=("${BUILD[@]}" "${RUN[@]}" curl wrk) ;;
  all)   want=("${BUILD[@]}" "${RUN[@]}" "${PEERS[@]}") ;;
  # the benchmarks' peers, named by the bench runner: `deps.sh install PKG...`
  install) shift; want=("$@") ;;
  *) echo "usage: $0 [build|demo|all|install PKG...]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # RUNLEVEL=1: invoke-rc.d starts no service of a package (nginx, knot);
  # a systemd host may still start them
  RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The bench runner asks for packages only: no toolchain checks.
[[ $mode == install ]] && exit 0

if ! command -v cargo >/dev/null; then
  # rustup's default location, for shells that did not source it
  [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }
# The test command runs cargo fmt and clippy.
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
