#!/usr/bin/env bash
# Redis memory per DND record at N records (default 1,000,000), in dndgate's layout
# (README, "The Redis contract"): a scratch redis-server on a free port, records
# written by one server-side loop, used_memory before and after.
#
#   bench/memory.sh [N]
#
# Two thirds of the records are permanent STOPs, one third temporary 30003 failures,
# with the values dndgate writes. Dedup markers and audit entries are not counted: they
# are per event, trimmed (audit_max_len) and expiring (dedup_ttl), not per record.
set -euo pipefail
n=${1:-1000000}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes \
  --logfile "$dir/redis.log" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

used() { redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
before=$(used)
redis-cli -p "$port" eval "
for i = 0, tonumber(ARGV[1]) - 1 do
  local a = '+1555' .. string.format('%07d', i)
  local h = redis.sha1hex(a)
  local key = 'dnd:{acme:' .. string.sub(h, 1, 1) .. '}:' .. string.sub(h, 2, 4)
  local v = 'P|1764300000123||keyword:STOP|twilio'
  if i % 3 == 0 then v = 'T|1764300000123|1764559200123|twilio:30003|twilio' end
  redis.call('HSET', key, 'sms:' .. a, v)
end
return 1" 0 "$n" >/dev/null
after=$(used)
keys=$(redis-cli -p "$port" dbsize)
enc=$(redis-cli -p "$port" --raw object encoding "$(redis-cli -p "$port" --raw randomkey)")
echo "redis $(redis-server --version | awk '{print $3}'), $n records in $keys hashes ($enc)"
echo "used_memory: $before -> $after bytes"
awk -v b="$before" -v a="$after" -v n="$n" 'BEGIN { printf "bytes per record: %.1f (target: at most 100)\n", (a - b) / n }'
