#!/usr/bin/env bash
# The raw AF_XDP ceiling against the stack, side by side in one run:
# `xdpstack pktgen --template echo --rate 0` on peer0 (client namespace)
# against, in turn, `xdpstack bench reflect` (frames swapped and sent back, no
# stack) and `xdpstack echo` (the stack's UDP echo) on xdp0, ROUNDS times
# alternating, in one sandbox. Prints every run and the medians: tx pps,
# answered pps, answered ratio, CPU seconds of the pktgen and server threads.
#
#   sudo bench/pktgen-ceiling.sh [ROUNDS=5] [SECONDS=3] [QUEUES=1]
#
# Release build; the server side runs on core 0.., pktgen on the last cores
# (their defaults). On a shared 2-core machine the numbers move with the
# neighbours' load: quote the ratio of the medians, not one figure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-3}
QUEUES=${3:-1}
[[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
cargo build -q --release -p xdpstack
BIN=${CARGO_TARGET_DIR:-target}/release/xdpstack
NAME=ceil$$
OUT=$(mktemp -d)
cleanup() { "$BIN" sandbox down --name "$NAME" >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT INT TERM
"$BIN" sandbox up --name "$NAME" --queues "$QUEUES" >/dev/null
SRV=(ip netns exec "xs-$NAME-srv")
CLI=(ip netns exec "xs-$NAME-cli")

start_server() { # kind round -> pid in $pid, 0 if it did not start
  local kind=$1 r=$2
  case $kind in
    reflect) "${SRV[@]}" "$BIN" bench reflect --iface xdp0 --queues "$QUEUES" \
               --addr 198.18.0.1 --report "$OUT/srv-$kind-$r.json" 2>"$OUT/srv.err" & ;;
    stack)   "${SRV[@]}" "$BIN" echo --iface xdp0 --workers "$QUEUES" \
               --addr 198.18.0.1/24 --report "$OUT/srv-$kind-$r.json" 2>"$OUT/srv.err" & ;;
  esac
  pid=$!
  for _ in $(seq 100); do
    grep -qE "worker\(s\) on|bench reflect:" "$OUT/srv.err" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
  pid=0
}

run_one() { # kind round
  local kind=$1 r=$2 pid=0
  # The kernel frees the previous socket's queue from a work queue: a start
  # right after a stop may find it still busy. Try again a few times.
  for _ in $(seq 10); do
    start_server "$kind" "$r"
    [[ $pid -ne 0 ]] && break
    sleep 0.3
  done
  [[ $pid -ne 0 ]] || { echo "the $kind server did not start: $(cat "$OUT/srv.err")" >&2; exit 1; }
  timeout -k 2 $((SECS + 30)) "${CLI[@]}" "$BIN" pktgen --iface peer0 --queues "$QUEUES" \
    --template echo --dst 198.18.0.1 --rate 0 --duration "$SECS" \
    --src-port 10000-10255 --quiet --report "$OUT/gen-$kind-$r.json"
  kill -INT "$pid"; wait "$pid"
}

for r in $(seq "$ROUNDS"); do
  run_one reflect "$r"
  run_one stack "$r"
done

python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def cpu(threads, key="threads"):
    return sum(t.get("cpu_user_s", 0) + t.get("cpu_sys_s", 0) for t in threads)
res = {}
for kind in ("reflect", "stack"):
    rows = []
    for r in range(1, rounds + 1):
        g = json.load(open(f"{out}/gen-{kind}-{r}.json"))
        s = json.load(open(f"{out}/srv-{kind}-{r}.json"))
        srv_threads = s.get("queues") or s.get("workers") or []
        t = g["totals"]
        rows.append((t["tx_pps"], t["answered_pps"], t["answered_ratio"],
                     cpu(g["threads"]), cpu(srv_threads) if kind == "reflect" else None,
                     g["latency_us"]["p50"] if g["latency_us"] else None,
                     [x["core"] for x in g["threads"]]))
        print(f"{kind:8} round {r}: tx {t['tx_pps']:>9.0f} pps  answered {t['answered_pps']:>9.0f} pps "
              f"({100*t['answered_ratio']:.1f}%)  pktgen cpu {rows[-1][3]:.2f} s  cores {rows[-1][6]}")
    res[kind] = rows
print()
for kind, rows in res.items():
    med = lambda i: statistics.median(r[i] for r in rows)
    print(f"{kind:8} median: tx {med(0):>9.0f} pps  answered {med(1):>9.0f} pps  ratio {100*med(2):.1f}%")
ratio = statistics.median(r[1] for r in res["stack"]) / statistics.median(r[1] for r in res["reflect"])
print(f"stack echo / reflector (answered pps, medians): {ratio:.2f}")
EOF
