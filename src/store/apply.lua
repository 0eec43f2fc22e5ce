-- dndgate: apply one change to the DND records of one address, atomically.
--
-- KEYS[1]   record bucket hash   dnd:{TENANT:S}:BBB
-- KEYS[2]   audit stream         dnd:{TENANT:S}:audit
-- KEYS[3]   dedup marker         dnd:{TENANT:S}:seen:PROVIDER:EVENT_ID
-- KEYS[3+i] failure window of the i-th field, dnd:{TENANT:S}:fails:SCOPE:ADDRESS
-- ARGV[1]   the change, as JSON (see store::Change); times are decimal strings of ms.
--
-- Record value: STATE|EVENT_MS|EXPIRES_MS|REASON|SOURCE with STATE P (permanent),
-- M (permanent for marketing messages only), T (temporary, blocks until EXPIRES_MS)
-- or C (cleared: allowed; kept so that a late, older event cannot undo a newer
-- change).
--
-- Returns, per field: {field, outcome, after}, or {'duplicate'} when the event was
-- applied before. Outcomes: applied, escalated, superseded, kept_permanent, refused,
-- review, help, noop.

local record, audit, seen = KEYS[1], KEYS[2], KEYS[3]
local c = cjson.decode(ARGV[1])
local event_ms_text = c.event_ms
local event_ms = tonumber(event_ms_text)
local now_ms = tonumber(c.now_ms)
local action = c.action

if redis.call('EXISTS', seen) == 1 then
  return {'duplicate'}
end

-- The state that blocks now (nil for none, cleared or expired) and the event time
-- that guards the record (nil when there is no live record).
local function current(value)
  if not value then return nil, nil end
  local state, ev, exp = string.match(value, '^(%a)|(%d+)|(%d*)|')
  if not state then return nil, nil end
  if state == 'T' and (exp == '' or tonumber(exp) <= now_ms) then
    return nil, nil
  end
  return state, tonumber(ev)
end

local function record_value(state, expires, reason)
  return state .. '|' .. event_ms_text .. '|' .. expires .. '|' .. reason .. '|' .. c.source
end

local function temporary_expiry()
  return string.format('%d', event_ms + tonumber(c.ttl_ms))
end

-- An operator clear without evidence is all or nothing: if any record it names is
-- permanent, every field is refused, so a request never half-applies.
local refuse_all = false
if action == 'clear' and not c.evidence then
  for _, field in ipairs(c.fields) do
    local state = current(redis.call('HGET', record, field))
    if state == 'P' or state == 'M' then refuse_all = true end
  end
end

local results = {}
local wrote = false
for i, field in ipairs(c.fields) do
  local fails = KEYS[3 + i]
  local before = redis.call('HGET', record, field)
  local state, ev = current(before)
  local outcome, after = 'noop', nil
  local reason = c.reason
  if action == 'review' or action == 'help' then
    outcome = action
  elseif action == 'reachable' and state ~= 'T' then
    outcome = 'noop'
  elseif action == 'unblock_marketing' and state ~= 'M' then
    -- A resume of marketing lifts a marketing-only record and nothing stronger.
    outcome = 'noop'
  elseif ev and event_ms < ev then
    outcome = 'superseded'
  elseif action == 'block_permanent' then
    outcome, after = 'applied', record_value('P', '', reason)
  elseif action == 'block_marketing' then
    if state == 'P' then
      outcome = 'kept_permanent'
    else
      outcome, after = 'applied', record_value('M', '', reason)
    end
  elseif action == 'block_temporary' then
    if state == 'P' or state == 'M' then
      outcome = 'kept_permanent'
    else
      -- Escalation: count the failures inside the window, this one included.
      local window = tonumber(c.escalate_window_ms)
      redis.call('ZREMRANGEBYSCORE', fails, '-inf', '(' .. string.format('%d', event_ms - window))
      redis.call('ZADD', fails, event_ms_text, c.event_id)
      redis.call('PEXPIRE', fails, string.format('%d', window))
      if redis.call('ZCARD', fails) >= tonumber(c.escalate_count) then
        reason = 'escalated:' .. reason
        outcome, after = 'escalated', record_value('P', '', reason)
        redis.call('DEL', fails)
      else
        outcome, after = 'applied', record_value('T', temporary_expiry(), reason)
      end
    end
  elseif action == 'unblock' or action == 'reachable' or action == 'unblock_marketing' then
    outcome, after = 'applied', record_value('C', '', reason)
  elseif action == 'clear' then
    if refuse_all then
      outcome = 'refused'
    else
      outcome, after = 'applied', record_value('C', '', reason)
    end
  else
    return redis.error_reply('unknown action ' .. tostring(action))
  end
  if after then
    wrote = true
    redis.call('HSET', record, field, after)
    if string.sub(after, 1, 1) == 'C' then
      redis.call('DEL', fails)
    end
  end
  if outcome ~= 'noop' then
    local entry = {
      'tenant', c.tenant, 'scope', string.match(field, '^([^:]+):'), 'address', c.address,
      'action', action, 'outcome', outcome,
      'before', before or '', 'after', after or before or '',
      'reason', reason, 'provider', c.provider, 'event_id', c.event_id,
      'event_ms', event_ms_text, 'received_ms', c.received_ms,
    }
    for _, k in ipairs({'actor', 'evidence', 'contact'}) do
      if c[k] then
        entry[#entry + 1] = k
        entry[#entry + 1] = c[k]
      end
    end
    redis.call('XADD', audit, 'MAXLEN', '~', c.audit_max_len, '*', unpack(entry))
  end
  results[#results + 1] = {field, outcome, after or before or ''}
end

-- Expired temporary records block nothing; when this bucket is written anyway, drop
-- them so memory does not grow with every bounce ever seen. (Readers never need this:
-- they compare EXPIRES_MS with their clock.)
if wrote then
  local all = redis.call('HGETALL', record)
  for j = 1, #all, 2 do
    local exp = string.match(all[j + 1], '^T|%d+|(%d+)|')
    if exp and tonumber(exp) <= now_ms then
      redis.call('HDEL', record, all[j])
    end
  end
end

-- An event that changed or reported nothing leaves no marker: there is nothing to
-- apply twice, and delivery receipts would otherwise fill memory. A refused change
-- leaves none either, so the same request can succeed once it carries evidence.
local marked = false
for _, r in ipairs(results) do
  if r[2] ~= 'noop' and r[2] ~= 'refused' then marked = true end
end
if marked then
  redis.call('SET', seen, '1', 'EX', c.dedup_ttl_s)
end
return results
