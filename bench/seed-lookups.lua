-- A third of 200,000 numbers (+15550000000 to +15550199999) on permanent SMS DND for
-- tenant acme, in dndgate's layout: what the lookup benchmarks read.
-- redis-cli -p PORT --eval bench/seed-lookups.lua
for i = 0, 199999 do
  if i % 3 == 0 then
    local a = '+1555' .. string.format('%07d', i)
    local h = redis.sha1hex(a)
    redis.call('HSET', 'dnd:{acme:' .. string.sub(h, 1, 1) .. '}:' .. string.sub(h, 2, 4), 'sms:' .. a, 'P|1764300000123||keyword:STOP|twilio')
  end
end
return 1
