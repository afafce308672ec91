#!/usr/bin/env bash
# HTTPS side by side in one run: `xdpstack http --tls-cert` (1 worker, core 0)
# against nginx (1 worker, core 0, kernel TCP on the same veth), the same
# P-256 certificate and body, wrk -t1 on core 1 in the client namespace:
# keep-alive (TLS 1.3, -c CONNS) and `Connection: close` (a handshake per
# request), ROUNDS times alternating. Prints every run, the medians, the
# server's and wrk's CPU (% of one core), and the stack's TLS counters of
# the last round.
#
#   sudo bench/tls-wrk.sh [ROUNDS=3] [SECONDS=6] [CONNS=50]
#
# wrk -t1 saturates its core before either server does on a 2-core machine:
# THROTTLE=50000 puts each server in a cpu cgroup (v1) with that quota per
# 100 ms period (50% of a core) so the servers, not wrk, set the rate;
# STACK_EXTRA adds options to the stack's command line (e.g. --spin-us 0:
# the default 50 us busy-poll spends quota while waiting for frames).
#
# Needs wrk, nginx-light and openssl (scripts/deps.sh install nginx-light).
# On a shared 2-core machine quote the ratio of the medians, not one figure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-6}
CONNS=${3:-50}
[[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx missing: scripts/deps.sh install nginx-light" >&2; exit 1; }
[[ -n ${NOBUILD:-} ]] || cargo build -q --release -p xdpstack
BIN=${CARGO_TARGET_DIR:-target}/release/xdpstack
NAME=tls$$
CG=/sys/fs/cgroup/cpu/xdpstack-$NAME
OUT=$(mktemp -d)
cleanup() {
  [[ -f $OUT/nginx.pid ]] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true
  "$BIN" sandbox down --name "$NAME" >/dev/null 2>&1 || true
  rm -rf "$OUT"
  [[ -d $CG ]] && rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
"$BIN" sandbox up --name "$NAME" --queues 1 >/dev/null
SRV=(ip netns exec "xs-$NAME-srv")
CLI=(ip netns exec "xs-$NAME-cli")
IP=198.18.0.1
BODY='hello from xdpstack\n'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:$IP" \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
mkdir -p "$OUT/ngx"
cat > "$OUT/nginx.conf" <<NGX
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 65536;
pid $OUT/nginx.pid;
error_log $OUT/ngx/error.log warn;
events { worker_connections 65536; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 65;
    keepalive_requests 1000000000;
    client_body_temp_path $OUT/ngx/cb; proxy_temp_path $OUT/ngx/px;
    fastcgi_temp_path $OUT/ngx/fc; uwsgi_temp_path $OUT/ngx/uw; scgi_temp_path $OUT/ngx/sc;
    server {
        listen $IP:443 ssl reuseport backlog=4096;
        ssl_certificate $OUT/cert.pem;
        ssl_certificate_key $OUT/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / { default_type text/plain; return 200 "$BODY"; }
    }
}
NGX

cpu_of() { # pid -> utime+stime in ticks
  awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

start() { # kind -> $pid (the process doing the work)
  if [[ $1 == stack ]]; then
    "${SRV[@]}" ip addr flush dev xdp0
    "${SRV[@]}" "$BIN" http --iface xdp0 --addr $IP/24 --workers 1 \
      --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" \
      --report "$OUT/report.json" ${STACK_EXTRA:-} >"$OUT/stack.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q "worker(s) on" "$OUT/stack.out" && break; sleep 0.1; done
  else
    "${SRV[@]}" ip addr add $IP/24 dev xdp0
    "${SRV[@]}" ethtool -K xdp0 tx off >/dev/null
    "${SRV[@]}" taskset -c 0 nginx -p "$OUT/ngx" -c "$OUT/nginx.conf" 2>>"$OUT/ngx.err" &
    for _ in $(seq 100); do [[ -s $OUT/nginx.pid ]] && break; sleep 0.1; done
    sleep 0.3
    pid=$(pgrep -P "$(cat "$OUT/nginx.pid")" | head -1)
  fi
  for _ in $(seq 50); do
    "${CLI[@]}" curl -sk -o /dev/null -m 1 "https://$IP/" && break; sleep 0.2
  done
  if [[ -n ${THROTTLE:-} ]]; then
    mkdir -p "$CG"
    echo 100000 >"$CG/cpu.cfs_period_us"
    echo "$THROTTLE" >"$CG/cpu.cfs_quota_us"
    echo "$pid" >"$CG/cgroup.procs"
  fi
}

stop() { # kind
  if [[ $1 == stack ]]; then
    kill -INT "$pid"; wait "$pid" || true
  else
    kill -QUIT "$(cat "$OUT/nginx.pid")"; sleep 0.5; rm -f "$OUT/nginx.pid"
    "${SRV[@]}" ip addr flush dev xdp0
  fi
}

declare -A RES
for r in $(seq "$ROUNDS"); do
  for kind in stack nginx; do
    start "$kind"
    for mode in keepalive close; do
      hdr=()
      [[ $mode == close ]] && hdr=(-H "Connection: close")
      c0=$(cpu_of "$pid")
      rps=$("${CLI[@]}" /usr/bin/time -f "%U %S" -o "$OUT/wrk.time" \
        taskset -c 1 wrk -t1 -c"$CONNS" -d"$SECS" "${hdr[@]}" "https://$IP/" 2>&1 \
        | awk '/Requests\/sec/ {print int($2)}')
      c1=$(cpu_of "$pid")
      cpu=$(awk -v a="$c0" -v b="$c1" -v s="$SECS" 'BEGIN{printf "%.0f", (b-a)/s}')
      wcpu=$(awk -v s="$SECS" '{printf "%.0f", ($1+$2)*100/s}' "$OUT/wrk.time")
      echo "round $r $kind $mode: ${rps:-0} req/s, server CPU ${cpu}%, wrk CPU ${wcpu}%"
      RES[$kind-$mode]+="${rps:-0} "
    done
    stop "$kind"
  done
done
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo "medians (load $(cut -d' ' -f1-3 /proc/loadavg); server quota ${THROTTLE:-none} per 100 ms, stack options: ${STACK_EXTRA:-defaults}):"
for mode in keepalive close; do
  s=$(echo "${RES[stack-$mode]}" | med); n=$(echo "${RES[nginx-$mode]}" | med)
  echo "  $mode: stack $s, nginx $n, ratio $(awk -v a="$s" -v b="$n" 'BEGIN{printf "%.2f", b ? a/b : 0}')"
done
echo "stack TLS counters (last round):"
grep -o '"tls":{[^}]*}' "$OUT/stack.out" | tail -1
