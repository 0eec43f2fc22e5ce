//! dndgate: a webhook gateway that turns messaging providers' callbacks into
//! Do-Not-Disturb flags in Redis.
//!
//! Module map, in the order a webhook walks them (see `docs/ARCHITECTURE.md`):
//!
//! - [`server`]: the hyper HTTP server; the only module that knows hyper.
//! - [`pipeline`]: the shared road: route, hand the request to its provider, classify,
//!   apply or spool, answer; and the unsubscribe links' road.
//! - [`providers`]: the registry, and one folder per provider (its road: tenant,
//!   verify, parse, normalise; its configuration section; its error-code table).
//! - [`road`]: what a provider's road is given and hands back (request, answer,
//!   delivery, the host's services, the configuration context).
//! - [`config`]: the TOML configuration, tenants, secrets and policy.
//! - [`signature`]: the signature error shared by every provider's verifier.
//! - [`event`]: normalised channel events, channels, scopes and sources.
//! - [`address`]: address normalisation (E.164, email, page-scoped ids).
//! - [`classify`]: keywords and error codes to decisions; pure.
//! - [`state`]: which records a change reaches (policy, contact linking).
//! - [`store`]: the Redis layout, the atomic apply script and the lookups; the only
//!   module that knows the key layout.
//! - [`spool`]: the durable spool: changes fsync'd locally while Redis is down, replayed
//!   in order when it returns.
//! - [`lookup`]: the send-time lookup for senders, single and batch; fails closed.
//! - [`api`]: the operator HTTP API (lookup and batch check).
//! - [`links`]: unsubscribe links: the compact signed token (key rotation, expiry).
//! - [`managed`]: `redis_url = "managed"`: a supervised local redis-server.
//! - [`audit`]: the audit stream contract: typed entries and a consumer for automations.
//! - [`bulk`]: import, export and filter of a tenant's records.
//! - [`cli`]: the `dndgate` command line.
//! - [`telemetry`]: logs and metrics; owns the types it reports.
//! - [`fetch`]: outbound HTTPS GETs (SNS certificates and subscription confirmations),
//!   behind a trait for tests.
//! - [`time`]: the one clock, and one RFC 3339 parser for every provider's timestamps.
//! - [`error`], [`secret`]: the error type, and secrets that never reach a log.
//! - [`redact`]: contact addresses masked in log lines.

pub mod address;
pub mod api;
pub mod audit;
pub mod bulk;
pub mod classify;
pub mod cli;
pub mod config;
pub mod console;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod fetch;
pub mod links;
pub mod lookup;
pub mod managed;
pub mod outbound;
pub mod pipeline;
pub mod providers;
pub mod redact;
pub mod road;
pub mod secret;
pub mod server;
pub mod signature;
pub mod simulate;
pub mod spool;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
