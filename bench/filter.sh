#!/usr/bin/env bash
# `dndgate filter` throughput: N contacts (default 1,000,000) through the release
# binary against a scratch redis-server on a free port, with 5% of them on DND.
#
#   bench/filter.sh [N]
#
# Steps: build the release binary, start redis-server, write a configuration, generate
# a contacts CSV (`id,name,phone`, names quoted with commas in them), put every 20th
# number on DND with `dndgate import --format list` (timed too), then time
# `dndgate filter --channel sms` and check that exactly N minus the blocked rows
# come out.
set -euo pipefail
n=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --quiet)
bin=$target/release/dndgate

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes \
  --logfile "$dir/redis.log" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

cat >"$dir/dndgate.toml" <<TOML
public_url = "https://hooks.example.com"
redis_url = "redis://127.0.0.1:$port/"

[tenants.bench]
api_tokens = ["bench-token"]
TOML

# Contacts: +1 555 and 7 digits, unique; every 20th goes on the DND list.
awk -v n="$n" -v dnd="$dir/dnd.txt" 'BEGIN {
  print "id,name,phone"
  for (i = 0; i < n; i++) {
    phone = sprintf("+1555%07d", i)
    printf "%d,\"Contact %d, Example\",%s\n", i, i, phone
    if (i % 20 == 0) print phone > dnd
  }
}' >"$dir/contacts.csv"
blocked=$(wc -l <"$dir/dnd.txt")

now() { date +%s.%N; }
t0=$(now)
/usr/bin/time -f "import cpu: user %U s, sys %S s" "$bin" import --config "$dir/dndgate.toml" --tenant bench --format list "$dir/dnd.txt" >"$dir/import.out"
t1=$(now)
echo "import: $(cat "$dir/import.out") in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s (%.0f rows/s)", b - a, '"$blocked"' / (b - a) }')"

redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { print s }'; }
c0=$(redis_cpu)
t0=$(now)
/usr/bin/time -f "filter cpu: user %U s, sys %S s, max rss %M KB" "$bin" filter --config "$dir/dndgate.toml" --tenant bench --channel sms \
  <"$dir/contacts.csv" >"$dir/sendable.csv" 2>"$dir/filter.err"
t1=$(now)
c1=$(redis_cpu)
sed 's/^/filter: /' "$dir/filter.err"
awk -v a="$c0" -v b="$c1" 'BEGIN { printf "filter: redis-server cpu %.2f s\n", b - a }'
awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "filter: %d contacts in %.2f s, %.0f rows/s\n", n, b - a, n / (b - a) }'

# The output: the header plus every contact not on the list (rows have no newlines).
rows=$(($(wc -l <"$dir/sendable.csv") - 1))
want=$((n - blocked))
if [ "$rows" -ne "$want" ]; then
  echo "FAIL: $rows rows out, expected $want ($n - $blocked blocked)" >&2
  exit 1
fi
echo "ok: $rows rows out = $n - $blocked blocked"
