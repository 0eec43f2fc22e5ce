#!/usr/bin/env bash
# Events out, measured in one run on one redis-server (appendonly yes, appendfsync
# everysec, as bench/run.sh): what one endpoint costs ingest, how fast deliveries go,
# and what pending events cost Redis. Usage:
#
#   bench/events_out.sh                          # about 2 minutes
#   SECONDS_PER_RUN=20 FILL_SECONDS=4 bench/events_out.sh
#
# Phases, each on a flushed database and a fresh gateway (release build):
#   A. no endpoint: bench-load's campaign mix, then a STOP storm (--mix stop), S s each;
#   M. no endpoint: a STOP storm of FILL_SECONDS; Redis used_memory delta per audit entry;
#   B. one endpoint, receiver (bench/receiver.rs, verifies every signature) up: the same
#      two ingest runs; deliveries made during each run and the backlog (XINFO GROUPS
#      pending + lag over the 16 shard groups) when it ends;
#   C. one endpoint, receiver down: a STOP storm of FILL_SECONDS (every event waits),
#      used_memory per entry; then the receiver starts and the gateway catches up:
#      time until the backlog is 0, deliveries/s; used_memory per entry after it.
# A STOP makes two audit entries (sms and voice: sms_opt_out_also's default).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${SECONDS_PER_RUN:-10}
fill=${FILL_SECONDS:-2}
conns=${CONNECTIONS:-64}
drain_timeout=${DRAIN_TIMEOUT:-300}
token=bench-twilio-token
secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
work=$(mktemp -d)
gw=""
rcv=""
cleanup() {
  for p in $gw $rcv; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${rport:-}" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
now_ms() { date +%s%3N; }

echo "== building (release)" >&2
cargo build --release --quiet --bin dndgate --example bench-load --example bench-receiver
bin=$root/target/release

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize yes --logfile "$work/redis.log" >/dev/null
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
rc() { redis-cli -p "$rport" "$@"; }
audit_keys=()
for s in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do audit_keys+=("dnd:{acme:$s}:audit"); done
used() { rc info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }
entries() { # audit entries in the tenant's 16 shard streams
  rc eval "local n = 0 for _, k in ipairs(KEYS) do n = n + redis.call('XLEN', k) end return n" \
    16 "${audit_keys[@]}"
}
backlog() { # "PENDING LAG" summed over every group of the 16 shards
  rc eval "
local p, l = 0, 0
for _, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', k)) do
      for j = 1, #g, 2 do
        if g[j] == 'pending' then p = p + g[j + 1] end
        if g[j] == 'lag' and g[j + 1] then l = l + g[j + 1] end
      end
    end
  end
end
return {p, l}" 16 "${audit_keys[@]}" | paste -sd' '
}
received() { curl -s "http://127.0.0.1:$recv_port/stats"; }
deliveries() { # "delivered retry dead filtered" from the gateway's metrics
  curl -s "http://127.0.0.1:$admin_port/metrics" | awk '
    /^dndgate_deliveries_total\{/ { match($0, /result="[a-z]+"/); r = substr($0, RSTART + 8, RLENGTH - 9); n[r] += $NF }
    END { printf "%d %d %d %d\n", n["delivered"], n["retry"], n["dead"], n["filtered"] }'
}

port=$(free_port)
admin_port=$(free_port)
recv_port=$(free_port)
config() { # config FILE WITH_ENDPOINT
  cat > "$1" <<EOF
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin_port"
public_url = "https://hooks.example.com"
redis_url = "redis://127.0.0.1:$rport/"
spool_dir = "$work/spool"
[events_out]
retry_delays = [$(python3 -c 'print(", ".join(["\"500ms\""] * 120))')]
timeout = "2s"
[tenants.acme]
api_tokens = ["bench-api-token"]
[tenants.acme.twilio]
auth_tokens = ["$token"]
account_sids = ["AC00000000000000000000000000000000"]
EOF
  if [ "$2" = yes ]; then
    cat >> "$1" <<EOF
[[tenants.acme.endpoints]]
id = "bench"
url = "http://127.0.0.1:$recv_port/dnd"
secrets = ["$secret"]
EOF
  fi
}
config "$work/none.toml" no
config "$work/one.toml" yes
start_gw() {
  rc flushall >/dev/null
  "$bin/dndgate" serve --config "$work/$1.toml" 2>>"$work/dndgate.log" & gw=$!
  wait_port "$port"; wait_port "$admin_port"
  sleep 1 # the workers create their groups
}
stop_gw() { kill "$gw"; wait "$gw" 2>/dev/null || true; gw=""; }
start_rcv() {
  "$bin/examples/bench-receiver" "127.0.0.1:$recv_port" "$secret" 2>/dev/null & rcv=$!
  wait_port "$recv_port"
}
stop_rcv() { kill "$rcv"; wait "$rcv" 2>/dev/null || true; rcv=""; }
load() { # load MIX SECONDS -> JSON line
  "$bin/examples/bench-load" --target "http://127.0.0.1:$port/webhooks/twilio/acme" \
    --token "$token" --connections "$conns" --seconds "$2" --mix "$1"
}
# run MIX: the load's JSON, then wall seconds, audit entries written, deliveries made
# (receiver's count) during it, and the backlog when it ends.
run() {
  local e0 d0 t0 out t1
  e0=$(entries); d0=$(received | python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])' 2>/dev/null || echo 0)
  rc config resetstat >/dev/null
  t0=$(now_ms)
  out=$(load "$1" "$secs")
  t1=$(now_ms)
  local d1
  d1=$(received | python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])' 2>/dev/null || echo 0)
  # Redis commands during the run (calls, µs per call): the apply script and the
  # delivery workers' reads, retry-state reads and finishes share the one server.
  echo "   redis: $(rc info commandstats | tr -d '\r' | awk -F'[:,=]' \
    '/^cmdstat_(evalsha|xreadgroup|hgetall|xadd|set):/ {printf "%s %s calls %s us/call; ", substr($1, 9), $3, $7}')" >&2
  echo "$out $(( t1 - t0 )) $(( $(entries) - e0 )) $(( d1 - d0 )) $(backlog)"
}

echo "== A: no endpoint, campaign mix then STOP storm (${secs} s each)" >&2
start_gw none
a_mix=$(run campaign); echo "   $a_mix" >&2
a_stop=$(run stop); echo "   $a_stop" >&2
stop_gw

echo "== M: no endpoint, Redis memory of a ${fill} s STOP storm" >&2
start_gw none
m0=$(used); load stop "$fill" >/dev/null; m1=$(used); m_n=$(entries)
echo "   used_memory $m0 -> $m1, $m_n entries" >&2
stop_gw

echo "== B: one endpoint, receiver up, campaign mix then STOP storm (${secs} s each)" >&2
start_rcv
start_gw one
b_mix=$(run campaign); echo "   $b_mix" >&2
b_stop=$(run stop); echo "   $b_stop" >&2
b_metrics=$(deliveries); b_refused=$(received)
echo "   gateway deliveries (delivered retry dead filtered): $b_metrics; receiver: $b_refused" >&2
stop_gw
stop_rcv

echo "== C: one endpoint, receiver down, ${fill} s STOP storm, then the receiver comes back" >&2
start_gw one
c0=$(used)
c_fill=$(load stop "$fill")
sleep 1
c1=$(used); c_n=$(entries); c_backlog=$(backlog)
echo "   $c_fill; used_memory $c0 -> $c1, $c_n entries, backlog (pending lag) $c_backlog" >&2
c_before=$(deliveries)
start_rcv
t0=$(now_ms)
while :; do
  read -r p l <<<"$(backlog)"
  [ "$((p + l))" -eq 0 ] && break
  if [ $(( $(now_ms) - t0 )) -gt $((drain_timeout * 1000)) ]; then echo "   drain timed out: backlog $p $l" >&2; break; fi
  sleep 0.1
done
t1=$(now_ms)
c_rcv=$(received); c_after=$(deliveries); c2=$(used); c_left=$(backlog)
echo "   drained in $(( t1 - t0 )) ms; receiver $c_rcv; gateway before $c_before after $c_after; used_memory $c2; backlog $c_left" >&2
stop_gw

python3 - "$a_mix" "$a_stop" "$b_mix" "$b_stop" "$m0" "$m1" "$m_n" "$c0" "$c1" "$c2" "$c_n" \
  "$c_backlog" "$c_fill" "$c_rcv" "$c_before" "$c_after" "$(( t1 - t0 ))" "$c_left" "$b_metrics" \
  "$(nproc)" "$conns" "$secs" "$fill" <<'PY'
import json, sys
a = sys.argv[1:]
def run(s):
    j, rest = s.split("} ", 1)
    r = json.loads(j + "}")
    wall, ents, dels, pend, lag = (int(x) for x in rest.split())
    return r, wall / 1000, ents, dels, pend + lag
a_mix, a_stop, b_mix, b_stop = (run(x) for x in a[0:4])
m0, m1, m_n, c0, c1, c2, c_n = (int(x) for x in a[4:11])
c_pend = sum(int(x) for x in a[11].split())
c_fill = json.loads(a[12])
rcv = json.loads(a[13])
before = [int(x) for x in a[14].split()]
after = [int(x) for x in a[15].split()]
drain_s = int(a[16]) / 1000
left = sum(int(x) for x in a[17].split())
b_metrics = a[18].split()
cores, conns, secs, fill = a[19:23]
print(f"Events out: one endpoint (a local hyper receiver that verifies every signature), "
      f"{conns} connections, {secs} s per ingest run, {cores} cores shared by the load "
      f"generator, the gateway, the receiver and Redis.\n")
print("| ingest | no endpoint: req/s, p99 ms | one endpoint: req/s, p99 ms | ratio (req/s) | events written/s | delivered/s during the run | backlog at the end |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, (r0, *_), (r1, wall, ents, dels, backlog) in (
    ("campaign mix", a_mix, b_mix), ("STOP storm", a_stop, b_stop)):
    print(f"| {name} | {r0['rps']:,.0f}, {r0['p99_ms']:.2f} | {r1['rps']:,.0f}, {r1['p99_ms']:.2f} "
          f"| {r1['rps'] / r0['rps']:.2f} | {ents / wall:,.0f} | {dels / wall:,.0f} | {backlog:,} |")
errors = sum(x[0]["errors"] for x in (a_mix, a_stop, b_mix, b_stop))
print(f"\nLoad errors in the four runs: {errors}. Gateway deliveries after B (delivered retry dead filtered): {' '.join(b_metrics)}.")
delivered = rcv["delivered"]
span = (rcv["last_ms"] - rcv["first_ms"]) / 1000
filtered = after[3] - before[3]
print()
print("| catch-up (receiver down during a STOP storm, then up) | measured |")
print("|---|---:|")
print(f"| STOP storm with the receiver down ({fill} s) | {c_fill['rps']:,.0f} req/s, p99 {c_fill['p99_ms']:.2f} ms, {c_fill['errors']} errors |")
print(f"| backlog when the receiver came back (pending + lag) | {c_pend:,} entries |")
print(f"| time from receiver start to backlog 0 | {drain_s:.2f} s (backlog left: {left}) |")
print(f"| delivered (receiver's count, verified), filtered (no event) | {delivered:,}, {filtered:,} ({rcv['refused']} refused) |")
print(f"| deliveries/s, first to last delivery | {delivered / span if span > 0 else 0:,.0f} |")
print(f"| deliveries/s, receiver start to backlog 0 | {delivered / drain_s if drain_s > 0 else 0:,.0f} |")
print()
print("| Redis used_memory per audit entry (everything a STOP storm writes: records, dedup markers, audit) | bytes |")
print("|---|---:|")
print(f"| no endpoint ({m_n:,} entries) | {(m1 - m0) / m_n:.1f} |")
print(f"| one endpoint, all pending, receiver down ({c_n:,} entries) | {(c1 - c0) / c_n:.1f} |")
print(f"| one endpoint, after delivery | {(c2 - c0) / c_n:.1f} |")
PY
