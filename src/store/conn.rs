//! One connection type for a single Redis server and for a Redis Cluster, so no module
//! outside the store needs to know which one it talks to.
//!
//! A URL `redis+cluster://[USER:PASS@]HOST:PORT[,HOST:PORT...][/][?QUERY]` (or
//! `rediss+cluster://` for TLS) names a cluster by its seed nodes; any other URL the
//! redis crate understands (`redis://`, `rediss://`, `unix://`) names one server.
//!
//! On a cluster every single-key command and every script call goes to the primary of
//! its key's slot (the client follows `MOVED`/`ASK`); replicas are never read. The
//! dndgate layout keeps each record, and everything one event writes, under one hash
//! tag, so a command never spans slots. What does span slots is a batch of independent
//! commands (a lookup of many addresses, an XACK per audit shard): [`Batch`] sends it
//! as one pipeline to a single server and as one pipeline per slot, concurrently, to
//! a cluster. A key scan walks every primary ([`Connection::scan_page`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// The URL schemes that name a Redis Cluster by its seed nodes.
pub const CLUSTER_SCHEMES: [&str; 2] = ["redis+cluster://", "rediss+cluster://"];

/// Where Redis is, as read from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server.
    Single(String),
    /// A cluster, by the URLs of its seed nodes (each `redis://` or `rediss://`).
    Cluster(Vec<String>),
}

/// Read a Redis URL: a cluster URL (see the module documentation) gives the seed
/// nodes' URLs; anything else is one server's URL, checked by the redis crate when
/// connecting.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let Some((scheme, rest)) = CLUSTER_SCHEMES
        .iter()
        .find_map(|s| url.strip_prefix(s).map(|rest| (s, rest)))
    else {
        return Ok(Target::Single(url.to_string()));
    };
    let seed_scheme = if scheme.starts_with("rediss") {
        "rediss://"
    } else {
        "redis://"
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let tail = if tail.is_empty() { "/" } else { tail };
    let seeds: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|host| format!("{seed_scheme}{user}{host}{tail}"))
        .collect();
    if seeds.is_empty() {
        return Err(format!(
            "{scheme}... must name at least one node, e.g. {scheme}10.0.0.1:7000,10.0.0.2:7000"
        ));
    }
    Ok(Target::Cluster(seeds))
}

/// The cluster URL for a list of seed-node URLs (`redis://` or `rediss://`, sharing
/// user, password and options): what a `redis_url` list in the configuration means.
pub fn cluster_url(seeds: &[String]) -> Result<String, String> {
    let mut scheme = None;
    let mut user = None;
    let mut tail = None;
    let mut hosts = Vec::new();
    for seed in seeds {
        let (s, rest) = ["rediss://", "redis://"]
            .iter()
            .find_map(|s| seed.strip_prefix(s).map(|rest| (*s, rest)))
            .ok_or_else(|| format!("{seed:?} is not a redis:// or rediss:// URL"))?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, t) = rest.split_at(end);
        let (u, host) = authority.rsplit_once('@').unwrap_or(("", authority));
        let t = if t.is_empty() { "/" } else { t };
        let same = |prev: &mut Option<String>, now: &str| {
            prev.get_or_insert_with(|| now.to_string()) == now
        };
        if !same(&mut scheme, s) || !same(&mut user, u) || !same(&mut tail, t) {
            return Err(
                "the seed nodes must share one scheme, user, password and options".to_string(),
            );
        }
        if host.is_empty() {
            return Err(format!("{seed:?} names no host"));
        }
        hosts.push(host.to_string());
    }
    let Some(scheme) = scheme else {
        return Err("an empty list names no Redis".to_string());
    };
    let user = user.unwrap_or_default();
    let user = if user.is_empty() {
        user
    } else {
        format!("{user}@")
    };
    Ok(format!(
        "{}+cluster://{user}{}{}",
        scheme.trim_end_matches("://"),
        hosts.join(","),
        tail.unwrap_or_default()
    ))
}

/// How to connect.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Longest wait for a TCP connection (and the cluster's first slot map).
    pub connect_timeout: Duration,
    /// Longest wait for one reply; `None` for none (a blocking read waits longer).
    pub response_timeout: Option<Duration>,
}

/// A cluster connection made on first use, so a gateway starts while the cluster is
/// down. Once made, the cluster client reconnects and refreshes its slot map itself.
pub struct LazyCluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

/// A connection to a single Redis server or to a Redis Cluster; cheap to clone, shared
/// by concurrent requests. Implements [`redis::aio::ConnectionLike`], so commands,
/// pipelines of one slot and scripts run on it as on any redis connection.
#[derive(Clone)]
pub enum Connection {
    /// One server, through a reconnecting connection manager.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the primary of their key's slot.
    Cluster(Arc<LazyCluster>),
}

impl Connection {
    /// A connection to the Redis `url` names (see the module documentation); connects
    /// lazily, on the first command.
    pub fn open(url: &str, options: ConnectOptions) -> RedisResult<Connection> {
        match parse_target(url).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad cluster URL", e))
        })? {
            Target::Single(url) => {
                let client = redis::Client::open(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(options.response_timeout)
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Ok(Connection::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Target::Cluster(seeds) => {
                let mut builder = ClusterClient::builder(seeds)
                    .connection_timeout(options.connect_timeout)
                    .retries(3)
                    .max_retry_wait(200);
                if let Some(t) = options.response_timeout {
                    builder = builder.response_timeout(t);
                }
                Ok(Connection::Cluster(Arc::new(LazyCluster {
                    client: builder.build()?,
                    conn: OnceCell::new(),
                })))
            }
        }
    }

    /// Is this a cluster connection?
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    async fn cluster(lazy: &LazyCluster) -> RedisResult<ClusterConnection> {
        lazy.conn
            .get_or_try_init(|| lazy.client.get_async_connection())
            .await
            .cloned()
    }

    /// Run a batch of independent commands and return their replies in order: one
    /// pipeline on a single server; one pipeline per slot, all at once, on a cluster.
    /// A command that fails fails the batch.
    pub async fn run_batch<T: FromRedisValue>(&mut self, batch: &Batch) -> RedisResult<Vec<T>> {
        if batch.cmds.is_empty() {
            return Ok(Vec::new());
        }
        let handle = match self {
            Connection::Single(conn) => {
                let mut pipe = redis::pipe();
                for (_, cmd) in &batch.cmds {
                    pipe.add_command(cmd.clone());
                }
                return pipe.query_async(conn).await;
            }
            Connection::Cluster(handle) => handle,
        };
        let conn = Self::cluster(handle).await?;
        // Commands grouped by slot, each remembering its place in the batch.
        let mut by_slot: HashMap<Route, (Pipeline, Vec<usize>)> = HashMap::new();
        for (i, (route, cmd)) in batch.cmds.iter().enumerate() {
            let (pipe, places) = by_slot
                .entry(*route)
                .or_insert_with(|| (redis::pipe(), Vec::new()));
            pipe.add_command(cmd.clone());
            places.push(i);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (route, (pipe, places)) in by_slot {
            let mut conn = conn.clone();
            tasks.spawn(async move {
                let n = places.len();
                let route = SingleNodeRoutingInfo::SpecificNode(route);
                conn.route_pipeline(pipe, 0, n, route)
                    .await
                    .map(|values| (places, values))
            });
        }
        let mut replies: Vec<Option<Value>> = vec![None; batch.cmds.len()];
        while let Some(done) = tasks.join_next().await {
            let (places, values) = done.map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "batch task failed", e.to_string()))
            })??;
            for (place, value) in places.into_iter().zip(values) {
                replies[place] = Some(value);
            }
        }
        replies
            .into_iter()
            .map(|v| {
                let v = v.ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Parse, "missing reply in a batch"))
                })?;
                // A command's error fails the batch, as it fails a pipeline.
                T::from_redis_value(v.extract_error()?).map_err(Into::into)
            })
            .collect()
    }

    /// One page of `SCAN cursor MATCH pattern COUNT count`, over the whole keyspace:
    /// on a cluster the cursor walks every primary in turn (the node's place in the
    /// top 16 bits, its own cursor below). Start with 0; the returned cursor is 0 when
    /// done. A failover or resharding during the walk may skip or repeat keys: callers
    /// tolerate repeats, and a walk can be run again.
    pub async fn scan_page(
        &mut self,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        let handle = match self {
            Connection::Single(conn) => {
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count);
                return scan.query_async(conn).await;
            }
            Connection::Cluster(handle) => handle,
        };
        const NODE_SHIFT: u32 = 48;
        let mut conn = Self::cluster(handle).await?;
        let primaries = primaries(&mut conn).await?;
        let node = (cursor >> NODE_SHIFT) as usize;
        let Some((host, port)) = primaries.get(node).cloned() else {
            return Ok((0, Vec::new())); // the cluster shrank under the walk
        };
        scan.arg(cursor & ((1 << NODE_SHIFT) - 1))
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        let reply = conn
            .route_command(
                scan,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
            )
            .await?;
        let (next, keys): (u64, Vec<String>) = FromRedisValue::from_redis_value(reply)?;
        if next >> NODE_SHIFT != 0 {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "SCAN cursor too large to walk a cluster",
            )));
        }
        let next = if next != 0 {
            ((node as u64) << NODE_SHIFT) | next
        } else if node + 1 < primaries.len() {
            ((node + 1) as u64) << NODE_SHIFT
        } else {
            0
        };
        Ok((next, keys))
    }
}

impl Connection {
    /// Run `cmd` on every primary (on a single server: on it), each reply with the
    /// node's address, in node order: for settings every node must have.
    pub async fn on_every_primary<T: FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> RedisResult<Vec<(String, T)>> {
        let handle = match self {
            Connection::Single(conn) => {
                return Ok(vec![("redis".to_string(), cmd.query_async(conn).await?)]);
            }
            Connection::Cluster(handle) => handle,
        };
        let mut conn = Self::cluster(handle).await?;
        let mut out = Vec::new();
        for (host, port) in primaries(&mut conn).await? {
            let reply = conn
                .route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    }),
                )
                .await?;
            out.push((format!("{host}:{port}"), T::from_redis_value(reply)?));
        }
        Ok(out)
    }
}

/// The cluster's primaries, `(host, port)`, sorted: from `CLUSTER SLOTS`, whose entries
/// are `[start, end, [host, port, id, ...], replicas...]`.
async fn primaries(conn: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
    let reply: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let mut nodes = Vec::new();
    for range in reply {
        let Some(master) = range.into_iter().nth(2) else {
            continue;
        };
        let Value::Array(parts) = master else {
            continue;
        };
        let mut parts = parts.into_iter();
        let (Some(host), Some(port)) = (parts.next(), parts.next()) else {
            continue;
        };
        nodes.push((
            String::from_redis_value(host)?,
            u16::from_redis_value(port)?,
        ));
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// Independent commands to run together ([`Connection::run_batch`]), each with the
/// key that routes it.
#[derive(Default, Clone)]
pub struct Batch {
    cmds: Vec<(Route, Cmd)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for `n` commands.
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            cmds: Vec::with_capacity(n),
        }
    }

    /// Add `cmd`, routed by `key` (the key it reads or writes).
    pub fn add(&mut self, key: &str, cmd: Cmd) -> &mut Batch {
        self.cmds
            .push((Route::with_key(key, SlotAddr::Master), cmd));
        self
    }

    /// How many commands.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(handle) => Box::pin(async move {
                let mut conn = Self::cluster(handle).await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(handle) => Box::pin(async move {
                let mut conn = Self::cluster(handle).await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(
            parse_target("redis://127.0.0.1:6379/").unwrap(),
            Target::Single("redis://127.0.0.1:6379/".into())
        );
        assert_eq!(
            parse_target("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            Target::Cluster(vec![
                "redis://:pw@10.0.0.1:7000/".into(),
                "redis://:pw@10.0.0.2:7001/".into()
            ])
        );
        assert_eq!(
            parse_target("rediss+cluster://h:1/?protocol=resp3").unwrap(),
            Target::Cluster(vec!["rediss://h:1/?protocol=resp3".into()])
        );
        assert!(parse_target("redis+cluster:///").is_err());
        let list = [
            "redis://:pw@a:1".to_string(),
            "redis://:pw@b:2/".to_string(),
        ];
        let url = cluster_url(&list).unwrap();
        assert_eq!(url, "redis+cluster://:pw@a:1,b:2/");
        assert_eq!(
            parse_target(&url).unwrap(),
            Target::Cluster(vec!["redis://:pw@a:1/".into(), "redis://:pw@b:2/".into()])
        );
        assert!(cluster_url(&["redis://:x@a:1".into(), "redis://:y@b:2".into()]).is_err());
        assert!(cluster_url(&["redis://a:1".into(), "rediss://b:2".into()]).is_err());
        assert!(cluster_url(&["http://a:1".into()]).is_err());
        assert!(cluster_url(&[]).is_err());
    }
}
