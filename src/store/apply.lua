-- dndgate: apply one classified event to the DND records of one address, atomically.
--
-- KEYS[1]  record bucket hash   dnd:{TENANT:S}:BBB
-- KEYS[2]  audit stream         dnd:{TENANT:S}:audit
-- KEYS[3]  dedup marker         dnd:{TENANT:S}:seen:PROVIDER:EVENT_ID
-- ARGV     action, event_ms, received_ms, now_ms, ttl_ms, reason, source (provider name
--          or operator), provider,
--          event_id, dedup_ttl_s, audit_max_len, address, tenant, then the fields
--          (SCOPE:ADDRESS), one per scope the event touches.
--
-- Record value: STATE|EVENT_MS|EXPIRES_MS|REASON|SOURCE with STATE P (permanent),
-- T (temporary, blocks until EXPIRES_MS) or C (cleared: allowed; kept so that a late,
-- older event cannot undo a newer opt-in).
--
-- Returns, per field: {field, outcome, after}, or {'duplicate'} when the event was
-- applied before. Outcomes: applied, superseded, kept_permanent, review, help, noop.

local record, audit, seen = KEYS[1], KEYS[2], KEYS[3]
local action = ARGV[1]
local event_ms = tonumber(ARGV[2])
local received_ms = ARGV[3]
local now_ms = tonumber(ARGV[4])
local ttl_ms = tonumber(ARGV[5])
local reason, source, provider, event_id = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local dedup_ttl = tonumber(ARGV[10])
local max_len = ARGV[11]
local address, tenant = ARGV[12], ARGV[13]

if redis.call('EXISTS', seen) == 1 then
  return {'duplicate'}
end

-- The state that blocks now (nil for none, cleared or expired) and the event time
-- that guards the record (nil when there is no live record).
local function current(value)
  if not value then return nil, nil end
  local state, ev, exp = string.match(value, '^(%a)|(%d+)|(%d*)|')
  if not state then return nil, nil end
  ev = tonumber(ev)
  if state == 'T' and (exp == '' or tonumber(exp) <= now_ms) then
    return nil, nil
  end
  return state, ev
end

local function record_value(state, expires)
  return state .. '|' .. event_ms .. '|' .. expires .. '|' .. reason .. '|' .. source
end

local results = {}
local recorded = false
for i = 14, #ARGV do
  local field = ARGV[i]
  local before = redis.call('HGET', record, field)
  local state, ev = current(before)
  local outcome, after = 'noop', nil
  if action == 'review' or action == 'help' then
    outcome = action
  elseif action == 'reachable' and state ~= 'T' then
    outcome = 'noop'
  elseif ev and event_ms < ev then
    outcome = 'superseded'
  elseif action == 'block_permanent' then
    outcome, after = 'applied', record_value('P', '')
  elseif action == 'block_temporary' then
    if state == 'P' then
      outcome = 'kept_permanent'
    else
      outcome, after = 'applied', record_value('T', tostring(event_ms + ttl_ms))
    end
  elseif action == 'unblock' then
    outcome, after = 'applied', record_value('C', '')
  elseif action == 'reachable' then
    if state == 'T' then
      outcome, after = 'applied', record_value('C', '')
    end
  else
    return redis.error_reply('unknown action ' .. action)
  end
  if after then
    redis.call('HSET', record, field, after)
  end
  if outcome ~= 'noop' then
    recorded = true
    redis.call('XADD', audit, 'MAXLEN', '~', max_len, '*',
      'tenant', tenant, 'scope', string.match(field, '^([^:]+):'), 'address', address,
      'action', action, 'outcome', outcome,
      'before', before or '', 'after', after or before or '',
      'reason', reason, 'provider', provider, 'event_id', event_id,
      'event_ms', tostring(event_ms), 'received_ms', received_ms)
  end
  results[#results + 1] = {field, outcome, after or before or ''}
end

-- An event that changed or reported nothing leaves no marker: there is nothing to
-- apply twice, and delivery receipts would otherwise fill memory.
if recorded then
  redis.call('SET', seen, '1', 'EX', dedup_ttl)
end
return results
