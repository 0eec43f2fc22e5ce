#!/usr/bin/env bash
# Redis bytes per applied opt-out, everything an event writes included (its records,
# audit entries and dedup mark), measured through the gateway: N signed Twilio STOPs
# from distinct numbers posted to a release dndgate, then Redis's used_memory before
# and after, and MEMORY USAGE summed by key kind.
#
#   bench/footprint.sh [N ...]     # default: 100000 1000000
#
# Each N runs on a fresh redis-server without persistence (memory is the same either
# way) and a fresh gateway. A STOP by SMS writes two records (sms and voice, SPEC
# section 6) and two audit entries, so "per record" is per record and "per opt-out"
# is per event.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
token=bench-twilio-token
cargo build --release --quiet --bin dndgate --example bench-load
bin=$PWD/target/release
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

for n in "${sizes[@]}"; do
  work=$(mktemp -d)
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
    --daemonize yes --logfile "$work/redis.log" >/dev/null
  until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
  port=$(free_port)
  cat > "$work/dndgate.toml" <<TOML
listen = "127.0.0.1:$port"
admin_listen = "off"
public_url = "https://hooks.example.com"
redis_url = "redis://127.0.0.1:$rport/"
[tenants.acme]
api_tokens = ["bench-api-token"]
[tenants.acme.twilio]
auth_tokens = ["$token"]
account_sids = ["AC00000000000000000000000000000000"]
TOML
  "$bin/dndgate" serve --config "$work/dndgate.toml" 2>"$work/dndgate.log" & gw=$!
  wait_port "$port"
  used() { redis-cli -p "$rport" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }
  before=$(used)
  load=$("$bin/examples/bench-load" --target "http://127.0.0.1:$port/webhooks/twilio/acme" \
    --token "$token" --mix opt-outs --requests "$n" --connections 64)
  kill "$gw"; wait "$gw" 2>/dev/null || true
  after=$(used)
  # Every key's MEMORY USAGE (all elements sampled), summed by kind.
  redis-cli -p "$rport" --scan > "$work/keys"
  sed 's/.*/MEMORY USAGE & SAMPLES 0/' "$work/keys" | redis-cli -p "$rport" > "$work/usage"
  events=$(redis-cli -p "$rport" --scan --pattern '*:seen:*' | sed 's/^/SCARD /' | redis-cli -p "$rport" | awk '{s+=$1} END {print s+0}')
  records=$(grep -E '^dnd:\{[^}]*\}:[0-9a-f]{3}$' "$work/keys" | sed 's/^/HLEN /' | redis-cli -p "$rport" | awk '{s+=$1} END {print s+0}')
  entries=$(grep -E ':audit$' "$work/keys" | sed 's/^/XLEN /' | redis-cli -p "$rport" | awk '{s+=$1} END {print s+0}')
  python3 - "$n" "$load" "$before" "$after" "$events" "$records" "$entries" "$work/keys" "$work/usage" <<'PY'
import json, re, sys
n, load, before, after, events, records, entries, keys, usage = sys.argv[1:]
load = json.loads(load)
events, records, entries = int(events), int(records), int(entries)
kinds = {}
for k, u in zip(open(keys).read().split(), open(usage).read().split()):
    if re.search(r'^dnd:\{[^}]*\}:[0-9a-f]{3}$', k): kind = 'records'
    elif k.endswith(':audit'): kind = 'audit entries'
    elif ':seen:' in k: kind = 'dedup marks'
    else: kind = 'other'
    c, b = kinds.get(kind, (0, 0))
    kinds[kind] = (c + 1, b + int(u))
total = int(after) - int(before)
print(f"N={int(n):,} STOPs sent: {load['requests']:,} answered, {load['errors']} errors, {load['rps']:,.0f} req/s")
print(f"applied opt-outs (dedup marks) {events:,}, records {records:,}, audit entries {entries:,}")
print(f"used_memory {int(before):,} -> {int(after):,}: {total / events:.1f} bytes per opt-out (target: at most 250)")
for kind, per in [('records', records), ('audit entries', entries), ('dedup marks', events)]:
    c, b = kinds.get(kind, (0, 0))
    print(f"  {kind}: {c:,} keys, MEMORY USAGE {b:,} B: {b / max(per, 1):.1f} B each, {b / max(events, 1):.1f} B per opt-out")
c, b = kinds.get('other', (0, 0))
print(f"  other keys: {c:,}, {b:,} B")
PY
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
done
