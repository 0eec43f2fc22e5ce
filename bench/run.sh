#!/usr/bin/env bash
# Every dndgate benchmark in one run on this machine, printed as one table of ratios
# against SPEC section 12's targets (as raised on 2026-12-07). Usage:
#
#   bench/run.sh                 # everything (about 6 minutes)
#   SECONDS_PER_RUN=20 bench/run.sh
#
# Needs: redis-server and redis-benchmark, python3 (the Flask baseline, installed into
# bench/.venv from bench/baselines/python/requirements.txt), node and npm (the Express
# baseline, installed into bench/baselines/node/node_modules). Every server gets the
# same redis-server (appendonly yes, appendfsync everysec, as production should run),
# the same load generator (bench/load.rs: 64 keep-alive connections, signed Twilio
# callbacks in a campaign's mix) and the same two cores. dndgate also gets two more
# rows: a STOP storm (`--mix stop`: every request a new signed STOP or START) and a
# retry storm (`--mix retry`: 1,000 signed STOPs cycled, nearly all duplicates); each
# dndgate row reports the gateway's CPU per request (utime+stime from /proc/PID/stat
# around the whole load process, divided by every request it sent, warm-up included)
# and Redis's (INFO CPU used_cpu_sys+used_cpu_user, the same way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${SECONDS_PER_RUN:-10}
conns=${CONNECTIONS:-64}
token=bench-twilio-token
api_token=bench-api-token
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${rport:-}" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }

echo "== building (release)" >&2
cargo build --release --quiet --bin dndgate --example bench-load --example bench-hello --example bench-lookup
bin=$root/target/release
if [ ! -x bench/.venv/bin/gunicorn ]; then
  echo "== installing the Python baseline" >&2
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/baselines/python/requirements.txt
fi
if [ ! -d bench/baselines/node/node_modules ]; then
  echo "== installing the Node baseline" >&2
  (cd bench/baselines/node && npm install --silent --no-audit --no-fund)
fi
cores=$(nproc)

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize yes --logfile "$work/redis.log" >/dev/null
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
redis_url="redis://127.0.0.1:$rport/"

load() { # load URL [MIX] -> JSON line
  "$bin/examples/bench-load" --target "$1" --token "$token" --connections "$conns" --seconds "$secs" \
    --mix "${2:-campaign}"
}
rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
# CPU seconds a process has used (utime + stime; the command name has no spaces).
proc_cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
redis_cpu() {
  redis-cli -p "$rport" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'
}
# measured PID URL MIX -> load.rs's JSON line plus the gateway's and Redis's CPU per
# request sent (the CPU delta spans the whole load process: warm-up and measured run,
# so it is divided by every request sent) and Redis's apply-script calls and µs each.
measured() {
  local g0 r0 out g1 r1 stats
  redis-cli -p "$rport" config resetstat >/dev/null
  g0=$(proc_cpu "$1"); r0=$(redis_cpu)
  out=$(load "$2" "$3")
  g1=$(proc_cpu "$1"); r1=$(redis_cpu)
  stats=$(redis-cli -p "$rport" info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_evalsha:/ {print $3, $7}')
  python3 -c '
import json, sys
r = json.loads(sys.argv[1]); g0, g1, r0, r1 = map(float, sys.argv[2:6]); ev = sys.argv[6].split()
sent = max(r.get("sent", r["requests"]), 1)
r["gw_cpu_us"] = (g1 - g0) * 1e6 / sent
r["redis_cpu_us"] = (r1 - r0) * 1e6 / sent
r["evalsha"] = [int(ev[0]), float(ev[1])] if len(ev) == 2 else [0, 0.0]
print(json.dumps(r))' "$out" "$g0" "$g1" "$r0" "$r1" "$stats"
}

# 1. The ceiling: hello-world hyper.
port=$(free_port)
"$bin/examples/bench-hello" "127.0.0.1:$port" 2>/dev/null & pids+=($!)
wait_port "$port"
echo "== ingest: hello-world hyper" >&2
hello=$(load "http://127.0.0.1:$port/webhooks/twilio/acme")
kill "${pids[-1]}"

# 2. dndgate.
port=$(free_port)
cat > "$work/dndgate.toml" <<EOF
listen = "127.0.0.1:$port"
admin_listen = "off"
public_url = "https://hooks.example.com"
redis_url = "$redis_url"
[tenants.acme]
api_tokens = ["$api_token"]
[tenants.acme.twilio]
auth_tokens = ["$token"]
account_sids = ["AC00000000000000000000000000000000"]
EOF
"$bin/dndgate" serve --config "$work/dndgate.toml" 2>"$work/dndgate.log" & gw=$!; pids+=($gw)
wait_port "$port"
echo "== ingest: dndgate" >&2
dnd=$(measured "$gw" "http://127.0.0.1:$port/webhooks/twilio/acme" campaign)
dnd_rss=$(rss_kib "$gw")
redis-cli -p "$rport" config resetstat >/dev/null

# 3. Lookups, against the records ingest left plus a seeded third of the numbers.
redis-cli -p "$rport" --eval bench/seed-lookups.lua >/dev/null
echo "== lookups" >&2
rb=$(redis-benchmark -p "$rport" -t get -c "$conns" -n 1000000 -r 200000 -P 1 -q --csv | tail -1)
rb_rps=$(echo "$rb" | awk -F'","' '{gsub(/"/,"",$2); print $2}')
rb_p50=$(echo "$rb" | awk -F'","' '{gsub(/"/,"",$5); print $5}')
rb_p99=$(echo "$rb" | awk -F'","' '{gsub(/"/,"",$7); print $7}')
single=$("$bin/examples/bench-lookup" single --redis "$redis_url" --concurrency "$conns" --seconds "$secs")
batch=$("$bin/examples/bench-lookup" batch --redis "$redis_url" --size 10000 --runs 50)
http1=$("$bin/examples/bench-lookup" http --target "http://127.0.0.1:$port" --token "$api_token" --concurrency "$conns" --seconds "$secs")
httpb=$("$bin/examples/bench-lookup" http-batch --target "http://127.0.0.1:$port" --token "$api_token" --size 10000 --runs 20)
dnd_rss=$(rss_kib "$gw")

# 3b. The STOP storm and the retry storm, on the same gateway. FLUSHALL before each:
# the campaign's records and the seeded third of the numbers (and then the STOP
# storm's records, dedup markers and audit entries) would otherwise make Redis bigger
# (slower AOF rewrites, more memory to walk) for the later row than for the earlier.
redis-cli -p "$rport" flushall >/dev/null
echo "== ingest: dndgate, STOP storm" >&2
storm=$(measured "$gw" "http://127.0.0.1:$port/webhooks/twilio/acme" stop)
redis-cli -p "$rport" flushall >/dev/null
echo "== ingest: dndgate, retry storm" >&2
retry=$(measured "$gw" "http://127.0.0.1:$port/webhooks/twilio/acme" retry)
kill "$gw"

# 4. The Python and Node handlers users write today.
port=$(free_port)
(cd bench/baselines/python && TWILIO_AUTH_TOKEN=$token REDIS_URL=$redis_url \
  exec "$root/bench/.venv/bin/gunicorn" --bind "127.0.0.1:$port" --workers $((2 * cores + 1)) \
  --worker-class gthread --threads 4 --log-level warning app:app) & pids+=($!)
wait_port "$port"; sleep 1
echo "== ingest: Python (Flask + twilio + redis-py on gunicorn)" >&2
py=$(load "http://127.0.0.1:$port/webhooks/twilio/acme")
kill "${pids[-1]}"
port=$(free_port)
(cd bench/baselines/node && TWILIO_AUTH_TOKEN=$token REDIS_URL=$redis_url PORT=$port WORKERS=$cores \
  exec node app.js) & pids+=($!)
wait_port "$port"; sleep 1
echo "== ingest: Node (Express + twilio + ioredis, node:cluster)" >&2
node=$(load "http://127.0.0.1:$port/webhooks/twilio/acme")
kill "${pids[-1]}"

# 5. Redis memory per record at 1M records.
mem=$(bench/memory.sh 1000000 | awk '/bytes per record/ {print $4}')

python3 - "$hello" "$dnd" "$py" "$node" "$rb_rps" "$rb_p50" "$rb_p99" "$single" "$batch" "$http1" "$httpb" "$mem" "$dnd_rss" "$storm" "$retry" "$cores" "$conns" "$secs" <<'PY'
import json, sys
a = sys.argv[1:]
hello, dnd, py, node = (json.loads(x) for x in a[0:4])
rb_rps, rb_p50, rb_p99 = float(a[4]), float(a[5]), float(a[6])
single, batch, http1, httpb = (json.loads(x) for x in a[7:11])
mem, rss_kib = float(a[11]), int(a[12])
storm, retry = json.loads(a[13]), json.loads(a[14])
cores, conns, secs = a[15], a[16], a[17]
def row(name, r, ref, target=""):
    cpu = ""
    if "gw_cpu_us" in r:
        cpu = f"{r['gw_cpu_us']:.1f} | {r['redis_cpu_us']:.1f}"
    else:
        cpu = " | "
    print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['rps'] / ref:.2f} | {cpu} | {target} |")
print(f"Ingest: signed Twilio callbacks, {conns} connections, {secs} s each, {cores} cores shared with the load generator and Redis.")
print("CPU µs per request: the gateway's (utime+stime) and Redis's (used_cpu_sys+user) over the whole load run, warm-up included, per request sent.\n")
print("| server | requests/s | p50 ms | p99 ms | errors | ratio to hyper | gateway CPU µs/req | Redis CPU µs/req | target |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
ref = hello["rps"]
row("hello-world hyper (ceiling)", hello, ref)
row("**dndgate**, campaign mix (verify, parse, classify, Lua apply, audit)", dnd, ref, "ratio >= 0.65, p99 <= 5 ms")
row("**dndgate**, STOP storm (every request a new STOP/START, 90/10)", storm, ref, "ratio >= 0.45, p99 <= 5 ms")
row("**dndgate**, retry storm (1,000 signed STOPs cycled: duplicates)", retry, ref, "ratio >= 0.60")
row("Python: Flask + twilio SDK + redis-py, gunicorn gthread", py, ref)
row("Node: Express + twilio SDK + ioredis, node:cluster", node, ref)
print(f"\ndndgate is {dnd['rps'] / py['rps']:.1f}x the Python handler and {dnd['rps'] / node['rps']:.1f}x the Node handler (campaign mix).")
for name, r in (("campaign", dnd), ("STOP storm", storm), ("retry storm", retry)):
    calls, us = r["evalsha"]
    if calls:
        print(f"During dndgate's {name} run Redis served {calls:,} apply-script calls at {us:.1f} µs each (Redis CPU on the same cores).")
print()
print("| lookup | result | reference | ratio | target |")
print("|---|---:|---:|---:|---|")
print(f"| Rust API `check`, {conns} concurrent | {single['ops_per_s']:,.0f}/s, p99 {single['p99_ms']:.2f} ms, {single['errors']} errors | redis-benchmark GET {rb_rps:,.0f}/s, p99 {rb_p99:.2f} ms | {single['ops_per_s'] / rb_rps:.2f} | >= 0.90 |")
print(f"| Rust API `check_many`, 10,000 addresses | median {batch['median_ms']:.1f} ms, max {batch['max_ms']:.1f} ms | | | <= 8 ms |")
print(f"| HTTP `GET /v1/.../dnd/sms/ADDR`, {conns} connections | {http1['ops_per_s']:,.0f}/s, p99 {http1['p99_ms']:.2f} ms, {http1['errors']} errors | redis-benchmark GET | {http1['ops_per_s'] / rb_rps:.2f} | >= 0.60 |")
print(f"| HTTP `POST /v1/.../dnd/check`, 10,000 addresses | median {httpb['median_ms']:.1f} ms | | | <= 15 ms |")
print()
print("| resource | measured | target |")
print("|---|---:|---|")
print(f"| Redis memory per DND record at 1,000,000 records | {mem:.1f} B | <= 72 B |")
print(f"| dndgate peak RSS (VmHWM) after ingest and lookups | {rss_kib / 1024:.1f} MiB | <= 64 MiB |")
PY
