//! The shared HTTP transport (hyper-util client over rustls) and request counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The hyper client type every API request of this crate goes through.
pub(crate) type HyperClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client for presigned media URLs: its resolver refuses host names that resolve to
/// private, loopback, link-local or reserved addresses (the URLs come from API responses; a
/// name is checked after DNS, not only as written).
pub(crate) type MediaClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>;

/// Resolves with the system resolver and keeps only the addresses media may be fetched from:
/// public ones, and loopback when the policy allows it (the simulator).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicResolver {
    allow_loopback: bool,
}

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for PublicResolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<std::net::SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| {
                    crate::media::is_public(a.ip()) || (allow_loopback && a.ip().is_loopback())
                })
                .collect();
            if ok.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "refused: media host {host:?} resolves only to private, loopback or reserved addresses"
                    ),
                ));
            }
            Ok(ok.into_iter())
        })
    }
}

/// Builds the media client (see [`MediaClient`]).
pub(crate) fn build_media_client(allow_loopback: bool) -> std::io::Result<MediaClient> {
    over(HttpConnector::new_with_resolver(PublicResolver {
        allow_loopback,
    }))
}

/// Builds the HTTP(S) client: rustls with the platform's root certificates, HTTP/1.1, pooled.
pub(crate) fn build_client() -> std::io::Result<HyperClient> {
    over(HttpConnector::new())
}

/// The client every request goes through, over `http` (plain connections with a resolver):
/// rustls with the platform's root certificates, HTTP/1.1, pooled.
fn over<R>(
    mut http: HttpConnector<R>,
) -> std::io::Result<Client<hyper_rustls::HttpsConnector<HttpConnector<R>>, Full<Bytes>>>
where
    R: Clone + Send + Sync + 'static,
    HttpConnector<R>: tower_service::Service<
            http::Uri,
            Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
            Future: Send + 'static,
        >,
{
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(https))
}

/// Counts API calls by endpoint and status, token requests, and 429s.
///
/// Cloneable; all clones share the counts. The archiver reads it to report API calls per
/// recording.
#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    inner: Arc<Mutex<MetricsInner>>,
}

#[derive(Debug, Default, Clone)]
struct MetricsInner {
    calls: BTreeMap<(String, u16), u64>,
    token_requests: u64,
    token_failures: u64,
    waited_ms: u64,
}

/// A snapshot of [`ApiMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiMetricsSnapshot {
    /// Calls by (endpoint shape, status); status 0 means a transport error.
    pub calls: BTreeMap<(String, u16), u64>,
    /// Requests to the OAuth token endpoint.
    pub token_requests: u64,
    /// Token requests that got no token (login host down, throttled, credentials refused).
    pub token_failures: u64,
    /// Milliseconds spent waiting for rate-limit pacing or `Retry-After`.
    pub waited_ms: u64,
}

impl ApiMetricsSnapshot {
    /// Total API calls (all endpoints and statuses, token requests excluded).
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Seconds calls were held for pacing or `Retry-After`, summed over concurrent calls.
    pub fn waited_seconds(&self) -> f64 {
        self.waited_ms as f64 / 1000.0
    }

    /// Calls answered 429.
    pub fn throttled(&self) -> u64 {
        self.calls
            .iter()
            .filter(|((_, s), _)| *s == 429)
            .map(|(_, n)| n)
            .sum()
    }
}

impl ApiMetrics {
    pub(crate) fn record(&self, endpoint: &str, status: u16) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.calls.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    pub(crate) fn token_request(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .token_requests += 1;
    }

    pub(crate) fn token_failure(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .token_failures += 1;
    }

    pub(crate) fn waited(&self, d: std::time::Duration) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waited_ms += d.as_millis() as u64;
    }

    /// Returns the current counts.
    pub fn snapshot(&self) -> ApiMetricsSnapshot {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ApiMetricsSnapshot {
            calls: g.calls.clone(),
            token_requests: g.token_requests,
            token_failures: g.token_failures,
            waited_ms: g.waited_ms,
        }
    }
}

/// Replaces ids (UUID-like path segments) by `{id}` so counters group by endpoint.
pub(crate) fn endpoint_shape(method: &http::Method, path: &str) -> String {
    let shaped: Vec<&str> = path
        .split('/')
        .map(|s| {
            if s.len() >= 20 || s.starts_with("job-") {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} {}", shaped.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    fn name(s: &str) -> hyper_util::client::legacy::connect::dns::Name {
        s.parse().unwrap()
    }

    /// The check happens after DNS: `localhost` is a name, and what it resolves to
    /// (loopback) is refused unless the policy allows loopback.
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused() {
        let mut strict = PublicResolver {
            allow_loopback: false,
        };
        let e = strict.call(name("localhost")).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("resolves only to private"), "{e}");
        let mut sim = PublicResolver {
            allow_loopback: true,
        };
        let addrs: Vec<_> = sim.call(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
