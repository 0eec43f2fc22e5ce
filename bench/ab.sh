#!/usr/bin/env bash
# A/B: what a change costs. Builds REV (default: the commit before HEAD) and this tree
# in release mode, then measures both against one redis-server in one run, alternating,
# so the machine's mood of the day falls on both sides alike:
#
#   bench/ab.sh 708aad6                 # lookups: 3 rounds; ingest: 2 rounds
#   SECONDS_PER_RUN=10 ROUNDS=5 bench/ab.sh 708aad6
#
# Prints one JSON line per measurement, prefixed with the round and the side (base or
# head): bench-lookup single (64 concurrent checks through the Rust API), batch (10,000
# addresses), bench-load ingest (signed Twilio callbacks, the campaign mix, 64
# connections) and Redis's apply-script calls and µs per call during that ingest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rev=${1:-HEAD~1}
secs=${SECONDS_PER_RUN:-6}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
base_tree="$work/base"
rport=""
cleanup() {
  [ -n "${gw:-}" ] && kill "$gw" 2>/dev/null || true
  [ -n "$rport" ] && redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  git -C "$root" worktree remove --force "$base_tree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

echo "== building $rev and this tree (release)" >&2
git worktree add --detach --quiet "$base_tree" "$rev"
(cd "$base_tree" && cargo build --release --quiet --bin dndgate --example bench-load --example bench-lookup)
cargo build --release --quiet --bin dndgate --example bench-load --example bench-lookup
bin_of() { if [ "$1" = base ]; then echo "$base_tree/target/release"; else echo "$root/target/release"; fi; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize yes --logfile "$work/redis.log" >/dev/null
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
url="redis://127.0.0.1:$rport/"
# A third of 200,000 numbers on DND, as bench/run.sh seeds them.
redis-cli -p "$rport" --eval bench/seed-lookups.lua >/dev/null

echo "== lookups" >&2
for round in $(seq "$rounds"); do
  for side in base head; do
    bin=$(bin_of "$side")
    echo "round $round $side single: $("$bin/examples/bench-lookup" single --redis "$url" --concurrency 64 --seconds "$secs")"
    echo "round $round $side batch: $("$bin/examples/bench-lookup" batch --redis "$url" --size 10000 --runs 30)"
  done
done

echo "== ingest" >&2
for round in $(seq $(( rounds > 2 ? 2 : rounds ))); do
  for side in base head; do
    bin=$(bin_of "$side")
    port=$(free_port)
    # admin_listen is named only where the build knows it (it came with issue 12).
    admin=""
    if grep -q admin_listen "$( [ "$side" = base ] && echo "$base_tree" || echo "$root")/src/config.rs"; then
      admin='admin_listen = "off"'
    fi
    cat > "$work/dndgate.toml" <<EOF
listen = "127.0.0.1:$port"
$admin
public_url = "https://hooks.example.com"
redis_url = "$url"
spool_dir = "$work/spool-$side-$round"
[tenants.acme]
api_tokens = ["bench-api-token"]
[tenants.acme.twilio]
auth_tokens = ["bench-twilio-token"]
account_sids = ["AC00000000000000000000000000000000"]
EOF
    "$bin/dndgate" serve --config "$work/dndgate.toml" 2>"$work/gw.log" & gw=$!
    wait_port "$port"
    redis-cli -p "$rport" config resetstat >/dev/null
    echo "round $round $side ingest: $("$bin/examples/bench-load" --target "http://127.0.0.1:$port/webhooks/twilio/acme" --token bench-twilio-token --connections 64 --seconds "$secs")"
    echo "round $round $side evalsha calls, µs per call: $(redis-cli -p "$rport" info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_evalsha:/ {print $3, $7}')"
    kill "$gw"; wait "$gw" 2>/dev/null || true; gw=""
  done
done
