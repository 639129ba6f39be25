//! OAuth client-credentials tokens with a single-flight cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::retry::{RetryPolicy, Wait};
use crate::transport::{ApiMetrics, HyperClient};

/// A bearer token. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// The secret value, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Gets and caches client-credentials tokens from `login.<region>/oauth/token`.
///
/// Concurrent callers share one token; when it is near expiry (60 s before `expires_in`, as the
/// official SDKs do) the first caller refreshes it and the others wait for that one refresh.
/// [`TokenProvider::invalidate`] drops a token the API refused with 401.
pub struct TokenProvider {
    client_id: String,
    client_secret: String,
    token_url: String,
    http: HyperClient,
    metrics: ApiMetrics,
    retry: RetryPolicy,
    cache: Mutex<Option<Cached>>,
    /// The source's clock, shared with the client: the token answer's `Date` sets it, so the
    /// source's present is known before the first API call.
    pub(crate) source_clock: crate::clock::SourceClock,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_url", &self.token_url)
            .finish()
    }
}

const REFRESH_MARGIN: Duration = Duration::from_secs(60);

impl TokenProvider {
    pub(crate) fn new(
        client_id: String,
        client_secret: String,
        token_url: String,
        http: HyperClient,
        metrics: ApiMetrics,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            client_id,
            client_secret,
            token_url,
            http,
            metrics,
            retry,
            cache: Mutex::new(None),
            source_clock: Default::default(),
        }
    }

    /// Returns a valid token, fetching one if none is cached or the cached one is near expiry.
    pub async fn token(&self) -> Result<AccessToken> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, ttl) = self.fetch().await?;
        let margin = if ttl > REFRESH_MARGIN * 2 {
            REFRESH_MARGIN
        } else {
            ttl / 4
        };
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + ttl - margin,
        });
        Ok(token)
    }

    /// Forgets `token` if it is still the cached one, so the next call re-authenticates.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == token) {
            *cache = None;
        }
    }

    /// Gets a token, retrying what the login host may answer on a bad moment (429 with its
    /// `Retry-After`, 5xx, transport errors and timeouts) with the API calls' backoff and
    /// budget. Only a refusal of the credentials (400/401/403, or another 4xx naming a wrong
    /// login URL) is returned at once, as [`Error::Auth`].
    async fn fetch(&self) -> Result<(AccessToken, Duration)> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.metrics.token_request();
            let attempt = self.fetch_once().await;
            if attempt.is_err() {
                self.metrics.token_failure();
            }
            let err = match attempt {
                Ok(t) => return Ok(t),
                Err(e @ (Error::Auth { .. } | Error::Decode { .. })) => return Err(e),
                Err(e) => e,
            };
            let why = match &err {
                Error::Status {
                    status: 429,
                    retry_after,
                    ..
                } => Wait::RetryAfter(*retry_after),
                _ => Wait::Backoff,
            };
            let Some(wait) = self.retry.next_wait(attempts, started.elapsed(), why) else {
                return Err(Error::RetriesExhausted {
                    attempts,
                    elapsed: started.elapsed(),
                    last: Box::new(err),
                });
            };
            tracing::debug!(error = %err, ?wait, "token request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One client-credentials request: `Authorization: Basic base64(id:secret)` with the raw
    /// id and secret, as the official SDKs send it (the oauth2 crate URL-encodes both first,
    /// which changes secrets holding `+ / = ~`).
    async fn fetch_once(&self) -> Result<(AccessToken, Duration)> {
        const ENDPOINT: &str = "POST /oauth/token";
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.client_secret));
        let req = http::Request::post(&self.token_url)
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials",
            )))
            .map_err(|e| Error::InvalidArgument(format!("token URL: {e}")))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| Error::Transport {
                endpoint: ENDPOINT.into(),
                message: crate::error::cause_chain(&e),
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, 1 << 20)
                .collect()
                .await
                .map_err(|e| Error::Transport {
                    endpoint: ENDPOINT.into(),
                    message: format!("reading the token response: {e}"),
                })?
                .to_bytes();
            Ok::<_, Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(TOKEN_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Transport {
                endpoint: ENDPOINT.into(),
                message: "the token request timed out".into(),
            })??;
        let status = parts.status;
        crate::clock::note_source_date(&self.source_clock, &parts.headers);
        if status.is_success() {
            let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| Error::Decode {
                endpoint: ENDPOINT.into(),
                message: format!("token response: {e}"),
            })?;
            return Ok((
                AccessToken(Arc::from(t.access_token.as_str())),
                token_lifetime(t.expires_in),
            ));
        }
        let retry_after =
            crate::retry::parse_retry_after(parts.headers.get(http::header::RETRY_AFTER));
        let described = serde_json::from_slice::<TokenError>(&body).ok();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(Error::Status {
                endpoint: ENDPOINT.into(),
                status: status.as_u16(),
                message: status.canonical_reason().unwrap_or("error").into(),
                retry_after,
            });
        }
        let description = described
            .map(|d| {
                let text = d.error_description.or(d.description).unwrap_or_default();
                match d.error {
                    Some(code) if text.is_empty() => code,
                    Some(code) => format!("{code}: {text}"),
                    None => text,
                }
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| {
                format!("the login host answered {status} (is the region or API base URL right?)")
            });
        Err(Error::Auth {
            status: status.as_u16(),
            description,
        })
    }
}

/// Time limit of one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest lifetime a Genesys token can have (48 h); longer `expires_in` values are taken
/// as this, so no deadline computed from them can overflow.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(48 * 3600);

/// `expires_in` as a usable lifetime: absent means an hour, and it is kept between 1 s and
/// [`MAX_TOKEN_LIFETIME`].
fn token_lifetime(expires_in: Option<f64>) -> Duration {
    match expires_in {
        Some(s) if s.is_finite() => {
            Duration::from_secs_f64(s.clamp(1.0, MAX_TOKEN_LIFETIME.as_secs_f64()))
        }
        Some(_) => Duration::from_secs(1),
        None => Duration::from_secs(3600),
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(serde::Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_clamped() {
        assert_eq!(token_lifetime(None), Duration::from_secs(3600));
        assert_eq!(token_lifetime(Some(86_400.0)), Duration::from_secs(86_400));
        assert_eq!(token_lifetime(Some(1e300)), MAX_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(Some(-5.0)), Duration::from_secs(1));
        assert_eq!(token_lifetime(Some(f64::NAN)), Duration::from_secs(1));
        // The deadline the cache computes from the largest lifetime does not overflow.
        let _ = Instant::now() + token_lifetime(Some(u64::MAX as f64));
    }
}
