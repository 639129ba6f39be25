//! OAuth client-credentials tokens with a single-flight cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse, TokenUrl};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};
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
    cache: Mutex<Option<Cached>>,
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
    ) -> Self {
        Self {
            client_id,
            client_secret,
            token_url,
            http,
            metrics,
            cache: Mutex::new(None),
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

    async fn fetch(&self) -> Result<(AccessToken, Duration)> {
        self.metrics.token_request();
        let token_url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| Error::InvalidArgument(format!("token URL: {e}")))?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_token_uri(token_url);
        let http = self.http.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let (parts, body) = req.into_parts();
                let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
                let resp = tokio::time::timeout(Duration::from_secs(30), http.request(req))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "token request timed out")
                    })?
                    .map_err(|e| std::io::Error::other(format!("token request failed: {e}")))?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, 1 << 20)
                    .collect()
                    .await
                    .map_err(|e| std::io::Error::other(format!("reading token response: {e}")))?
                    .to_bytes();
                Ok::<_, std::io::Error>(http::Response::from_parts(parts, body.to_vec()))
            }
        };
        let resp = client
            .exchange_client_credentials()
            .request_async(&send)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => Error::Auth {
                    status: 401,
                    description: r
                        .error_description()
                        .cloned()
                        .unwrap_or_else(|| r.error().to_string()),
                },
                oauth2::RequestTokenError::Request(e) => Error::Transport {
                    endpoint: "POST /oauth/token".into(),
                    message: e.to_string(),
                },
                oauth2::RequestTokenError::Parse(e, _) => Error::Decode {
                    endpoint: "POST /oauth/token".into(),
                    message: e.to_string(),
                },
                oauth2::RequestTokenError::Other(m) => Error::Auth {
                    status: 0,
                    description: m,
                },
            })?;
        let ttl = resp
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_secs(1));
        Ok((
            AccessToken(Arc::from(resp.access_token().secret().as_str())),
            ttl,
        ))
    }
}
