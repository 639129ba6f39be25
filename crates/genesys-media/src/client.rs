//! The rate-limit aware Platform API client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::auth::TokenProvider;
use crate::clock::{SourceClock, note_source_date};
use crate::error::{Error, Result, cause_chain};
use crate::media::{MediaPolicy, MediaUrl};
use crate::models::ApiErrorBody;
use crate::pacer::Pacer;
use crate::region::Environment;
use crate::retry::{RetryPolicy, Wait, parse_retry_after};
use crate::transport::{
    ApiMetrics, HyperClient, MediaClient, build_client, build_media_client, endpoint_shape,
};

/// How discovery asks for media URLs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceMode {
    /// Analytics details query, then batch download requests (100 conversations per job):
    /// media in its original format, fewest API calls. The default.
    #[default]
    Batch,
    /// Analytics details query, `recordingmetadata` per conversation, then the per-recording
    /// GET with this `formatId` (`WAV`, `WEBM`, `OGG_OPUS`, `MP3`, ...).
    PerRecording {
        /// The `formatId` to request.
        format_id: String,
    },
    /// The non-public listing `GET /api/v2/recordings/recordings?status=completed` that some
    /// gateways expose, with an `md5` per recording.
    CompatListing,
}

/// Which analytics API finds the conversations of an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnalyticsMode {
    /// Jobs when the interval starts past the synchronous query's reach (35 days back, less
    /// a margin), for the part up to the data lake's availability date; the synchronous query
    /// otherwise.
    #[default]
    Auto,
    /// Always the synchronous details query (7-day pieces, 10,000-result cap, split as needed).
    Query,
    /// Always asynchronous details jobs with cursor paging (history).
    Jobs,
}

/// Settings of a [`GenesysClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Where the org lives.
    pub environment: Environment,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (never shown by `Debug`).
    pub client_secret: String,
    /// The per-token request budget to pace below (Genesys Cloud: 300 per minute).
    pub requests_per_minute: u32,
    /// Retry timing for API calls.
    pub retry: RetryPolicy,
    /// Time limit for one API request (headers and body).
    pub request_timeout: Duration,
    /// Time limit to receive media response headers.
    pub media_header_timeout: Duration,
    /// `paging.pageSize` of the details query.
    pub page_size: u32,
    /// Largest result set of one details query before the interval is split.
    pub max_query_results: u64,
    /// First wait before polling a batch job or a transcode, doubling up to `poll_max`.
    pub poll_initial: Duration,
    /// Batch download requests (100 conversations each) resolved at the same time while
    /// discovery reads on; their recordings are still emitted in discovery order.
    pub batch_parallelism: usize,
    /// Longest wait between polls.
    pub poll_max: Duration,
    /// Give up on a batch job or transcode after this long.
    pub poll_timeout: Duration,
    /// How media URLs are obtained.
    pub source: SourceMode,
    /// Which analytics API finds conversations.
    pub analytics: AnalyticsMode,
    /// Which media hosts may be fetched.
    pub media_policy: MediaPolicy,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("environment", &self.environment)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("requests_per_minute", &self.requests_per_minute)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults for an org: 300 requests/min, page size 200, batch source mode, public media
    /// hosts over https only.
    pub fn new(
        environment: Environment,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            environment,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            requests_per_minute: 300,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            media_header_timeout: Duration::from_secs(60),
            page_size: 200,
            max_query_results: 10_000,
            poll_initial: Duration::from_secs(1),
            batch_parallelism: 4,
            poll_max: Duration::from_secs(5),
            poll_timeout: Duration::from_secs(600),
            source: SourceMode::Batch,
            analytics: AnalyticsMode::Auto,
            media_policy: MediaPolicy::default(),
        }
    }
}

/// A media response whose body has not been read yet.
#[derive(Debug)]
pub struct MediaResponse {
    /// `Content-Length`, when sent.
    pub content_length: Option<u64>,
    /// `Content-Type`, when sent.
    pub content_type: Option<String>,
    /// `ETag` without quotes, when sent.
    pub etag: Option<String>,
    /// The streaming body.
    pub body: hyper::body::Incoming,
}

/// A Genesys Cloud Platform API client for recordings: OAuth, pacing below the per-token budget,
/// retries, discovery and media. Cheap to clone; clones share the token, the pacer and the
/// metrics.
#[derive(Clone)]
pub struct GenesysClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) http: HyperClient,
    pub(crate) media_http: MediaClient,
    pub(crate) tokens: TokenProvider,
    pub(crate) pacer: Pacer,
    pub(crate) metrics: ApiMetrics,
    /// The source's clock: the `Date` of the latest API (or token) answer and when it arrived.
    pub(crate) source_clock: SourceClock,
    /// How long batch download jobs take to be ready (learnt; see `ready.rs`).
    pub(crate) batch_ready: crate::ready_estimate::ReadyEstimate,
    /// How long analytics details jobs take to be fulfilled (learnt).
    pub(crate) details_job_ready: crate::ready_estimate::ReadyEstimate,
}

impl fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysClient")
            .field("config", &self.inner.cfg)
            .finish()
    }
}

impl GenesysClient {
    /// Builds a client. No request is made until first use.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let http = build_client().map_err(|e| Error::InvalidArgument(format!("TLS roots: {e}")))?;
        let media_http = build_media_client(cfg.media_policy.allow_loopback)
            .map_err(|e| Error::InvalidArgument(format!("TLS roots: {e}")))?;
        let metrics = ApiMetrics::default();
        let tokens = TokenProvider::new(
            cfg.client_id.clone(),
            cfg.client_secret.clone(),
            cfg.environment.token_url(),
            http.clone(),
            metrics.clone(),
            cfg.retry,
        );
        let source_clock = tokens.source_clock.clone();
        let pacer = Pacer::new(cfg.requests_per_minute);
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                http,
                media_http,
                tokens,
                pacer,
                metrics,
                source_clock,
                batch_ready: Default::default(),
                details_job_ready: Default::default(),
            }),
        })
    }

    /// The source's time now, from the `Date` of its latest API answer plus the (monotonic)
    /// time since; `None` before the first answer. Its one-second resolution errs early.
    pub fn source_now(&self) -> Option<DateTime<Utc>> {
        let g = self
            .inner
            .source_clock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.map(|(date, at)| {
            date + chrono::Duration::from_std(at.elapsed()).unwrap_or(chrono::Duration::zero())
        })
    }

    /// The present as both clocks allow: the earlier of this machine's clock and the source's
    /// ([`Self::source_now`]). A local clock running ahead of the source must not make
    /// discovery treat as past (and complete) a time the source has not reached.
    pub fn now(&self) -> DateTime<Utc> {
        let local = Utc::now();
        self.source_now().map_or(local, |s| s.min(local))
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// API call counters.
    pub fn metrics(&self) -> &ApiMetrics {
        &self.inner.metrics
    }

    /// The token provider (to check credentials up front).
    pub fn tokens(&self) -> &TokenProvider {
        &self.inner.tokens
    }

    /// Calls an API endpoint and decodes the JSON answer, pacing, re-authenticating once on
    /// 401, waiting `Retry-After` on 429 and backing off on 5xx and transport errors. Returns
    /// the status too, because 202 means "not ready yet" for some endpoints.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, T)> {
        let inner = &self.inner;
        let path = path_and_query.split('?').next().unwrap_or_default();
        let endpoint = endpoint_shape(&method, path);
        let url = format!("{}{}", inner.cfg.environment.api_base(), path_and_query);
        let payload = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default();
        let policy = inner.cfg.retry;
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut reauthed = false;
        loop {
            attempts += 1;
            let token = inner.tokens.token().await?;
            let waited = inner.pacer.acquire(&endpoint).await;
            inner.metrics.waited(waited);
            tracing::trace!(%endpoint, waited_ms = waited.as_millis() as u64, "API call");
            let mut req = Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(header::AUTHORIZATION, format!("Bearer {}", token.secret()))
                .header(header::ACCEPT, "application/json");
            if body.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(payload.clone()))
                .map_err(|e| Error::InvalidArgument(format!("{endpoint}: {e}")))?;
            let outcome = tokio::time::timeout(inner.cfg.request_timeout, async {
                let resp = inner
                    .http
                    .request(req)
                    .await
                    .map_err(|e| transport(&endpoint, &e))?;
                let (parts, body) = resp.into_parts();
                let bytes = Limited::new(body, 64 << 20)
                    .collect()
                    .await
                    .map_err(|e| Error::Transport {
                        endpoint: endpoint.clone(),
                        message: format!("reading body: {e}"),
                    })?
                    .to_bytes();
                Ok::<_, Error>((parts, bytes))
            })
            .await
            .unwrap_or_else(|_| {
                Err(Error::Transport {
                    endpoint: endpoint.clone(),
                    message: "request timed out".into(),
                })
            });
            let (parts, bytes) = match outcome {
                Ok(ok) => ok,
                Err(e) => {
                    inner.metrics.record(&endpoint, 0);
                    if let Some(wait) = policy.next_wait(attempts, started.elapsed(), Wait::Backoff)
                    {
                        tracing::debug!(%endpoint, error = %e, ?wait, "retrying after transport error");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(exhausted(attempts, started, e));
                }
            };
            let status = parts.status;
            inner.metrics.record(&endpoint, status.as_u16());
            note_source_date(&inner.source_clock, &parts.headers);
            let hdr = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            inner
                .pacer
                .observe(
                    &endpoint,
                    hdr("inin-ratelimit-allowed").map(|v| v.min(u32::MAX as u64) as u32),
                    hdr("inin-ratelimit-count").map(|v| v.min(u32::MAX as u64) as u32),
                    hdr("inin-ratelimit-reset").map(|s| Duration::from_secs(s.min(3600))),
                )
                .await;
            if status.is_success() {
                let value = if bytes.is_empty() && status == StatusCode::NO_CONTENT {
                    serde_json::from_slice(b"null")
                } else {
                    serde_json::from_slice(&bytes)
                };
                return value.map(|v| (status, v)).map_err(|e| Error::Decode {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                });
            }
            let message = serde_json::from_slice::<ApiErrorBody>(&bytes)
                .ok()
                .and_then(|b| b.message)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
            let retry_after = parse_retry_after(parts.headers.get(header::RETRY_AFTER));
            let err = Error::Status {
                endpoint: endpoint.clone(),
                status: status.as_u16(),
                message,
                retry_after,
            };
            if status == StatusCode::UNAUTHORIZED && !reauthed {
                reauthed = true;
                inner.tokens.invalidate(&token).await;
                tracing::debug!(%endpoint, "401: re-authenticating once");
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let why = Wait::RetryAfter(retry_after);
                if let Some(wait) = policy.next_wait(attempts, started.elapsed(), why) {
                    tracing::debug!(%endpoint, ?wait, "429: waiting Retry-After");
                    inner.pacer.block_for(wait).await;
                    continue;
                }
                return Err(exhausted(attempts, started, err));
            }
            if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
                if let Some(wait) = policy.next_wait(attempts, started.elapsed(), Wait::Backoff) {
                    tracing::debug!(%endpoint, %status, ?wait, "retrying after server error");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(exhausted(attempts, started, err));
            }
            return Err(err);
        }
    }

    /// Sends one GET for a presigned media URL (no `Authorization` header; the URL carries its
    /// own signature) after checking the host against the [`MediaPolicy`]. Does not retry:
    /// the caller decides (a 403 means "refresh the URL", a 429 "wait", a 5xx "back off").
    pub async fn open_media(&self, url: &MediaUrl) -> Result<MediaResponse> {
        self.inner.cfg.media_policy.check(url)?;
        let endpoint = format!("GET media {}", url.host());
        let req = Request::get(url.expose())
            .body(Full::new(Bytes::new()))
            .map_err(|_| Error::Refused(format!("media URL {url} is not a valid request URI")))?;
        let resp = tokio::time::timeout(
            self.inner.cfg.media_header_timeout,
            self.inner.media_http.request(req),
        )
        .await
        .map_err(|_| Error::Transport {
            endpoint: endpoint.clone(),
            message: "no response headers in time".into(),
        })?
        .map_err(|e| transport(&endpoint, &e))?;
        let status = resp.status();
        let h = resp.headers();
        if !status.is_success() {
            let retry_after = parse_retry_after(h.get(header::RETRY_AFTER));
            return Err(Error::Status {
                endpoint,
                status: status.as_u16(),
                message: status.canonical_reason().unwrap_or("error").to_string(),
                retry_after,
            });
        }
        let content_length = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let content_type = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let etag = h
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        Ok(MediaResponse {
            content_length,
            content_type,
            etag,
            body: resp.into_body(),
        })
    }
}

fn transport(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    Error::Transport {
        endpoint: endpoint.to_string(),
        message: cause_chain(e),
    }
}

fn exhausted(attempts: u32, started: Instant, last: Error) -> Error {
    Error::RetriesExhausted {
        attempts,
        elapsed: started.elapsed(),
        last: Box::new(last),
    }
}
