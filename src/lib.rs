//! dndgate: a webhook gateway that turns messaging providers' callbacks into
//! Do-Not-Disturb flags in Redis.
//!
//! Module map (a request walks them in this order; see `docs/ARCHITECTURE.md`):
//!
//! - [`server`]: the hyper HTTP server; the only module that knows hyper.
//! - [`config`]: the TOML configuration, tenants and their secrets.
//! - [`signature`]: signature schemes, checked on the raw bytes.
//! - [`twilio`]: the Twilio provider: parse and normalise its callbacks.
//! - [`event`]: normalised channel events.
//! - [`address`]: address normalisation (E.164, email, page-scoped ids).
//! - [`classify`]: keywords and error codes to decisions; pure.
//! - [`store`]: the Redis layout, the atomic apply script and the lookup; the only
//!   module that knows the key layout.
//! - [`pipeline`]: the webhook road from a verified request to an answer.
//! - [`api`]: the operator API (lookup and batch check).
//! - [`managed`]: `redis_url = "managed"`: start and supervise a local redis-server.
//! - [`error`], [`secret`]: the error type and secrets that never reach a log.

pub mod address;
pub mod classify;
pub mod error;
pub mod event;
pub mod secret;
pub mod signature;
pub mod store;
pub mod twilio;
