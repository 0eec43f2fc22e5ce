//! dndgate: a webhook gateway that turns messaging providers' callbacks into
//! Do-Not-Disturb flags in Redis.
//!
//! Module map, in the order a webhook walks them (see `docs/ARCHITECTURE.md`):
//!
//! - [`server`]: the hyper HTTP server; the only module that knows hyper.
//! - [`pipeline`]: the webhook road: tenant, verify, parse, normalise, classify, apply,
//!   answer.
//! - [`config`]: the TOML configuration, tenants, secrets and policy.
//! - [`signature`]: signature schemes, checked on the raw request.
//! - [`twilio`]: the Twilio provider: parse and normalise its callbacks.
//! - [`meta`]: the Meta provider (WhatsApp, Messenger, Instagram): handshake, parse,
//!   normalise.
//! - [`ses`]: the Amazon SES provider: the SNS envelope, and SES bounces and complaints
//!   normalised (its signature is [`signature::sns`]).
//! - [`postmark`]: the Postmark provider (basic auth): bounces, complaints and
//!   subscription changes to email events.
//! - [`standard_webhooks`]: Standard Webhooks senders (Resend, Svix-style): bounces,
//!   complaints and unsubscribes, one event per recipient.
//! - [`sendgrid`]: the SendGrid Event Webhook: parse and normalise its event batches.
//! - [`mailgun`]: Mailgun webhooks: take the signed body apart, normalise its event.
//! - [`event`]: normalised channel events, channels and scopes.
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
//! - [`fetch`]: outbound HTTPS GETs (SNS certificates and subscription confirmations),
//!   behind a trait for tests.
//! - [`time`]: one RFC 3339 parser for every provider's timestamps.
//! - [`error`], [`secret`]: the error type, and secrets that never reach a log.
//! - [`redact`]: contact addresses masked in log lines.

pub mod address;
pub mod api;
pub mod audit;
pub mod bulk;
pub mod classify;
pub mod cli;
pub mod config;
pub mod error;
pub mod event;
pub mod fetch;
pub mod links;
pub mod lookup;
pub mod mailgun;
pub mod managed;
pub mod meta;
pub mod pipeline;
pub mod postmark;
pub mod redact;
pub mod secret;
pub mod sendgrid;
pub mod server;
pub mod ses;
pub mod signature;
pub mod spool;
pub mod standard_webhooks;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod twilio;
