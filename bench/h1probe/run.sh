#!/usr/bin/env bash
# Runs bench/h1probe/h1probe.py from the sandbox's client namespace against,
# in turn: `xdpstack http` with a fixed body (`--body OK`, the body the
# probe's echo cases accept from a server that does not echo), `xdpstack
# http` with its default body, `xdpstack http --root` (a tree whose
# index.html is `OK`), nginx with `return 200;` and nginx with
# `return 200 "OK";` (Debian's nginx, kernel TCP on the same veth).
# Prints each run's summary line and keeps the JSON reports.
#
#   sudo bench/h1probe/run.sh [OUTDIR] [TARGETS...]
#
# TARGETS: any of fixed default static nginx nginx-ok (default: all).
# Needs nginx-light and python3 (scripts/deps.sh). Privileged: run one at a
# time (flock /work/priv.lock on shared machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
OUTDIR=${1:-bench/h1probe/results}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(fixed default static nginx nginx-ok)
[[ -n ${NOBUILD:-} ]] || cargo build -q -p xdpstack
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/xdpstack}
NAME=h1p$$
TMP=$(mktemp -d)
mkdir -p "$OUTDIR"
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  [[ -f $TMP/nginx.pid ]] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  "$BIN" sandbox down --name "$NAME" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$BIN" sandbox up --name "$NAME" --queues 1 >/dev/null
SRV=(ip netns exec "xs-$NAME-srv")
CLI=(ip netns exec "xs-$NAME-cli")
IP=198.18.0.1
mkdir -p "$TMP/www" "$TMP/ngx"
printf OK > "$TMP/www/index.html"

nginx_conf() { # body directive
  cat > "$TMP/nginx.conf" <<NGX
daemon off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/ngx/cb; proxy_temp_path $TMP/ngx/px;
    fastcgi_temp_path $TMP/ngx/fc; uwsgi_temp_path $TMP/ngx/uw; scgi_temp_path $TMP/ngx/sc;
    server {
        listen $IP:80;
        location / { $1 }
    }
}
NGX
}

start() { # target
  case $1 in
    fixed|default|static)
      local extra=()
      [[ $1 == fixed ]] && extra=(--body OK)
      [[ $1 == static ]] && extra=(--root "$TMP/www")
      "${SRV[@]}" ip addr flush dev xdp0
      "${SRV[@]}" "$BIN" http --iface xdp0 --addr $IP/24 --workers 1 "${extra[@]}" \
        >"$TMP/stack.out" 2>&1 &
      pid=$!
      for _ in $(seq 150); do grep -q "worker(s) on" "$TMP/stack.out" && break; sleep 0.1; done
      ;;
    nginx|nginx-ok)
      if [[ $1 == nginx ]]; then nginx_conf 'return 200;'; else nginx_conf 'return 200 "OK";'; fi
      "${SRV[@]}" ip addr add $IP/24 dev xdp0
      "${SRV[@]}" ethtool -K xdp0 tx off >/dev/null
      "${SRV[@]}" nginx -p "$TMP/ngx" -c "$TMP/nginx.conf" 2>>"$TMP/ngx.err" &
      pid=$!
      for _ in $(seq 100); do [[ -s $TMP/nginx.pid ]] && break; sleep 0.1; done
      ;;
  esac
  for _ in $(seq 50); do
    "${CLI[@]}" curl -s -o /dev/null -m 1 "http://$IP/" && return 0; sleep 0.2
  done
  echo "$1 did not answer" >&2
  cat "$TMP/stack.out" "$TMP/ngx.err" 2>/dev/null >&2 || true
  return 1
}

stop() { # target
  case $1 in
    nginx|nginx-ok)
      kill -QUIT "$(cat "$TMP/nginx.pid")"; wait "$pid" || true; rm -f "$TMP/nginx.pid"
      "${SRV[@]}" ip addr flush dev xdp0 ;;
    *) kill -INT "$pid"; wait "$pid" || true ;;
  esac
  pid=
}

for t in "${TARGETS[@]}"; do
  start "$t"
  "${CLI[@]}" timeout 600 /usr/bin/python3 bench/h1probe/h1probe.py --host $IP --port 80 \
    --json > "$OUTDIR/$t.json" || true
  stop "$t"
  /usr/bin/python3 - "$OUTDIR/$t.json" "$t" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print("%-9s passed %d of %d scored, smuggling failures: %d (warned %d, failed %d, errors %d)"
      % (sys.argv[2], s["passed"], s["scored"], len(s["smuggling_failures"]),
         s["warned"], s["failed"], s["errors"]))
print("          failed: " + " ".join(s["failures"]))
PY
done
