//! The simulator's hyper server and request handlers.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::auth::token;
use crate::capture::Capture;
use crate::config::SimConfig;
use crate::dataset::{Dataset, Rng, SimConversation};
use crate::faults::Fault;
use crate::handle::SimHandle;
use crate::lifecycle::{Attachments, Lifecycle};
use crate::media::media;
use crate::ratelimit::RateLimiter;
use crate::routes::api_route;
use crate::state::{Body, Inner, SimStats, State, api_error};

/// Entry point: [`Simulator::start`].
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen`, opens `config.capture_requests` (if set) for appending,
    /// generates the dataset and serves until the handle is dropped.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(config.listen).await?;
        let capture = match &config.capture_requests {
            Some(path) => Some(Capture::open(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("capture file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let addr = listener.local_addr()?;
        let data = Dataset::generate(&config);
        let mut data = data;
        for f in &config.faults {
            if f.fault == Fault::Archived
                && let Some(r) = data.recordings.get_mut(f.recording)
            {
                r.file_state = "ARCHIVED".into();
            }
        }
        let mut by_start: Vec<&SimConversation> = data.conversations.iter().collect();
        by_start.sort_by_key(|c| std::cmp::Reverse(c.start));
        let held_open: HashSet<String> = by_start
            .iter()
            .take(config.hold_open)
            .map(|c| c.id.clone())
            .collect();
        let by_id = data
            .recordings
            .iter()
            .map(|r| (r.id.clone(), r.index))
            .collect();
        let conv_by_id = data
            .conversations
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let mut by_start: Vec<usize> = (0..data.conversations.len()).collect();
        by_start.sort_by_key(|&i| data.conversations[i].start);
        let longest = data
            .conversations
            .iter()
            .map(|c| c.end - c.start)
            .max()
            .unwrap_or_default();
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&config.seed.to_le_bytes());
        key[8..].copy_from_slice(&(addr.port() as u64).to_le_bytes());
        let state = Arc::new(State {
            base_url: config
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://{addr}")),
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                limiter: RateLimiter::default(),
                jobs: HashMap::new(),
                analytics_jobs: HashMap::new(),
                transcode: HashMap::new(),
                media_attempts: HashMap::new(),
                md5_cache: HashMap::new(),
                rng: Rng::new(config.seed.wrapping_add(99)),
                counter: 0,
                stats: SimStats::default(),
                hidden: Default::default(),
                held_open,
                held_since: Instant::now(),
                outage: false,
                login_outage: false,
                login_faults_served: 0,
                throttled_served: 0,
                batch_limiter: RateLimiter::default(),
                details_queries: 0,
                reveal_at_query: Vec::new(),
                attach: Attachments::default(),
                delete_dates: Default::default(),
                protected: Default::default(),
                retention_ahead: chrono::Duration::zero(),
                retention_conflicts_served: 0,
            }),
            life: Lifecycle::new(&config, &data),
            capture,
            cfg: config,
            conv_by_id,
            by_start,
            longest,
            data,
            by_id,
            key,
            media_watch: Default::default(),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await
                    {
                        tracing::trace!(error = %e, "simulator connection ended with an error");
                    }
                });
            }
        });
        Ok(SimHandle { state, addr, task })
    }
}

pub(crate) async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/oauth/token" {
        let mut resp = token(&st, req).await;
        // The login host's clock is the service's too.
        insert_date(&st, resp.headers_mut());
        return resp;
    }
    if path.starts_with("/media/") {
        return media(&st, req).await;
    }
    if path.starts_with("/api/v2/") {
        if st.lock().outage {
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service.unavailable",
                "The service is currently unavailable (simulated outage)",
            );
        }
        return api(st, req).await;
    }
    api_error(StatusCode::NOT_FOUND, "not.found", "no such route")
}

pub(crate) fn route_name(method: &Method, path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    let shape: Vec<&str> = segs
        .iter()
        .map(|s| {
            if s.len() >= 32 || s.starts_with("job-") {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    format!("{method} /api/v2/{}", shape.join("/"))
}

pub(crate) async fn api(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_string);
    let route = route_name(req.method(), req.uri().path());
    let now = Instant::now();
    let (budget, fault) = {
        let mut inner = st.lock();
        inner.stats.api_requests += 1;
        *inner.stats.by_route.entry(route.clone()).or_default() += 1;
        let Some(tok) = token else {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            );
        };
        let valid = match inner.tokens.get_mut(&tok) {
            Some(t) if t.expires > now => {
                t.uses += 1;
                st.cfg.revoke_tokens_after.is_none_or(|n| t.uses <= n)
            }
            _ => false,
        };
        if !valid {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "bad.credentials",
                "Invalid login credentials.",
            );
        }
        let budget = match st.cfg.batch_status_limit_per_minute {
            // Status polls of batch requests count against a bucket of their own.
            Some(limit) if route == "GET /api/v2/recording/batchrequests/{id}" => {
                inner.batch_limiter.hit(&tok, limit, now)
            }
            _ => inner.limiter.hit(&tok, st.cfg.rate_limit_per_minute, now),
        };
        let r = &st.cfg.rates;
        let fault = if inner.throttled_served < st.cfg.throttle_first_api_calls {
            inner.throttled_served += 1;
            inner.stats.injected_429s += 1;
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if budget.exceeded {
            inner.stats.budget_429s += 1;
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if r.api_429 > 0.0 && inner.rng.unit() < r.api_429 {
            inner.stats.injected_429s += 1;
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if r.api_5xx > 0.0 && inner.rng.unit() < r.api_5xx {
            Some(StatusCode::SERVICE_UNAVAILABLE)
        } else {
            None
        };
        (budget, fault)
    };
    let mut resp = match fault {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            let secs = if budget.exceeded {
                budget.reset.as_secs().max(1)
            } else {
                st.cfg.retry_after_secs
            };
            let mut r = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                &format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Some(s) => api_error(
            s,
            "service.unavailable",
            "The service is currently unavailable.",
        ),
        None => api_route(&st, req).await,
    };
    let h = resp.headers_mut();
    h.insert("inin-ratelimit-allowed", HeaderValue::from(budget.allowed));
    h.insert("inin-ratelimit-count", HeaderValue::from(budget.count));
    h.insert(
        "inin-ratelimit-reset",
        HeaderValue::from(budget.reset.as_secs().max(1)),
    );
    h.insert(
        "inin-correlation-id",
        HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
    );
    insert_date(&st, h);
    resp
}

/// The service's `Date` header (its clock may be offset: `clock_offset_secs`).
fn insert_date(st: &State, h: &mut http::HeaderMap) {
    let date = chrono::Utc::now() + chrono::Duration::seconds(st.cfg.clock_offset_secs);
    if let Ok(v) = HeaderValue::from_str(&date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        h.insert(header::DATE, v);
    }
}
