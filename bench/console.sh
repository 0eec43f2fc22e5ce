#!/usr/bin/env bash
# What the operator console costs on a big tenant: N records (default 1,000,000) in
# dndgate's layout, written by one server-side loop as bench/memory.sh does, then a
# release gateway; a session signs in over HTTP and times ROUNDS (default 5) loads of
# the overview (which counts every record of the tenant), the contact page of one
# address, and the export (every blocking record as CSV). Prints the median and the
# slowest of each, with the gateway's peak RSS.
#
#   bench/console.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
rounds=${2:-5}
cargo build --release --quiet --bin dndgate
bin=$PWD/target/release
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

work=$(mktemp -d)
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --daemonize yes --logfile "$work/redis.log" >/dev/null
gw=
trap 'kill $gw 2>/dev/null || true; redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
# Two thirds permanent STOPs on sms, one third temporary 30003 failures that block
# until far ahead: what a tenant after a few years of campaigns holds.
redis-cli -p "$rport" eval "
for i = 0, tonumber(ARGV[1]) - 1 do
  local a = '+1555' .. string.format('%07d', i)
  local h = redis.sha1hex(a)
  local key = 'dnd:{acme:' .. string.sub(h, 1, 1) .. '}:' .. string.sub(h, 2, 4)
  local v = 'P|1764300000123||keyword:STOP|twilio'
  if i % 3 == 0 then v = 'T|1764300000123|4102444800000|twilio:30003|twilio' end
  redis.call('HSET', key, 'sms:' .. a, v)
end
return 1" 0 "$n" >/dev/null

port=$(free_port)
admin=$(free_port)
cat > "$work/dndgate.toml" <<TOML
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
public_url = "http://127.0.0.1:$port"
redis_url = "redis://127.0.0.1:$rport/"
redis_timeout = "30s"
[tenants.acme]
api_tokens = ["bench-api-token"]
TOML
"$bin/dndgate" serve --config "$work/dndgate.toml" 2>"$work/dndgate.log" & gw=$!
wait_port "$admin"
base="http://127.0.0.1:$admin/console"

# Sign in as a browser would: the form's cookie and token, then the session cookie.
jar="$work/cookies"
csrf=$(curl -s -c "$jar" "$base/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' | head -1)
curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' \
  --data-urlencode "csrf=$csrf" --data-urlencode tenant=acme --data-urlencode token=bench-api-token \
  "$base/login" | grep -q 303 || { echo "sign-in failed" >&2; exit 1; }

time_page() {
  local what=$1 url=$2
  local times=()
  for _ in $(seq "$rounds"); do
    times+=("$(curl -s -b "$jar" -o "$work/page" -w '%{http_code} %{time_total} %{size_download}' "$url")")
  done
  printf '%s\n' "${times[@]}" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
codes = {r[0] for r in rows}
secs = sorted(float(r[1]) for r in rows)
size = int(rows[-1][2])
status = ",".join(sorted(codes))
print(f"{sys.argv[1]}: median {secs[len(secs)//2]*1000:.0f} ms, slowest {secs[-1]*1000:.0f} ms, {size:,} bytes, status {status}")
' "$what"
}

echo "redis $(redis-server --version | awk '{print $3}'), $n records of tenant acme, $rounds rounds each"
time_page "overview (counts every record)" "$base/overview"
time_page "contact page" "$base/contact?address=%2B15550000001"
time_page "export.csv (every blocking record)" "$base/export.csv"
echo "gateway peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$gw/status)"
