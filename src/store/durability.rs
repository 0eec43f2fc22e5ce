//! The start-up check of Redis persistence and eviction (SPEC section 8): a 2xx means
//! "durable", which holds only if Redis keeps what it acknowledged (`appendonly yes`)
//! and never drops a record to make room (`maxmemory-policy noeviction`).
//!
//! The settings are read with `CONFIG GET`; managed Redis services often rename or
//! disable `CONFIG`, so the check falls back to `INFO persistence` and `INFO memory`,
//! which say the same for the two settings that matter.

use super::{Store, StoreError};

/// What Redis says about its persistence and eviction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `appendonly`: is every write logged to the append-only file? `None` when Redis
    /// would not say.
    pub appendonly: Option<bool>,
    /// `save`: the RDB snapshot points (`""` for none). `None` when not known (INFO
    /// does not report it).
    pub save: Option<String>,
    /// `maxmemory-policy`, e.g. `noeviction`. `None` when Redis would not say.
    pub maxmemory_policy: Option<String>,
    /// Where the answer came from: `CONFIG GET` or `INFO`.
    pub source: &'static str,
}

impl Durability {
    /// Every setting that breaks "a 2xx means durable", one line each naming the
    /// setting and the fix; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (self.appendonly, self.save.as_deref()) {
            (Some(true), _) => {}
            (Some(false), Some("") | None) => problems.push(
                "redis persistence is off (appendonly no, and no RDB save points): a restart of redis loses every DND record; set appendonly yes (CONFIG SET appendonly yes, and in redis.conf)".to_string(),
            ),
            (Some(false), Some(save)) => problems.push(format!(
                "redis appendonly is off: RDB snapshots alone (save \"{save}\") lose the changes since the last snapshot when redis crashes; set appendonly yes (CONFIG SET appendonly yes, and in redis.conf)"
            )),
            (None, _) => problems.push(format!(
                "could not read redis's appendonly setting ({} refused): make sure appendonly is yes",
                self.source
            )),
        }
        match self.maxmemory_policy.as_deref() {
            Some("noeviction") => {}
            Some(policy) => problems.push(format!(
                "redis maxmemory-policy is {policy}: under memory pressure redis may evict DND records, and evicted opt-outs let messages through; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf)"
            )),
            None => problems.push(format!(
                "could not read redis's maxmemory-policy ({} refused): make sure it is noeviction",
                self.source
            )),
        }
        problems
    }
}

/// The value of `name` in INFO text (`name:value` lines).
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim_end().split_once(':')?;
        (k == name).then_some(v)
    })
}

/// Read a Durability from `INFO persistence` and `INFO memory` text.
fn from_info(persistence: &str, memory: &str) -> Durability {
    Durability {
        appendonly: info_field(persistence, "aof_enabled").map(|v| v == "1"),
        save: None,
        maxmemory_policy: info_field(memory, "maxmemory_policy").map(str::to_string),
        source: "INFO",
    }
}

/// `CONFIG GET`'s reply: setting and value pairs.
type Settings = Vec<(String, String)>;

/// One report for the whole deployment from each primary's: the worst of each
/// setting, since a record on a node that does not persist is as lost as any.
fn merge(reports: Vec<(String, Durability)>) -> Durability {
    let source = reports
        .first()
        .map(|(_, d)| d.source)
        .unwrap_or("CONFIG GET");
    let appendonly = if reports.iter().any(|(_, d)| d.appendonly.is_none()) {
        None
    } else {
        Some(reports.iter().all(|(_, d)| d.appendonly == Some(true)))
    };
    let save = reports
        .iter()
        .find(|(_, d)| d.appendonly != Some(true))
        .or(reports.first())
        .and_then(|(_, d)| d.save.clone());
    let maxmemory_policy = reports
        .iter()
        .find(|(_, d)| d.maxmemory_policy.as_deref() != Some("noeviction"))
        .or(reports.first())
        .and_then(|(_, d)| d.maxmemory_policy.clone());
    Durability {
        appendonly,
        save,
        maxmemory_policy,
        source,
    }
}

impl Store {
    /// Ask Redis for its persistence and eviction settings: `CONFIG GET`, or `INFO`
    /// where `CONFIG` is renamed or disabled; on a cluster, every primary, merged to
    /// the worst of each. An error only when Redis cannot answer at all.
    pub async fn durability_report(&self) -> Result<Durability, StoreError> {
        let mut conn = self.conn.clone();
        let mut config_get = redis::cmd("CONFIG");
        config_get
            .arg("GET")
            .arg("appendonly")
            .arg("save")
            .arg("maxmemory-policy");
        let config: redis::RedisResult<Vec<(String, Settings)>> =
            tokio::time::timeout(self.options.timeout, conn.on_every_primary(&config_get))
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!("no answer within {:?}", self.options.timeout))
                })?;
        match config {
            Ok(nodes) if !nodes.is_empty() && nodes.iter().all(|(_, p)| !p.is_empty()) => {
                let reports = nodes
                    .into_iter()
                    .map(|(node, pairs)| {
                        let get = |name: &str| {
                            pairs
                                .iter()
                                .find(|(k, _)| k == name)
                                .map(|(_, v)| v.clone())
                        };
                        let report = Durability {
                            appendonly: get("appendonly").map(|v| v == "yes"),
                            save: get("save"),
                            maxmemory_policy: get("maxmemory-policy"),
                            source: "CONFIG GET",
                        };
                        (node, report)
                    })
                    .collect();
                return Ok(merge(reports));
            }
            // Refused or renamed (managed services); if Redis is down, INFO says so.
            _ => {}
        }
        let persistence: Vec<(String, String)> = self
            .with_timeout(conn.on_every_primary(redis::cmd("INFO").arg("persistence")))
            .await?;
        let memory: Vec<(String, String)> = self
            .with_timeout(conn.on_every_primary(redis::cmd("INFO").arg("memory")))
            .await?;
        Ok(merge(
            persistence
                .into_iter()
                .zip(memory)
                .map(|((node, p), (_, m))| (node, from_info(&p, &m)))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(appendonly: Option<bool>, save: Option<&str>, policy: Option<&str>) -> Durability {
        Durability {
            appendonly,
            save: save.map(str::to_string),
            maxmemory_policy: policy.map(str::to_string),
            source: "CONFIG GET",
        }
    }

    #[test]
    fn problems_name_the_setting_and_the_fix() {
        assert!(
            report(Some(true), Some(""), Some("noeviction"))
                .problems()
                .is_empty()
        );
        let p = report(Some(false), Some(""), Some("allkeys-lru")).problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("appendonly no") && p[0].contains("set appendonly yes"));
        assert!(p[1].contains("allkeys-lru") && p[1].contains("noeviction"));
        let p = report(Some(false), Some("3600 1"), Some("noeviction")).problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("RDB snapshots"), "{p:?}");
        let p = report(None, None, None).problems();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|l| l.contains("could not read")));
    }

    #[test]
    fn a_cluster_is_as_safe_as_its_worst_primary() {
        let safe = report(Some(true), Some(""), Some("noeviction"));
        let lru = report(Some(true), Some(""), Some("allkeys-lru"));
        let no_aof = report(Some(false), Some("3600 1"), Some("noeviction"));
        let merged = merge(vec![
            ("a".into(), safe.clone()),
            ("b".into(), lru),
            ("c".into(), no_aof),
        ]);
        assert_eq!(merged.appendonly, Some(false));
        assert_eq!(merged.save.as_deref(), Some("3600 1"));
        assert_eq!(merged.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert!(
            merge(vec![("a".into(), safe.clone()), ("b".into(), safe)])
                .problems()
                .is_empty()
        );
    }

    #[test]
    fn info_fallback_reads_aof_and_policy() {
        let persistence = "# Persistence\r\nloading:0\r\naof_enabled:1\r\n";
        let memory = "# Memory\r\nused_memory:1000\r\nmaxmemory_policy:volatile-lru\r\n";
        let d = from_info(persistence, memory);
        assert_eq!(d.appendonly, Some(true));
        assert_eq!(d.maxmemory_policy.as_deref(), Some("volatile-lru"));
        assert_eq!(d.source, "INFO");
        assert_eq!(from_info("aof_enabled:0\r\n", "").appendonly, Some(false));
    }
}
