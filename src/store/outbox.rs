//! The delivery state of events out, next to the audit streams it reads: per tenant
//! shard and endpoint, a consumer group on the shard's audit stream (its position and
//! the entries read but not yet delivered), a lease (which gateway instance delivers
//! that shard to that endpoint), the retry state of the entry at the head, and the
//! dead letters; per endpoint, its health. Every per-shard key carries the shard's
//! hash tag, so a script over them runs on Redis Cluster.
//!
//! Keys (`T` the tenant, `S` the shard, `E` the endpoint id):
//!
//! - `dnd:{T:S}:audit`, group `out:E`: what was read and not yet finished.
//! - `dnd:{T:S}:out:E:lease`: the instance that delivers this shard (PX lease).
//! - `dnd:{T:S}:out:E:retry`: hash `id`, `tries`, `next_ms`, `error` of the head entry.
//! - `dnd:{T:S}:out:E:dead`: stream of dead letters (`audit_id`, `event`, `tries`,
//!   `error`, `dead_ms`).
//! - `dnd:{T}:out:E`: hash `failing_since_ms`, `last_ok_ms`, `disabled_ms`,
//!   `disabled_why`.
//! - `dnd:{T}:endpoints`: hash, endpoint id -> the endpoint made through the operator
//!   API, as JSON (its URL, secrets, filters).

use redis::{Script, Value};

use super::{Connection, Store, StoreError};

/// The one consumer name every instance reads as: only the lease holder reads, so
/// whoever holds the lease after a crash finds the entries its predecessor had read
/// in this consumer's pending list.
const CONSUMER: &str = "deliver";

/// Take or keep a lease: `1` when `ARGV[1]` holds it now.
const LEASE_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Finish the head entry while holding the lease: acknowledge it, forget its retry
/// state, and (when dead) keep a dead letter. `0` when the lease is lost: the holder
/// sends it again, so nothing is lost, at worst sent twice with the same id.
/// KEYS: audit, retry, dead, lease. ARGV: group, id, holder, dead (0/1), fields...
const FINISH_LUA: &str = r"
if redis.call('GET', KEYS[4]) ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[2])
if ARGV[4] == '1' then redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5)) end
return 1
";

/// One shard of one endpoint's delivery.
#[derive(Debug, Clone)]
pub struct OutShard {
    /// The tenant.
    pub tenant: String,
    /// The shard, 0 to 15.
    pub shard: u8,
    /// The endpoint id.
    pub endpoint: String,
}

/// The retry state of a shard's head entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The audit entry id.
    pub id: String,
    /// Tries made so far.
    pub tries: u32,
    /// When to try next (ms since the epoch).
    pub next_ms: i64,
    /// Why the last try failed.
    pub error: String,
}

/// A dead letter: an event whose retries ran out, or that the endpoint refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The shard it came from.
    pub shard: u8,
    /// The dead-letter stream's entry id (for replay).
    pub id: String,
    /// The audit entry it was made from.
    pub audit_id: String,
    /// The event body as it was sent.
    pub event: String,
    /// Tries made.
    pub tries: u32,
    /// The last failure.
    pub error: String,
    /// When it was given up on (ms since the epoch).
    pub dead_ms: i64,
}

/// What a dead letter keeps of an event given up on.
#[derive(Debug, Clone, Copy)]
pub struct Dying<'a> {
    /// The event body (or, for an entry that could not be read, its fields).
    pub event: &'a str,
    /// Tries made.
    pub tries: u32,
    /// Why it is given up on.
    pub error: &'a str,
    /// Now (ms since the epoch).
    pub now_ms: i64,
}

/// Where an endpoint's group stands on one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Entries read and not yet finished.
    pub pending: u64,
    /// Entries not yet read (Redis's `lag`; 0 when unknown).
    pub lag: u64,
    /// The oldest entry not yet finished (pending, or else the first unread), if any.
    pub oldest: Option<String>,
    /// The first id not finished (the oldest pending or unread entry, or else the id
    /// right after the last one read): the audit stream may be trimmed below it.
    pub floor: String,
}

/// An endpoint's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Failing without a success since (ms), if failing.
    pub failing_since_ms: Option<i64>,
    /// The last successful delivery (ms).
    pub last_ok_ms: Option<i64>,
    /// Disabled for failing too long, since (ms).
    pub disabled_ms: Option<i64>,
    /// Why it was disabled.
    pub disabled_why: Option<String>,
}

impl OutShard {
    fn tag(&self) -> String {
        format!("{}:{:x}", self.tenant, self.shard)
    }
    fn audit(&self) -> String {
        format!("dnd:{{{}}}:audit", self.tag())
    }
    fn key(&self, what: &str) -> String {
        format!("dnd:{{{}}}:out:{}:{what}", self.tag(), self.endpoint)
    }
    fn group(&self) -> String {
        group_name(&self.endpoint)
    }
}

/// The consumer group of endpoint `endpoint`.
fn group_name(endpoint: &str) -> String {
    format!("out:{endpoint}")
}

fn api_endpoints_key(tenant: &str) -> String {
    format!("dnd:{{{tenant}}}:endpoints")
}

fn health_key(tenant: &str, endpoint: &str) -> String {
    format!("dnd:{{{tenant}}}:out:{endpoint}")
}

fn int(v: Option<&String>) -> Option<i64> {
    v.and_then(|s| s.parse().ok())
}

/// The stream id right after `id` (`5-3` -> `5-4`), or `id` itself when it does
/// not parse.
fn after(id: &str) -> String {
    let parsed = id
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)));
    match parsed {
        Some((ms, u64::MAX)) => format!("{}-0", ms + 1),
        Some((ms, seq)) => format!("{ms}-{}", seq + 1),
        None => id.to_string(),
    }
}

/// The millisecond part of a stream id.
pub fn id_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

impl Store {
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn: Connection = self.connection();
        self.with_timeout(cmd.query_async(&mut conn)).await
    }

    /// Create the endpoint's group on the shard's stream (and the stream), starting
    /// with the entries written from `since_ms` (Redis's clock) on: an endpoint gets the
    /// changes made from the moment a gateway that knows it started, even those
    /// applied before its worker reached Redis. An existing group keeps its place.
    pub async fn out_prepare(&self, s: &OutShard, since_ms: i64) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XGROUP");
        let after = format!("{}-0", since_ms.max(1) - 1);
        cmd.arg("CREATE")
            .arg(s.audit())
            .arg(s.group())
            .arg(after)
            .arg("MKSTREAM");
        match self.run::<Value>(&cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create the endpoint's group on the shard's stream where the stream ends now (by
    /// Redis's own clock): an endpoint made through the API gets the changes made from
    /// its creation on, not the gateway's whole run. An existing group keeps its place.
    pub async fn out_prepare_at_end(&self, s: &OutShard) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(s.audit())
            .arg(s.group())
            .arg("$")
            .arg("MKSTREAM");
        match self.run::<Value>(&cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Take or keep the shard's lease for `holder`, for `ttl_ms`; whether it is held.
    pub async fn out_lease(
        &self,
        s: &OutShard,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let script = Script::new(LEASE_LUA);
        let mut inv = script.key(s.key("lease"));
        inv.arg(holder).arg(ttl_ms);
        let mut conn = self.connection();
        let held: i64 = self.with_timeout(inv.invoke_async(&mut conn)).await?;
        Ok(held == 1)
    }

    /// Let the lease go (a clean shutdown), if `holder` has it.
    pub async fn out_release(&self, s: &OutShard, holder: &str) -> Result<(), StoreError> {
        let script = Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1",
        );
        let mut inv = script.key(s.key("lease"));
        inv.arg(holder);
        let mut conn = self.connection();
        let _: i64 = self.with_timeout(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Read up to `count` entries for delivery: the ones read before and not finished
    /// (`pending`, from the start of the pending list), or new ones. The raw
    /// XREADGROUP reply (see [`crate::audit`] for reading it). A lost group (`NOGROUP`:
    /// the stream was deleted) is created again and read from its start.
    pub async fn out_read(
        &self,
        s: &OutShard,
        pending: bool,
        count: usize,
    ) -> Result<Value, StoreError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(s.group())
            .arg(CONSUMER)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(s.audit())
            .arg(if pending { "0" } else { ">" });
        match self.run::<Value>(&cmd).await {
            Err(e) if e.to_string().contains("NOGROUP") => {
                let mut create = redis::cmd("XGROUP");
                create
                    .arg("CREATE")
                    .arg(s.audit())
                    .arg(s.group())
                    .arg("0")
                    .arg("MKSTREAM");
                let _ = self.run::<Value>(&create).await;
                self.run(&cmd).await
            }
            other => other,
        }
    }

    /// The shard's head retry state, if its head has failed before.
    pub async fn out_retry(&self, s: &OutShard) -> Result<Option<Retry>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(s.key("retry"));
        let map: std::collections::HashMap<String, String> = self.run(&cmd).await?;
        let (Some(id), Some(tries), Some(next_ms)) = (
            map.get("id"),
            int(map.get("tries")),
            int(map.get("next_ms")),
        ) else {
            return Ok(None);
        };
        Ok(Some(Retry {
            id: id.clone(),
            tries: tries.max(0) as u32,
            next_ms,
            error: map.get("error").cloned().unwrap_or_default(),
        }))
    }

    /// Record a failed try of the head entry.
    pub async fn out_set_retry(&self, s: &OutShard, retry: &Retry) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(s.key("retry"))
            .arg("id")
            .arg(&retry.id)
            .arg("tries")
            .arg(retry.tries)
            .arg("next_ms")
            .arg(retry.next_ms)
            .arg("error")
            .arg(&retry.error);
        self.run::<Value>(&cmd).await.map(|_| ())
    }

    /// Finish entry `id` (delivered, or filtered out): acknowledged, retry state gone.
    /// `false` when `holder` lost the lease (nothing changed).
    pub async fn out_done(&self, s: &OutShard, holder: &str, id: &str) -> Result<bool, StoreError> {
        self.finish(s, holder, id, None).await
    }

    /// Dead-letter entry `id` with its event and why, and finish it. `false` when
    /// `holder` lost the lease (nothing changed).
    pub async fn out_dead(
        &self,
        s: &OutShard,
        holder: &str,
        id: &str,
        dying: Dying<'_>,
    ) -> Result<bool, StoreError> {
        let fields = [
            ("audit_id", id.to_string()),
            ("event", dying.event.to_string()),
            ("tries", dying.tries.to_string()),
            ("error", dying.error.to_string()),
            ("dead_ms", dying.now_ms.to_string()),
        ];
        self.finish(s, holder, id, Some(&fields)).await
    }

    async fn finish(
        &self,
        s: &OutShard,
        holder: &str,
        id: &str,
        dead: Option<&[(&str, String)]>,
    ) -> Result<bool, StoreError> {
        let script = Script::new(FINISH_LUA);
        let mut inv = script.key(s.audit());
        inv.key(s.key("retry"))
            .key(s.key("dead"))
            .key(s.key("lease"));
        inv.arg(s.group())
            .arg(id)
            .arg(holder)
            .arg(if dead.is_some() { "1" } else { "0" });
        for (k, v) in dead.unwrap_or_default() {
            inv.arg(*k).arg(v);
        }
        let mut conn = self.connection();
        let done: i64 = self.with_timeout(inv.invoke_async(&mut conn)).await?;
        Ok(done == 1)
    }

    /// The endpoint's dead letters on every shard, oldest first per shard.
    pub async fn out_dead_letters(
        &self,
        tenant: &str,
        endpoint: &str,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..16u8 {
            let s = OutShard {
                tenant: tenant.to_string(),
                shard,
                endpoint: endpoint.to_string(),
            };
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(s.key("dead")).arg("-").arg("+");
            let entries: Vec<(String, std::collections::HashMap<String, String>)> =
                self.run(&cmd).await?;
            for (id, f) in entries {
                out.push(DeadLetter {
                    shard,
                    id,
                    audit_id: f.get("audit_id").cloned().unwrap_or_default(),
                    event: f.get("event").cloned().unwrap_or_default(),
                    tries: int(f.get("tries")).unwrap_or(0).max(0) as u32,
                    error: f.get("error").cloned().unwrap_or_default(),
                    dead_ms: int(f.get("dead_ms")).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Where the endpoint's group stands on the shard; `None` when it has no group
    /// there yet.
    pub async fn out_group(&self, s: &OutShard) -> Result<Option<GroupState>, StoreError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(s.audit());
        let groups: Vec<std::collections::HashMap<String, Value>> = match self.run(&cmd).await {
            Ok(g) => g,
            Err(e) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        let name = s.group();
        let text = |v: Option<&Value>| match v {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(Value::SimpleString(s)) => Some(s.clone()),
            Some(Value::Int(n)) => Some(n.to_string()),
            _ => None,
        };
        let Some(g) = groups
            .iter()
            .find(|g| text(g.get("name")).as_deref() == Some(&name))
        else {
            return Ok(None);
        };
        let pending = text(g.get("pending"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let lag = text(g.get("lag")).and_then(|p| p.parse().ok()).unwrap_or(0);
        let last = text(g.get("last-delivered-id")).unwrap_or_else(|| "0-0".into());
        let oldest = if pending > 0 {
            let mut cmd = redis::cmd("XPENDING");
            cmd.arg(s.audit()).arg(&name).arg("-").arg("+").arg(1);
            let first: Vec<(String, String, u64, u64)> = self.run(&cmd).await?;
            first.into_iter().next().map(|(id, ..)| id)
        } else {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(s.audit())
                .arg(format!("({last}"))
                .arg("+")
                .arg("COUNT")
                .arg(1);
            let next: Vec<(String, Value)> = self.run(&cmd).await?;
            next.into_iter().next().map(|(id, _)| id)
        };
        // With nothing left to do, the floor is just past the last entry read: it is
        // finished too, and `XTRIM MINID ~` keeps the whole node holding the floor's id.
        let floor = oldest.clone().unwrap_or_else(|| after(&last));
        Ok(Some(GroupState {
            pending,
            lag,
            oldest,
            floor,
        }))
    }

    /// Trim the shard's audit stream below `min_id` (approximately: Redis trims whole
    /// nodes, so a little more may stay, never less). How many entries went.
    pub async fn trim_audit(
        &self,
        tenant: &str,
        shard: u8,
        min_id: &str,
    ) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("XTRIM");
        cmd.arg(format!("dnd:{{{tenant}:{shard:x}}}:audit"))
            .arg("MINID")
            .arg("~")
            .arg(min_id);
        self.run(&cmd).await
    }

    /// Record a delivery (`ok`) or a failure of the endpoint at `now_ms`; a success
    /// clears the failing streak.
    pub async fn out_health_note(
        &self,
        tenant: &str,
        endpoint: &str,
        ok: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = health_key(tenant, endpoint);
        let mut cmd = if ok {
            let mut c = redis::cmd("HSET");
            c.arg(&key).arg("last_ok_ms").arg(now_ms);
            c
        } else {
            let mut c = redis::cmd("HSETNX");
            c.arg(&key).arg("failing_since_ms").arg(now_ms);
            c
        };
        self.run::<Value>(&cmd).await?;
        if ok {
            cmd = redis::cmd("HDEL");
            cmd.arg(&key).arg("failing_since_ms");
            self.run::<Value>(&cmd).await?;
        }
        Ok(())
    }

    /// Disable the endpoint (it failed too long), saying why.
    pub async fn out_disable(
        &self,
        tenant: &str,
        endpoint: &str,
        now_ms: i64,
        why: &str,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(health_key(tenant, endpoint))
            .arg("disabled_ms")
            .arg(now_ms)
            .arg("disabled_why")
            .arg(why);
        self.run::<Value>(&cmd).await.map(|_| ())
    }

    /// Enable an endpoint disabled for failing: its streak starts again.
    pub async fn out_enable(&self, tenant: &str, endpoint: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(health_key(tenant, endpoint))
            .arg("disabled_ms")
            .arg("disabled_why")
            .arg("failing_since_ms");
        self.run::<Value>(&cmd).await.map(|_| ())
    }

    /// The endpoint's health.
    pub async fn out_health(&self, tenant: &str, endpoint: &str) -> Result<Health, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(health_key(tenant, endpoint));
        let m: std::collections::HashMap<String, String> = self.run(&cmd).await?;
        Ok(Health {
            failing_since_ms: int(m.get("failing_since_ms")),
            last_ok_ms: int(m.get("last_ok_ms")),
            disabled_ms: int(m.get("disabled_ms")),
            disabled_why: m.get("disabled_why").cloned(),
        })
    }

    /// The endpoints made through the operator API for `tenant`: id -> JSON.
    pub async fn api_endpoints(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(api_endpoints_key(tenant));
        self.run(&cmd).await
    }

    /// Store (create or replace) an API endpoint; `only_new`: refuse (`false`) when
    /// one by that id exists.
    pub async fn put_api_endpoint(
        &self,
        tenant: &str,
        id: &str,
        json: &str,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd(if only_new { "HSETNX" } else { "HSET" });
        cmd.arg(api_endpoints_key(tenant)).arg(id).arg(json);
        let n: i64 = self.run(&cmd).await?;
        Ok(!only_new || n == 1)
    }

    /// Remove an API endpoint with all its delivery state (health, groups, leases,
    /// retry states, dead letters), so an endpoint made later with the same id starts
    /// afresh; whether it existed.
    pub async fn delete_api_endpoint(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(api_endpoints_key(tenant)).arg(id);
        let n: i64 = self.run(&cmd).await?;
        let mut health = redis::cmd("DEL");
        health.arg(health_key(tenant, id));
        self.run::<Value>(&health).await?;
        for shard in 0..16u8 {
            let s = OutShard {
                tenant: tenant.to_string(),
                shard,
                endpoint: id.to_string(),
            };
            let mut destroy = redis::cmd("XGROUP");
            destroy.arg("DESTROY").arg(s.audit()).arg(s.group());
            self.run::<Value>(&destroy).await?;
            for what in ["lease", "retry", "dead"] {
                let mut del = redis::cmd("DEL");
                del.arg(s.key(what));
                self.run::<Value>(&del).await?;
            }
        }
        Ok(n == 1)
    }

    /// Trim the shard's dead letters below `min_id` (they go with the audit entries
    /// they came from). How many went.
    pub async fn out_trim_dead(&self, s: &OutShard, min_id: &str) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("XTRIM");
        cmd.arg(s.key("dead")).arg("MINID").arg("~").arg(min_id);
        self.run(&cmd).await
    }

    /// Remove dead letter `id` of the shard (replayed); whether it was there.
    pub async fn out_dead_remove(&self, s: &OutShard, id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("XDEL");
        cmd.arg(s.key("dead")).arg(id);
        let n: i64 = self.run(&cmd).await?;
        Ok(n == 1)
    }
}
