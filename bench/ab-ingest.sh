#!/usr/bin/env bash
# A/B of the gateway's own cost on ingest: two dndgate binaries measured in one run on
# one redis-server, alternating (base, head, base, head, ...), so the shared machine's
# mood falls on both sides alike; the hello-world ceiling is measured at the start and
# the end of the run. Usage (build each side first and copy its binary aside):
#
#   bench/ab-ingest.sh BASE_DNDGATE HEAD_DNDGATE          # 3 rounds, mixes campaign stop retry
#   SECONDS_PER_RUN=8 ROUNDS=3 MIXES="stop retry" bench/ab-ingest.sh /tmp/a/dndgate target/release/dndgate
#
# Prints one JSON line per measurement: bench-load's line plus the gateway's CPU µs per
# request sent (utime+stime from /proc/PID/stat around the whole load process, warm-up
# included) and Redis's (INFO CPU used_cpu_sys+used_cpu_user, the same way). Redis is
# flushed before every measurement, so each starts from the same empty database.
# GATEWAY_ENV (e.g. "TOKIO_WORKER_THREADS=1") is put in the head gateway's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
base_bin=$1
head_bin=$2
secs=${SECONDS_PER_RUN:-8}
rounds=${ROUNDS:-3}
mixes=${MIXES:-campaign stop retry}
conns=${CONNECTIONS:-64}
token=bench-twilio-token
work=$(mktemp -d)
rport=""
gw=""
cleanup() {
  [ -n "$gw" ] && kill "$gw" 2>/dev/null || true
  [ -n "$rport" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cargo build --release --quiet --example bench-load --example bench-hello
bin=target/release/examples
hz=$(getconf CLK_TCK)
proc_cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
redis_cpu() {
  redis-cli -p "$rport" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize yes --logfile "$work/redis.log" >/dev/null
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done

ceiling() {
  local port
  port=$(free_port)
  "$bin/bench-hello" "127.0.0.1:$port" 2>/dev/null & gw=$!
  wait_port "$port"
  echo "ceiling $1: $("$bin/bench-load" --target "http://127.0.0.1:$port/webhooks/twilio/acme" --token "$token" --connections "$conns" --seconds "$secs")"
  kill "$gw"; wait "$gw" 2>/dev/null || true; gw=""
}

ceiling start
for round in $(seq "$rounds"); do
  for side in base head; do
    if [ "$side" = base ]; then exe=$base_bin; env=""; else exe=$head_bin; env=${GATEWAY_ENV:-}; fi
    port=$(free_port)
    cat > "$work/dndgate.toml" <<EOF
listen = "127.0.0.1:$port"
admin_listen = "off"
public_url = "https://hooks.example.com"
redis_url = "redis://127.0.0.1:$rport/"
spool_dir = "$work/spool-$side-$round"
[tenants.acme]
api_tokens = ["bench-api-token"]
[tenants.acme.twilio]
auth_tokens = ["$token"]
account_sids = ["AC00000000000000000000000000000000"]
EOF
    env $env "$exe" serve --config "$work/dndgate.toml" 2>"$work/gw.log" & gw=$!
    wait_port "$port"
    for mix in $mixes; do
      redis-cli -p "$rport" flushall >/dev/null
      redis-cli -p "$rport" config resetstat >/dev/null
      g0=$(proc_cpu "$gw"); r0=$(redis_cpu)
      out=$("$bin/bench-load" --target "http://127.0.0.1:$port/webhooks/twilio/acme" --token "$token" \
        --connections "$conns" --seconds "$secs" --mix "$mix")
      g1=$(proc_cpu "$gw"); r1=$(redis_cpu)
      python3 -c '
import json, sys
r = json.loads(sys.argv[1]); g0, g1, r0, r1 = map(float, sys.argv[2:6])
sent = max(r.get("sent", r["requests"]), 1)
r["gw_cpu_us"] = round((g1 - g0) * 1e6 / sent, 2)
r["redis_cpu_us"] = round((r1 - r0) * 1e6 / sent, 2)
print(f"round {sys.argv[6]} {sys.argv[7]} {sys.argv[8]}: {json.dumps(r)}")' "$out" "$g0" "$g1" "$r0" "$r1" "$round" "$side" "$mix"
    done
    kill "$gw"; wait "$gw" 2>/dev/null || true; gw=""
  done
done
ceiling end
