//! Events out: every DND change becomes a signed webhook to the tenant's endpoints
//! (`[[tenants.ID.endpoints]]`), delivered in order per address, at least once, with
//! retries on a schedule and dead letters after it; and the audit stream's retention,
//! which never trims what an endpoint has not yet had.
//!
//! How it works, in order:
//!
//! - The audit streams are the queue. Each endpoint has a consumer group on each of
//!   its tenant's 16 shard streams (`store::OutShard`), created where the stream ends
//!   when the endpoint is first seen.
//! - One worker per (endpoint, shard) in every gateway instance; a lease in Redis
//!   lets one of them deliver at a time, so several instances share the shards and
//!   no entry is sent by two. Whoever holds the lease after a crash reads the
//!   entries its predecessor had read and not finished first, so at most the one in
//!   flight is sent twice, with the same id.
//! - The head entry of a shard is finished (acknowledged) only when delivered, refused
//!   or dead-lettered; the entries behind it wait. An address's entries are all in
//!   one shard, so they arrive in the order they were applied.
//! - [`crate::endpoint::schedule`] says what an answer means and when to try again.
//! - Retention ([`retention`]) trims each shard below the oldest entry an enabled
//!   endpoint still needs, and below `audit_retention` in age.

pub mod event;
pub mod manage;
mod worker;

pub use crate::endpoint::{Endpoint, EventType, RawEndpoint};
pub use event::OutEvent;
pub use worker::{Outbound, retention_pass};

/// Sign `body` for an endpoint: the three Standard Webhooks headers, the signature
/// header with one `v1,` entry per secret (a receiver that knows any verifies).
pub fn signed_headers(
    secrets: &[crate::secret::Secret],
    id: &str,
    timestamp_s: i64,
    body: &str,
) -> [(&'static str, String); 3] {
    let ts = timestamp_s.to_string();
    let signature = secrets
        .iter()
        .filter_map(|s| crate::signature::sign_whsec(s.expose(), id, &ts, body.as_bytes()))
        .collect::<Vec<_>>()
        .join(" ");
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts),
        ("webhook-signature", signature),
    ]
}
