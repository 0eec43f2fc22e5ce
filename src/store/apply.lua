-- dndgate: apply changes to the DND records of addresses, each change atomically and
-- in the order given. The store sends the changes that arrive together in one call
-- (group commit); every key of one call shares one hash tag on Redis Cluster.
--
-- ARGV holds each change in turn: the number of keys it names, then (all text; times
-- are decimal ms) SEEN (its dedup digest), SEEN_TTL_S, ACTION, EVENT_MS, RECEIVED_MS,
-- NOW_MS, TTL_MS, ESCALATE_COUNT, ESCALATE_WINDOW_MS, MAX_SKEW_MS, FLOOR_MS, REASON,
-- SOURCE, EVENT_ID, ADDRESS, TENANT, ACTOR, EVIDENCE, CONTACT (these three '' for
-- none, else '=' and the value), the number of fields, and the fields (SCOPE:ADDRESS).
-- Positional, not JSON: decoding JSON was a third of a duplicate's cost. KEYS holds
-- each change's keys in turn:
--
-- K[1]   record bucket hash   dnd:{TENANT:S}:BBB
-- K[2]   audit stream         dnd:{TENANT:S}:audit
-- K[3]   dedup set, this window      dnd:{TENANT:S}:seen:W:NN
-- K[4]   dedup set, the window before  dnd:{TENANT:S}:seen:(W-1):NN
--        (integer members: a 64-bit digest of PROVIDER:EVENT_ID, so a set of up to
--        512 stays an intset of 8 bytes a member; the window is dedup_ttl long and a
--        set lives two windows, so an event is remembered at least dedup_ttl)
-- K[4+i] failure window of the i-th field, dnd:{TENANT:S}:fails:SCOPE:ADDRESS
-- K[#K]  temporary records by expiry  dnd:{TENANT:S}:expiring (zset, member
--        FIELD\nVALUE, score EXPIRES_MS), so an expiry is audited (`expired`) once
--
-- Record value: STATE|EVENT_MS|EXPIRES_MS|REASON|SOURCE with STATE P (permanent),
-- M (permanent for marketing messages only), T (temporary, blocks until EXPIRES_MS)
-- or C (cleared: allowed; kept so that a late, older event cannot undo a newer
-- change).
--
-- Returns one reply per change, in order: per field {field, outcome, after}, or
-- {'duplicate'} when the event was applied before, or {'error', MESSAGE} when the
-- change failed (the others still apply). Outcomes: applied, escalated, superseded,
-- kept_permanent, refused, refused_time, review, help, noop. An expiry found on the
-- way (a temporary record past its EXPIRES_MS) is audited first, as outcome `expired`.

-- Redis's clock, read once for the call (a call takes well under a millisecond).
local clock = redis.call('TIME')
local clock_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- The change being applied and its keys: set by apply_one, read by the helpers.
local K, c, record, audit, expiring
local event_ms_text, event_ms, now_ms, action

-- A stored value read: its state if it blocks or is cleared (nil for none or an
-- expired temporary record), the event time that guards it (nil past Redis's clock
-- plus the skew), its reason and source.
-- Total: a value this script cannot read is a permanent record of unknown origin
-- (no ordering time, reason and source '?'), never "no record".
local function current(value)
  if not value then return nil end
  local state, ev, exp, reason, source =
    string.match(value, '^([PMTC])|(%-?%d+)|(%d*)|([^|]*)|(.*)$')
  if not state then
    return 'P', nil, '?', '?'
  end
  if state == 'T' and (exp == '' or tonumber(exp) <= now_ms) then
    return nil
  end
  ev = tonumber(ev)
  -- A time past Redis's clock (written before this rule) orders nothing: it would pin
  -- the record against every later change.
  if ev > clock_ms + tonumber(c.max_skew_ms) then ev = nil end
  return state, ev, reason, source
end

local function record_value(state, expires, reason, source)
  return state .. '|' .. event_ms_text .. '|' .. expires .. '|' .. reason .. '|' .. (source or c.source)
end

-- The member of the expiry index for FIELD holding VALUE.
local function expiry_member(field, value)
  return field .. '\n' .. value
end

-- Audit that the temporary record VALUE of FIELD ran out (at its EXPIRES_MS), and drop
-- it from the expiry index. Once per record: the caller drops the record itself, and
-- the sweeper (expire.lua) audits only a record still in place, so whoever finds it
-- first audits it.
local function audit_expiry(field, value)
  redis.call('ZREM', expiring, expiry_member(field, value))
  local exp, reason, source = string.match(value, '^T|%-?%d+|(%d+)|([^|]*)|(.*)$')
  if not exp then return end
  local scope, address = string.match(field, '^([^:]+):(.*)$')
  redis.call('XADD', audit, '*',
    'tenant', c.tenant, 'scope', scope, 'address', address,
    'action', 'expire', 'outcome', 'expired', 'before', value, 'after', value,
    'reason', reason, 'provider', source, 'event_id', 'expired:' .. exp,
    'event_ms', exp, 'received_ms', string.format('%d', clock_ms))
end

-- Keep the expiry index true to a write of AFTER over BEFORE on FIELD.
local function index_write(field, before, after)
  if before and string.sub(before, 1, 2) == 'T|' then
    redis.call('ZREM', expiring, expiry_member(field, before))
  end
  local exp = after and string.match(after, '^T|%-?%d+|(%d+)|')
  if exp then
    redis.call('ZADD', expiring, exp, expiry_member(field, after))
  end
end

local function temporary_expiry()
  return string.format('%d', event_ms + tonumber(c.ttl_ms))
end

-- Is a record of (reason, source) the change's own: set by the same source, with the
-- change's reason or one under it (`REASON:...`)? block_own records are lifted only
-- by an unblock_own they are the own of (a link's page, a SendGrid group resubscribe).
local function own(reason, source)
  return source == c.source
    and (reason == c.reason or string.sub(reason, 1, #c.reason + 1) == c.reason .. ':')
end

-- The reasons' common leading `:`-separated parts, as `PREFIX:*` ('' for none).
local function common_reason(a, b)
  local as, bs, out = {}, {}, {}
  for part in string.gmatch(a, '[^:]+') do as[#as + 1] = part end
  for part in string.gmatch(b, '[^:]+') do bs[#bs + 1] = part end
  for k = 1, math.min(#as, #bs) do
    if as[k] ~= bs[k] then break end
    out[#out + 1] = as[k]
  end
  if #out == 0 then return '' end
  return table.concat(out, ':') .. ':*'
end

-- Apply one change (K and c set); returns its reply.
local function apply_one()
  record, audit, expiring = K[1], K[2], K[#K]
  event_ms_text = c.event_ms
  event_ms = tonumber(event_ms_text)
  now_ms = tonumber(c.now_ms)
  action = c.action
  local seen = K[3]

  -- The second line behind the callers' own rule (time::event_time): an event time
  -- later than Redis's own clock plus the skew, or before the floor, would pin a record
  -- against every later change or hide it from this script. Refused and audited.
  local bad_time = not event_ms
    or event_ms < tonumber(c.floor_ms)
    or event_ms > clock_ms + tonumber(c.max_skew_ms)

  -- An operator clear without evidence is all or nothing: if any record it names is
  -- permanent, every field is refused, so a request never half-applies.
  local refuse_all = false
  if action == 'clear' and not c.evidence and not bad_time then
    for _, field in ipairs(c.fields) do
      local state = current(redis.call('HGET', record, field))
      if state == 'P' or state == 'M' then refuse_all = true end
    end
  end

  local results = {}
  local wrote = false
  for i, field in ipairs(c.fields) do
    local fails = K[4 + i]
    local before = redis.call('HGET', record, field)
    -- A temporary record that ran out before this event arrived: its expiry goes in
    -- the stream before this change, so readers see them in order.
    if before and not bad_time then
      local exp = string.match(before, '^T|%-?%d+|(%d+)|')
      if exp and tonumber(exp) <= now_ms then
        -- Audited once: the record goes (it blocks nothing), whatever this change does.
        audit_expiry(field, before)
        redis.call('HDEL', record, field)
      end
    end
    local state, ev, old_reason, old_source = current(before)
    local outcome, after = 'noop', nil
    local reason = c.reason
    if bad_time then
      outcome = 'refused_time'
    elseif action == 'review' or action == 'help' then
      outcome = action
    elseif action == 'reachable' and state ~= 'T' then
      outcome = 'noop'
    elseif action == 'unblock_marketing' and state ~= 'M' then
      -- A resume of marketing lifts a marketing-only record and nothing stronger.
      outcome = 'noop'
    elseif action == 'unblock_own' and (state == nil or state == 'C') then
      outcome = 'noop'
    elseif action == 'unblock_own' and not own(old_reason, old_source) then
      -- A keyword, provider, error-code or operator record, or another group's: only
      -- the contact's opt-in or an operator's consent evidence lifts it.
      outcome = 'refused'
    elseif ev and event_ms < ev then
      outcome = 'superseded'
    elseif action == 'block_own' and state == 'P' and old_source == c.source
      and old_reason == reason then
      -- Already set by this very kind (a retried one-click POST, a second click): a
      -- change id is per submission, so a repeat changes nothing by itself.
      outcome = 'noop'
    elseif action == 'block_permanent' then
      outcome, after = 'applied', record_value('P', '', reason)
    elseif action == 'block_own' then
      if (state == 'P' or state == 'M') and not (old_source == c.source and old_reason == reason) then
        -- A permanent record of another origin keeps it (its time is refreshed), so the
        -- own unblock cannot lift what something else set: another source's reason and
        -- source stay; the same source's reasons merge to their common part (`X:*`).
        local merged, source = old_reason, old_source
        if old_source == c.source then
          merged = common_reason(old_reason, reason)
          if merged == '' then merged = old_reason end
        end
        outcome, after = 'applied', record_value('P', '', merged, source)
      else
        outcome, after = 'applied', record_value('P', '', reason)
      end
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
    elseif action == 'unblock' or action == 'reachable' or action == 'unblock_marketing'
      or action == 'unblock_own' then
      outcome, after = 'applied', record_value('C', '', reason)
    elseif action == 'clear' then
      if refuse_all then
        outcome = 'refused'
      else
        outcome, after = 'applied', record_value('C', '', reason)
      end
    else
      error('unknown action ' .. tostring(action))
    end
    if after then
      wrote = true
      redis.call('HSET', record, field, after)
      index_write(field, before, after)
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
      redis.call('XADD', audit, '*', unpack(entry))
    end
    results[#results + 1] = {field, outcome, after or before or ''}
  end

  -- Expired temporary records block nothing; when this bucket is written anyway, drop
  -- them so memory does not grow with every bounce ever seen. (Readers never need this:
  -- they compare EXPIRES_MS with their clock.) The shard's expiry index says first
  -- whether any temporary record of the shard has run out: when none has, there is
  -- nothing to drop, and the bucket is not read whole (it is, on every write of a STOP
  -- storm, about 30 fields at a million records).
  if wrote and #redis.call('ZRANGEBYSCORE', expiring, '-inf', c.now_ms, 'LIMIT', 0, 1) > 0 then
    local all = redis.call('HGETALL', record)
    for j = 1, #all, 2 do
      local exp = string.match(all[j + 1], '^T|%d+|(%d+)|')
      if exp and tonumber(exp) <= now_ms then
        audit_expiry(all[j], all[j + 1])
        redis.call('HDEL', record, all[j])
      end
    end
  end

  -- An event that changed or reported nothing leaves no marker: there is nothing to
  -- apply twice, and delivery receipts would otherwise fill memory. A refused change
  -- leaves none either, so the same request can succeed once it carries evidence (or
  -- the clocks agree again).
  local marked = false
  for _, r in ipairs(results) do
    if r[2] ~= 'noop' and r[2] ~= 'refused' and r[2] ~= 'refused_time' then marked = true end
  end
  if marked then
    -- The set's end is fixed by its window: set once, by the first mark (NX), so
    -- later marks neither reset it nor add a write to the append-only file.
    redis.call('SADD', seen, c.seen)
    redis.call('EXPIRE', seen, c.seen_ttl_s, 'NX')
  end
  return results
end

-- An optional argument: '' for none, else '=' and the value.
local function opt(v)
  if v == '' then return nil end
  return string.sub(v, 2)
end

-- The reply to the change whose arguments start at ARGV[i] (K set). A duplicate is
-- turned away before anything else is read.
local function run(i)
  local member = ARGV[i + 1]
  if redis.call('SISMEMBER', K[3], member) == 1
    or redis.call('SISMEMBER', K[4], member) == 1 then
    return {'duplicate'}
  end
  local fields = {}
  for f = 1, tonumber(ARGV[i + 20]) do fields[f] = ARGV[i + 20 + f] end
  c = {
    seen = member, seen_ttl_s = ARGV[i + 2], action = ARGV[i + 3],
    event_ms = ARGV[i + 4], received_ms = ARGV[i + 5], now_ms = ARGV[i + 6],
    ttl_ms = ARGV[i + 7], escalate_count = ARGV[i + 8],
    escalate_window_ms = ARGV[i + 9], max_skew_ms = ARGV[i + 10],
    floor_ms = ARGV[i + 11], reason = ARGV[i + 12], source = ARGV[i + 13],
    provider = ARGV[i + 13], event_id = ARGV[i + 14], address = ARGV[i + 15],
    tenant = ARGV[i + 16], actor = opt(ARGV[i + 17]), evidence = opt(ARGV[i + 18]),
    contact = opt(ARGV[i + 19]), fields = fields,
  }
  return apply_one()
end

local replies = {}
local at, i = 0, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  K = {}
  for j = 1, n do K[j] = KEYS[at + j] end
  at = at + n
  local ok, reply = pcall(run, i)
  if not ok then
    if type(reply) == 'table' and reply.err then reply = reply.err end
    reply = {'error', tostring(reply)}
  end
  replies[#replies + 1] = reply
  i = i + 21 + tonumber(ARGV[i + 20])
end
return replies
