//! The shared HTTP transport (hyper-util client over rustls) and request counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The hyper client type every request of this crate goes through.
pub(crate) type HyperClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the HTTP(S) client: rustls with the platform's root certificates, HTTP/1.1, pooled.
pub(crate) fn build_client() -> std::io::Result<HyperClient> {
    let mut http = HttpConnector::new();
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
