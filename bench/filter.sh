#!/usr/bin/env bash
# Bulk throughput: `dndgate import` and `dndgate filter` on N rows each (default
# 1,000,000) through the release binary, each run against a fresh redis-server
# (`appendonly yes`, `appendfsync everysec`, as in bench/run.sh), with the pipelined
# `redis-benchmark -t get -P 16` on the same server as the reference for filter.
#
#   bench/filter.sh [N [ROUNDS [OLD_BINARY]]]
#
# N rows (default 1000000), ROUNDS rounds (default 3). With OLD_BINARY (a dndgate
# built from another commit), every round runs the old binary and then this tree's,
# each on its own fresh redis-server, so before and after share the machine's load;
# the last lines are the median and the spread (min to max) per binary.
#
# Files: a contacts CSV (`id,name,phone`, names quoted with commas in them, every
# number distinct) and a suppression list of N numbers for `import --format list`:
# every 20th contact's number (5% of the contacts end up on DND) and numbers no
# contact has. Per run: import the list (checked: `imported N, already present 0,
# bad 0`), then filter the contacts (checked: exactly N minus the blocked rows out).
# Each run prints wall time, rows/s, user and system CPU, and peak RSS (GNU time's
# "Maximum resident set size"); filter also the redis-server CPU it caused.
set -euo pipefail
n=${1:-1000000}
rounds=${2:-3}
old=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --quiet --bin dndgate)
new=$target/release/dndgate
if [ -n "$old" ] && [ ! -x "$old" ]; then
  echo "no binary at $old" >&2
  exit 1
fi

work=$(mktemp -d)
port=
stop_redis() {
  if [ -n "$port" ]; then
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    port=
  fi
}
trap 'stop_redis; rm -rf "$work"' EXIT

# A fresh redis-server on a free port, its data in a fresh directory.
start_redis() {
  local dir
  dir=$(mktemp -d -p "$work")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$dir" --daemonize yes --logfile "$dir/redis.log" >/dev/null
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
  cat >"$work/dndgate.toml" <<TOML
public_url = "https://hooks.example.com"
redis_url = "redis://127.0.0.1:$port/"

[tenants.bench]
api_tokens = ["bench-token"]
TOML
}

# Contacts: +1 555 and 7 digits; every 20th also on the list, which N - N/20 numbers
# (+1 666 ...) no contact has make N rows long.
awk -v n="$n" -v dnd="$work/dnd.txt" 'BEGIN {
  print "id,name,phone"
  for (i = 0; i < n; i++) {
    phone = sprintf("+1555%07d", i)
    printf "%d,\"Contact %d, Example\",%s\n", i, i, phone
    if (i % 20 == 0) print phone > dnd
    else printf "+1666%07d\n", i > dnd
  }
}' >"$work/contacts.csv"
blocked=$(grep -c '^+1555' "$work/dnd.txt")
listed=$(wc -l <"$work/dnd.txt")

now() { date +%s.%N; }
redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { print s }'; }
results=$work/results
: >"$results"

# run LABEL BINARY: one import and one filter on a fresh redis-server.
run() {
  local label=$1 bin=$2 t0 t1 c0 c1
  start_redis
  t0=$(now)
  /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" import --config "$work/dndgate.toml" --tenant bench \
    --format list "$work/dnd.txt" >"$work/import.out" 2>"$work/import.err" || true
  t1=$(now)
  if [ "$(cat "$work/import.out")" != "imported $listed, already present 0, bad 0" ]; then
    echo "FAIL: $label import: $(cat "$work/import.out") $(cat "$work/import.err")" >&2
    exit 1
  fi
  read -r user sys rss < <(tail -1 "$work/time")
  awk -v l="$label" -v a="$t0" -v b="$t1" -v n="$listed" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {
    printf "%-4s import: %d rows in %.2f s, %.0f rows/s, cpu user %.2f s sys %.2f s, peak rss %.1f MiB\n", l, n, b - a, n / (b - a), u, s, r / 1024
    printf "%s import %.0f %.2f %.1f\n", l, n / (b - a), b - a, r / 1024 >> "'"$results"'"
  }'

  c0=$(redis_cpu)
  t0=$(now)
  /usr/bin/time -f "%U %S %M" -o "$work/time" "$bin" filter --config "$work/dndgate.toml" --tenant bench \
    --channel sms <"$work/contacts.csv" >"$work/sendable.csv" 2>"$work/filter.err" || true
  t1=$(now)
  c1=$(redis_cpu)
  local rows=$(($(wc -l <"$work/sendable.csv") - 1)) want=$((n - blocked))
  if [ "$rows" -ne "$want" ] || [ "$(cat "$work/filter.err")" != "read $n, sendable $want, blocked $blocked, invalid 0" ]; then
    echo "FAIL: $label filter: $rows rows out, expected $want; $(cat "$work/filter.err")" >&2
    exit 1
  fi
  read -r user sys rss < <(tail -1 "$work/time")
  awk -v l="$label" -v a="$t0" -v b="$t1" -v n="$n" -v u="$user" -v s="$sys" -v r="$rss"\
    -v c0="$c0" -v c1="$c1" 'BEGIN {
    printf "%-4s filter: %d rows in %.2f s, %.0f rows/s, cpu user %.2f s sys %.2f s, redis-server cpu %.2f s, peak rss %.1f MiB\n", l, n, b - a, n / (b - a), u, s, c1 - c0, r / 1024
    printf "%s filter %.0f %.2f %.1f\n", l, n / (b - a), b - a, r / 1024 >> "'"$results"'"
  }'
  stop_redis
}

# The reference: pipelined GETs on a fresh server of the same configuration.
reference() {
  start_redis
  local rps
  rps=$(redis-benchmark -p "$port" -t get -P 16 -n "$n" --csv | awk -F'"' '$2 == "GET" { print $4 }')
  echo "ref  redis-benchmark -t get -P 16 -n $n: $rps requests/s"
  echo "ref get $rps 0 0" >>"$results"
  stop_redis
}

for round in $(seq 1 "$rounds"); do
  echo "round $round"
  if [ -n "$old" ]; then run old "$old"; fi
  run new "$new"
  reference
done

echo "medians over $rounds rounds (min .. max):"
for label in old new ref; do
  for what in import filter get; do
    vals=$(awk -v l="$label" -v w="$what" '$1 == l && $2 == w { print $3 }' "$results" | sort -n)
    [ -n "$vals" ] || continue
    rss=$(awk -v l="$label" -v w="$what" '$1 == l && $2 == w { print $5 }' "$results" | sort -n | tail -1)
    echo "$vals" | awk -v l="$label" -v w="$what" -v rss="$rss" '{ v[NR] = $1 } END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%-4s %-6s median %.0f /s (%.0f .. %.0f)", l, w, m, v[1], v[NR]
      if (w != "get") printf ", peak rss up to %s MiB", rss
      printf "\n"
    }'
  done
done
if grep -q '^ref get' "$results"; then
  awk '$1 == "ref" { r[++nr] = $3 } $1 == "new" && $2 == "filter" { f[++nf] = $3 }
    END { for (i = 1; i <= nf && i <= nr; i++) printf "round %d: new filter / redis-benchmark GET -P 16 = %.2f\n", i, f[i] / r[i] }' "$results"
fi
