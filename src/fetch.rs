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

/// Largest body [`HttpsFetch`] reads. An SNS certificate is about 2 KiB and a
/// subscription confirmation answer well under 1 KiB; the bound keeps a misbehaving
/// server from filling memory.
pub const MAX_FETCH_BYTES: usize = 64 * 1024;

/// How long [`HttpsFetch`] waits for a connection, and for a whole answer. A webhook
/// request waits on the fetch, and SNS gives up on a request after 15 seconds by
/// default, so the fetch must end well before.
pub const FETCH_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// See [`FETCH_CONNECT_TIMEOUT`].
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// The real fetcher: HTTPS GETs with reqwest and rustls (Mozilla's root certificates
/// built in, so it does not depend on the host's CA bundle).
///
/// HTTPS only; redirects are not followed, because the caller checked the URL's host
/// against an allow-list and a redirect would leave it; only a 2xx answer counts;
/// bodies over [`MAX_FETCH_BYTES`] are refused. An HTTPS client (TLS, certificate
/// checks, HTTP/1.1 and 2, proxies) is not something to hand-write, hence the crate.
#[derive(Debug, Clone)]
pub struct HttpsFetch {
    client: reqwest::Client,
}

impl HttpsFetch {
    /// A fetcher with the timeouts above; fails only if TLS cannot be set up.
    pub fn new() -> Result<HttpsFetch, String> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(FETCH_CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("dndgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTPS client: {e}"))?;
        Ok(HttpsFetch { client })
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_FETCH_BYTES as u64)
        {
            return Err(format!("GET {url}: body over {MAX_FETCH_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_FETCH_BYTES {
                return Err(format!("GET {url}: body over {MAX_FETCH_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl Fetch for HttpsFetch {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(self.fetch(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No network in tests: only the refusals that happen before a connection.
    #[tokio::test]
    async fn https_fetch_refuses_plain_http_without_connecting() {
        let fetch = HttpsFetch::new().unwrap();
        let err = fetch.get("http://127.0.0.1:9/x.pem").await.unwrap_err();
        assert!(err.contains("http://127.0.0.1:9/x.pem"), "{err}");
        let err = NoFetch.get("https://x/y").await.unwrap_err();
        assert!(err.contains("disabled"), "{err}");
    }
}
