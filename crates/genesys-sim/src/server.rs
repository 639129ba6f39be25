//! The simulator's hyper server and request handlers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::auth::token;
use crate::capture::Capture;
use crate::config::SimConfig;
use crate::content::content_md5;
use crate::dataset::{Dataset, Rng, SimConversation, SimRecording};
use crate::faults::Fault;
use crate::lifecycle::{self, Attachments, Lifecycle};
use crate::media::media;
use crate::ratelimit::RateLimiter;
use crate::routes::api_route;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// Counters of what the simulator served, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Requests to `/oauth/token`.
    pub token_requests: u64,
    /// Requests to `/api/v2/...`.
    pub api_requests: u64,
    /// Requests for media bodies.
    pub media_requests: u64,
    /// API 429 answers caused by the per-token budget (not injected faults).
    pub budget_429s: u64,
    /// API 429 answers injected as faults.
    pub injected_429s: u64,
    /// API requests by route (`POST details/query`, ...).
    pub by_route: BTreeMap<String, u64>,
    /// Media bytes sent.
    pub media_bytes: u64,
}

pub(crate) struct TokenInfo {
    pub(crate) expires: Instant,
    pub(crate) uses: u32,
}

pub(crate) struct Job {
    pub(crate) items: Vec<usize>,
    pub(crate) created: Instant,
    /// Status answers given since the job completed.
    pub(crate) completed_polls: u32,
}

pub(crate) struct Inner {
    pub(crate) tokens: HashMap<String, TokenInfo>,
    pub(crate) limiter: RateLimiter,
    pub(crate) jobs: HashMap<String, Job>,
    pub(crate) analytics_jobs: HashMap<String, (Value, Instant)>,
    /// Per-recording GETs per (recording, format), and when the first came.
    pub(crate) transcode: HashMap<(usize, String), (u32, std::time::Instant)>,
    pub(crate) media_attempts: HashMap<usize, u32>,
    pub(crate) md5_cache: HashMap<usize, [u8; 16]>,
    pub(crate) rng: Rng,
    pub(crate) counter: u64,
    pub(crate) stats: SimStats,
    /// Conversations analytics does not report yet (data lag).
    pub(crate) hidden: HashSet<String>,
    /// Conversations still in progress (no `conversationEnd`, recordings `UPLOADING`).
    pub(crate) held_open: HashSet<String>,
    /// When `held_open` was filled, for `hold_open_for`.
    pub(crate) held_since: Instant,
    /// Every API request answers 503 (a platform outage); tokens and media still work.
    pub(crate) outage: bool,
    /// Every token request answers 503 (a login-host outage).
    pub(crate) login_outage: bool,
    /// Token requests answered with a `login_faults` status so far.
    pub(crate) login_faults_served: usize,
    /// API requests answered 429 by `throttle_first_api_calls` so far.
    pub(crate) throttled_served: u32,
    /// The separate bucket of batch-request status polls.
    pub(crate) batch_limiter: RateLimiter,
    /// Details queries answered so far (for `reveal_at_details_query`).
    pub(crate) details_queries: u64,
    /// Hidden conversations that become visible when the details query with this number
    /// (from 1) arrives.
    pub(crate) reveal_at_query: Vec<(u64, Vec<String>)>,
    /// Recordings detached or attached by hand.
    pub(crate) attach: Attachments,
}

/// What analytics and the recording API may show right now: a snapshot taken per request.
#[derive(Debug)]
pub(crate) struct Visibility {
    pub(crate) hidden: HashSet<String>,
    pub(crate) held_open: HashSet<String>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) upload_lag: chrono::Duration,
    /// Recordings not attached to their conversation now (late files before their time,
    /// orphans, detached ones): left out wherever a conversation's recordings are listed or
    /// served.
    pub(crate) absent: HashSet<usize>,
}

impl Visibility {
    /// Whether the conversation is still in progress.
    pub(crate) fn is_open(&self, c: &SimConversation) -> bool {
        self.held_open.contains(&c.id) || c.end > self.now
    }

    /// Whether recording `index` is attached to its conversation now.
    pub(crate) fn attached(&self, index: usize) -> bool {
        !self.absent.contains(&index)
    }

    /// The recording's `fileState` now: its own state when not `AVAILABLE`, else
    /// `UPLOADING` while its conversation is open or for `upload_lag` after it ended. A late
    /// file or orphan is never `UPLOADING`: it is absent until it is attached, then in its own
    /// state.
    pub(crate) fn file_state(&self, st: &State, r: &SimRecording) -> String {
        if r.file_state != "AVAILABLE" || st.life.late_arrival.contains(&r.index) {
            return r.file_state.clone();
        }
        let open = st
            .conversation(&r.conversation_id)
            .is_some_and(|c| self.is_open(c));
        if open || self.now < r.end + self.upload_lag {
            "UPLOADING".into()
        } else {
            "AVAILABLE".into()
        }
    }
}

pub(crate) struct State {
    pub(crate) cfg: SimConfig,
    pub(crate) data: Dataset,
    pub(crate) by_id: HashMap<String, usize>,
    /// Conversation indexes by id.
    pub(crate) conv_by_id: HashMap<String, usize>,
    /// Conversation indexes in start order (analytics answers from a range of it).
    pub(crate) by_start: Vec<usize>,
    /// The longest conversation: one with activity in an interval started at most this long
    /// before it (unless held open).
    pub(crate) longest: chrono::Duration,
    pub(crate) key: [u8; 16],
    pub(crate) base_url: String,
    /// Orphan ids, late arrivals and the retention order, fixed at start.
    pub(crate) life: Lifecycle,
    /// Where routed API requests are written (`SimConfig::capture_requests`).
    pub(crate) capture: Option<Capture>,
    pub(crate) inner: Mutex<Inner>,
}

impl State {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn visibility(&self) -> Visibility {
        let mut inner = self.lock();
        if !self.cfg.hold_open_for.is_zero() && inner.held_since.elapsed() >= self.cfg.hold_open_for
        {
            inner.held_open.clear();
        }
        let now = Utc::now();
        Visibility {
            hidden: inner.hidden.clone(),
            held_open: inner.held_open.clone(),
            now,
            upload_lag: chrono::Duration::from_std(self.cfg.upload_lag).unwrap_or_default(),
            absent: lifecycle::absent(self, &inner.attach, now),
        }
    }

    /// A conversation by id, through the index (`Dataset::conversation` scans).
    pub(crate) fn conversation(&self, id: &str) -> Option<&SimConversation> {
        self.conv_by_id
            .get(id)
            .map(|&i| &self.data.conversations[i])
    }
}

/// Entry point: [`Simulator::start`].
#[derive(Debug)]
pub struct Simulator;

/// A running simulator; dropping it stops the server.
pub struct SimHandle {
    pub(crate) state: Arc<State>,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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
            base_url: format!("http://{addr}"),
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

pub(crate) fn has_two_files(st: &State, index: usize) -> bool {
    st.cfg.faults.iter().any(|f| {
        f.recording == index && matches!(f.fault, Fault::TwoFiles | Fault::SecondFileFailed)
    })
}

/// Whether recording `index`'s second file fails in batch requests ([`Fault::SecondFileFailed`]).
pub(crate) fn second_file_failed(st: &State, index: usize) -> bool {
    st.cfg
        .faults
        .iter()
        .any(|f| f.recording == index && f.fault == Fault::SecondFileFailed)
}

/// Body seed of file `part` of a recording.
pub(crate) fn part_seed(seed: u64, part: u32) -> u64 {
    if part == 0 {
        seed
    } else {
        seed ^ 0xA5A5_5A5A_0F0F_F0F0u64.wrapping_mul(part as u64)
    }
}

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({
            "message": message,
            "code": code,
            "status": status.as_u16(),
            "contextId": "00000000-0000-4000-8000-000000000000",
            "details": [],
            "errors": [],
        }),
    )
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn md5_of(st: &State, index: usize) -> [u8; 16] {
    if let Some(m) = st.lock().md5_cache.get(&index) {
        return *m;
    }
    let r = &st.data.recordings[index];
    let m = content_md5(r.body_kind(), r.body_seed, r.size);
    st.lock().md5_cache.insert(index, m);
    m
}

pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match http_body_util::Limited::new(req.into_body(), 512_000)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too.large",
            "request body over 512000 bytes",
        )),
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

/// The request's query parameters.
pub(crate) fn query_map<B>(req: &Request<B>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}
