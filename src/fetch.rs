//! Outbound HTTP GETs the gateway makes on a provider's behalf (Amazon SNS signing
//! certificates and subscription confirmations), behind a trait so tests run with no
//! network: fixtures go through the same code path and the same caches.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Fetches a URL the caller has already checked against an allow-list.
pub trait Fetch: Send + Sync {
    /// GET `url`; the body, or a one-line reason.
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// A fetcher that refuses every request: for gateways that never fetch.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFetch;

impl Fetch for NoFetch {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move { Err(format!("outbound fetching is disabled (wanted {url})")) })
    }
}
