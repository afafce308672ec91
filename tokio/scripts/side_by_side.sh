#!/usr/bin/env bash
# By-hand side-by-side of docs/TOKIO.md "Figures": the same release binary
# through the daemon and on the server namespace's kernel sockets, on one
# veth sandbox (--share-with-kernel). The daemon's worker (--cores 0) and
# the application (one tokio thread, the current-thread runtime) on CPU 0,
# the load on CPU 1. Prints one line per round: through / kernel.
#
#   tokio/scripts/side_by_side.sh [http|grpc] [ROUNDS] [SECS]
#
# Needs root (namespaces) and the release builds:
#   cargo build --release -p xdpstack --bin xdpstack
#   cargo build --release -p xdpstack-tokio --example axum_hello --example grpc_hello
# SPIN_US sets the daemon's --spin-us (its default, 50 us, when unset: the
# busy-poll yields to the application on the shared core). DAEMON_POLICY
# (e.g. -b) sets the daemon's scheduling policy with chrt. CTX=1 prints the
# context switches of the daemon and the application per round. PERF=1 records the application and the daemon with perf during the first
# round through the daemon (/tmp/perf-app.data, /tmp/perf-daemon.data).
set -euo pipefail
MODE=${1:-http}
ROUNDS=${2:-3}
SECS=${3:-5}
T=${TARGET:-target/release}
X=$T/xdpstack
NAME=tk$$
SOCK=/tmp/xdpstack-$NAME.sock
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  "$X" sandbox down --name "$NAME" >/dev/null 2>&1 || true
  rm -f "$SOCK"
}
trap cleanup EXIT
"$X" sandbox up --name "$NAME" --queues 1 --share-with-kernel >/dev/null
in_srv() { "$X" sandbox exec --name "$NAME" --server -- "$@"; }
in_cli() { "$X" sandbox exec --name "$NAME" --client -- "$@"; }

taskset -c 0 "$X" sandbox exec --name "$NAME" --server -- "$X" daemon --iface xdp0 \
  --addr 10.112.0.1/24 --workers 1 --cores 0 ${SPIN_US:+--spin-us "$SPIN_US"} --control "$SOCK" --control-mode 666 \
  >/dev/null 2>/tmp/$NAME-daemon.log &
DAEMON=$! # taskset, sandbox exec and ip netns exec each exec the next
PIDS+=($DAEMON)
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
sleep 0.5
[[ -n ${DAEMON_POLICY:-} ]] && chrt -a "$DAEMON_POLICY" -p 0 "$DAEMON" >/dev/null

start_app() { # $1: attach|kernel
  local args
  if [[ $MODE == http ]]; then
    args=("$T/examples/axum_hello" --port 8080)
  else
    args=("$T/examples/grpc_hello" --port 8080)
  fi
  if [[ $1 == attach ]]; then
    taskset -c 0 "${args[@]}" --attach "$SOCK" 2>/tmp/$NAME-app.log &
  else
    taskset -c 0 "$X" sandbox exec --name "$NAME" --server -- "${args[@]}" --kernel 10.112.0.3 \
      2>/tmp/$NAME-app.log &
  fi
  APP=$!
  PIDS+=($APP)
  for _ in $(seq 100); do grep -q "listening on" /tmp/$NAME-app.log 2>/dev/null && break; sleep 0.1; done
}

load() { # $1: address; prints the rate
  if [[ $MODE == http ]]; then
    taskset -c 1 "$X" sandbox exec --name "$NAME" --client -- \
      wrk -t1 -c50 -d"${SECS}s" "http://$1:8080/" | awk '/Requests\/sec/ {print $2} /Non-2xx|Socket errors/ {print "ERR " $0 > "/dev/stderr"}'
  else
    taskset -c 1 "$X" sandbox exec --name "$NAME" --client -- \
      "$T/examples/grpc_hello" --client "http://$1:8080" --requests $((SECS * 40000)) --concurrency 50 |
      tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate"])'
  fi
}

cpu_of() { awk '{print $14+$15}' /proc/$1/stat; }
# Busy ticks of CPU 1 (the load's core: the client and the kernel work its
# sends carry): all but idle and iowait.
# Context switches (voluntary+involuntary) of a process's threads.
ctx_of() { cat /proc/$1/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
cpu1_busy() { awk '$1 == "cpu1" {print $2+$3+$4+$7+$8+$9}' /proc/stat; }

echo "load: $(uptime)"
for r in $(seq "$ROUNDS"); do
  start_app attach
  load 10.112.0.1 >/dev/null # warm-up
  d0=$(cpu_of "$DAEMON"); a0=$(cpu_of "$APP"); dx0=$(ctx_of "$DAEMON"); ax0=$(ctx_of "$APP")
  if [[ ${PERF:-0} == 1 && $r == 1 ]]; then
    perf record -e cpu-clock -g -p "$APP" -o /tmp/perf-app.data -- sleep "$SECS" >/dev/null 2>&1 &
    perf record -e cpu-clock -g -p "$DAEMON" -o /tmp/perf-daemon.data -- sleep "$SECS" >/dev/null 2>&1 &
  fi
  c0=$(cpu1_busy)
  t0=$(date +%s%N)
  xdp=$(load 10.112.0.1)
  t1=$(date +%s%N)
  c1=$(cpu1_busy)
  d1=$(cpu_of "$DAEMON"); a1=$(cpu_of "$APP"); dx1=$(ctx_of "$DAEMON"); ax1=$(ctx_of "$APP")
  [[ ${CTX:-0} == 1 ]] && echo "context switches: daemon $((dx1 - dx0)), app $((ax1 - ax0)), $xdp/s over $(( (t1 - t0) / 1000000 )) ms" >&2
  kill "$APP"; wait "$APP" 2>/dev/null || true
  start_app kernel
  load 10.112.0.3 >/dev/null
  k0=$(cpu_of "$APP")
  c2=$(cpu1_busy)
  t2=$(date +%s%N)
  ker=$(load 10.112.0.3)
  t3=$(date +%s%N)
  c3=$(cpu1_busy)
  k1=$(cpu_of "$APP")
  kill "$APP"; wait "$APP" 2>/dev/null || true
  python3 - "$xdp" "$ker" "$((d1 - d0))" "$((a1 - a0))" "$((k1 - k0))" "$((t1 - t0))" "$((t3 - t2))" "$((c1 - c0))" "$((c3 - c2))" <<'PY'
import sys
x, k, d, a, kc, tx, tk, lx, lk = sys.argv[1:]
x, k = float(x), float(k)
tx, tk = int(tx) / 1e9, int(tk) / 1e9
print(f"round: through the daemon {x:.0f}/s (daemon {int(d)/100/tx:.2f} CPU, app {int(a)/100/tx:.2f}, "
      f"CPU 1 {int(lx)/100/tx:.2f}), kernel sockets {k:.0f}/s (app {int(kc)/100/tk:.2f} CPU, "
      f"CPU 1 {int(lk)/100/tk:.2f}): ratio {x/k:.2f}")
PY
done
echo "load: $(uptime)"
