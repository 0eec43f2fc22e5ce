-- dndgate: audit that one temporary record ran out, once (the sweeper's half of the
-- expiry index; apply.lua audits the expiries it comes across itself).
--
-- KEYS[1] record bucket hash  dnd:{TENANT:S}:BBB
-- KEYS[2] audit stream        dnd:{TENANT:S}:audit
-- KEYS[3] expiry index        dnd:{TENANT:S}:expiring (member FIELD\nVALUE)
-- ARGV[1] the member; ARGV[2] the tenant.
--
-- Returns 1 when it audited an expiry, 0 when there was nothing to do (the record was
-- rewritten or audited since, or has not run out by Redis's clock).

local bucket, audit, expiring = KEYS[1], KEYS[2], KEYS[3]
local member = ARGV[1]
local field, value = string.match(member, '^(.-)\n(.*)$')
if not field then
  redis.call('ZREM', expiring, member)
  return 0
end
local exp, reason, source = string.match(value, '^T|%-?%d+|(%d+)|([^|]*)|(.*)$')
local clock = redis.call('TIME')
local clock_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if not exp or tonumber(exp) > clock_ms then
  if not exp then redis.call('ZREM', expiring, member) end
  return 0
end
if redis.call('ZREM', expiring, member) == 0 then return 0 end
if redis.call('HGET', bucket, field) ~= value then return 0 end
local scope, address = string.match(field, '^([^:]+):(.*)$')
redis.call('XADD', audit, '*',
  'tenant', ARGV[2], 'scope', scope, 'address', address,
  'action', 'expire', 'outcome', 'expired', 'before', value, 'after', value,
  'reason', reason, 'provider', source, 'event_id', 'expired:' .. exp,
  'event_ms', exp, 'received_ms', string.format('%d', clock_ms))
-- It blocks nothing any more; dropping it keeps memory to live records.
redis.call('HDEL', bucket, field)
return 1
