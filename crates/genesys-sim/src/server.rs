//! The simulator's hyper server and request handlers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::analytics;
use crate::config::SimConfig;
use crate::content::{ContentGen, content_md5};
use crate::dataset::{Dataset, Rng, SimConversation, SimRecording};
use crate::faults::Fault;
use crate::ratelimit::RateLimiter;
use crate::signing;

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

struct TokenInfo {
    expires: Instant,
    uses: u32,
}

struct Job {
    items: Vec<usize>,
    created: Instant,
}

pub(crate) struct Inner {
    tokens: HashMap<String, TokenInfo>,
    limiter: RateLimiter,
    jobs: HashMap<String, Job>,
    pub(crate) analytics_jobs: HashMap<String, (Value, Instant)>,
    transcode: HashMap<(usize, String), u32>,
    media_attempts: HashMap<usize, u32>,
    md5_cache: HashMap<usize, [u8; 16]>,
    pub(crate) rng: Rng,
    pub(crate) counter: u64,
    stats: SimStats,
    /// Conversations analytics does not report yet (data lag).
    hidden: HashSet<String>,
    /// Conversations still in progress (no `conversationEnd`, recordings `UPLOADING`).
    held_open: HashSet<String>,
    /// When `held_open` was filled, for `hold_open_for`.
    held_since: Instant,
    /// Every API request answers 503 (a platform outage); tokens and media still work.
    outage: bool,
    /// Every token request answers 503 (a login-host outage).
    login_outage: bool,
    /// Token requests answered with a `login_faults` status so far.
    login_faults_served: usize,
    /// API requests answered 429 by `throttle_first_api_calls` so far.
    throttled_served: u32,
    /// The separate bucket of batch-request status polls.
    batch_limiter: RateLimiter,
}

/// What analytics and the recording API may show right now: a snapshot taken per request.
#[derive(Debug)]
pub(crate) struct Visibility {
    pub(crate) hidden: HashSet<String>,
    held_open: HashSet<String>,
    now: DateTime<Utc>,
    upload_lag: chrono::Duration,
}

impl Visibility {
    /// Whether the conversation is still in progress.
    pub(crate) fn is_open(&self, c: &SimConversation) -> bool {
        self.held_open.contains(&c.id) || c.end > self.now
    }

    /// The recording's `fileState` now: its own state when not `AVAILABLE`, else
    /// `UPLOADING` while its conversation is open or for `upload_lag` after it ended.
    pub(crate) fn file_state(&self, data: &Dataset, r: &SimRecording) -> String {
        if r.file_state != "AVAILABLE" {
            return r.file_state.clone();
        }
        let open = data
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
    by_id: HashMap<String, usize>,
    key: [u8; 16],
    base_url: String,
    inner: Mutex<Inner>,
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
        Visibility {
            hidden: inner.hidden.clone(),
            held_open: inner.held_open.clone(),
            now: Utc::now(),
            upload_lag: chrono::Duration::from_std(self.cfg.upload_lag).unwrap_or_default(),
        }
    }

    fn file_state(&self, r: &SimRecording) -> String {
        self.visibility().file_state(&self.data, r)
    }
}

/// Entry point: [`Simulator::start`].
#[derive(Debug)]
pub struct Simulator;

/// A running simulator; dropping it stops the server.
pub struct SimHandle {
    state: Arc<State>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
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

impl SimHandle {
    /// Base URL of the API, e.g. `http://127.0.0.1:4321`. The login URL is the same host.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The generated org.
    pub fn dataset(&self) -> &Dataset {
        &self.state.data
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.state.cfg
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.state.lock().stats.clone()
    }

    /// MD5 of the correct body of a recording.
    pub fn expected_md5(&self, index: usize) -> [u8; 16] {
        md5_of(&self.state, index)
    }

    /// Revokes every issued token, so the next API call with one gets 401.
    pub fn revoke_all_tokens(&self) {
        self.state.lock().tokens.clear();
    }

    /// Hides conversations from analytics (details query and jobs), as Genesys's data lag
    /// does for recent ones; their media stays downloadable.
    pub fn hide_conversations<I: IntoIterator<Item = String>>(&self, ids: I) {
        self.state.lock().hidden.extend(ids);
    }

    /// Fresh signed media URLs of every recording in its native format, as batch downloads
    /// hand them out: `(recording id, content type, URL)`. For benchmarks that give other
    /// tools the same URLs the archiver downloads.
    pub fn media_urls(&self) -> Vec<(String, &'static str, String)> {
        self.state
            .data
            .recordings
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.native_content_type(),
                    media_url(&self.state, r, "NATIVE"),
                )
            })
            .collect()
    }

    /// Computes every recording's MD5 (its media `ETag`) now, on two blocking threads, so
    /// that no media request pays for it later. Benchmarks call this before they time
    /// anything: otherwise the first download of each recording makes the simulator hash the
    /// whole body before it sends a byte.
    pub async fn precompute_etags(&self) {
        let n = self.state.data.recordings.len();
        let tasks: Vec<_> = (0..2)
            .map(|part| {
                let state = Arc::clone(&self.state);
                tokio::task::spawn_blocking(move || {
                    for index in (part..n).step_by(2) {
                        md5_of(&state, index);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Starts or ends a simulated platform outage: every `/api/v2` request answers 503.
    pub fn set_outage(&self, on: bool) {
        self.state.lock().outage = on;
    }

    /// Makes these hidden conversations visible (a stream of new conversations).
    pub fn reveal_conversations<I: IntoIterator<Item = String>>(&self, ids: I) {
        let mut st = self.state.lock();
        for id in ids {
            st.hidden.remove(&id);
        }
    }

    /// Lists every hidden conversation again.
    pub fn reveal_all_conversations(&self) {
        self.state.lock().hidden.clear();
    }

    /// Starts or ends an outage of the login host: every token request answers 503.
    pub fn set_login_outage(&self, on: bool) {
        self.state.lock().login_outage = on;
    }

    /// Ends every conversation held open (`SimConfig::hold_open`): analytics reports their
    /// `conversationEnd`, and their recordings become `AVAILABLE` (after `upload_lag`).
    pub fn close_all_conversations(&self) {
        self.state.lock().held_open.clear();
    }

    /// Ids of the conversations held open now.
    pub fn open_conversations(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state.visibility().held_open.into_iter().collect();
        v.sort();
        v
    }

    /// MD5 of file `part` of a recording (0 for the first; 1 for the second file of a
    /// [`Fault::TwoFiles`] recording).
    pub fn expected_part_md5(&self, index: usize, part: u32) -> [u8; 16] {
        if part == 0 {
            return md5_of(&self.state, index);
        }
        let r = &self.state.data.recordings[index];
        content_md5(part_seed(r.body_seed, part), r.size)
    }

    /// Whether recording `index` has two files ([`Fault::TwoFiles`]).
    pub fn has_two_files(&self, index: usize) -> bool {
        has_two_files(&self.state, index)
    }
}

impl Simulator {
    /// Binds `config.listen`, generates the dataset and serves until the handle is dropped.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(config.listen).await?;
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
            }),
            cfg: config,
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

fn has_two_files(st: &State, index: usize) -> bool {
    st.cfg
        .faults
        .iter()
        .any(|f| f.recording == index && f.fault == Fault::TwoFiles)
}

/// Body seed of file `part` of a recording.
fn part_seed(seed: u64, part: u32) -> u64 {
    if part == 0 {
        seed
    } else {
        seed ^ 0xA5A5_5A5A_0F0F_F0F0u64.wrapping_mul(part as u64)
    }
}

fn full(b: impl Into<Bytes>) -> Body {
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

fn md5_of(st: &State, index: usize) -> [u8; 16] {
    if let Some(m) = st.lock().md5_cache.get(&index) {
        return *m;
    }
    let r = &st.data.recordings[index];
    let m = content_md5(r.body_seed, r.size);
    st.lock().md5_cache.insert(index, m);
    m
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
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

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/oauth/token" {
        return token(&st, req).await;
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

async fn token(st: &State, req: Request<Incoming>) -> Response<Body> {
    let fault = {
        let mut inner = st.lock();
        inner.stats.token_requests += 1;
        if inner.login_outage {
            Some(503)
        } else {
            let f = st.cfg.login_faults.get(inner.login_faults_served).copied();
            if f.is_some() {
                inner.login_faults_served += 1;
            }
            f
        }
    };
    if let Some(status) = fault {
        return login_fault(status);
    }
    if req.method() != Method::POST {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method.not.allowed",
            "POST only",
        );
    }
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let grant = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    let auth_err = |status, error: &str, desc: &str| {
        json_response(
            status,
            &json!({"error": error, "description": desc, "error_description": desc}),
        )
    };
    if grant.as_deref() != Some("client_credentials") {
        return auth_err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let expected = format!("{}:{}", st.cfg.client_id, st.cfg.client_secret);
    if creds.as_deref() != Some(expected.as_str()) {
        return auth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let mut inner = st.lock();
    inner.counter += 1;
    let tok = format!("simtok-{:016x}-{}", inner.rng.next_u64(), inner.counter);
    inner.tokens.insert(
        tok.clone(),
        TokenInfo {
            expires: Instant::now() + st.cfg.token_ttl,
            uses: 0,
        },
    );
    json_response(
        StatusCode::OK,
        &json!({"access_token": tok, "token_type": "bearer", "expires_in": st.cfg.token_ttl.as_secs()}),
    )
}

/// A login host having a bad moment: 429 with `Retry-After` and a JSON body, anything else
/// with the plain HTML page a load balancer sends.
fn login_fault(status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let mut r = api_error(
            status,
            "too.many.requests.retry.after",
            "Rate limit exceeded the maximum. Retry the request in [1] seconds",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let mut r = Response::new(full(format!(
        "<html><body><h1>{} {}</h1></body></html>",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

fn route_name(method: &Method, path: &str) -> String {
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

async fn api(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
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
    let date = chrono::Utc::now() + chrono::Duration::seconds(st.cfg.clock_offset_secs);
    if let Ok(v) = HeaderValue::from_str(&date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        h.insert(header::DATE, v);
    }
    resp
}

async fn api_route(st: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let segs: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    match (&method, segs.as_slice()) {
        (&Method::POST, ["analytics", "conversations", "details", "query"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            analytics::details_query(st, &body)
        }
        (&Method::POST, ["analytics", "conversations", "details", "jobs"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            analytics::job_submit(st, &body)
        }
        (
            &Method::GET,
            [
                "analytics",
                "conversations",
                "details",
                "jobs",
                "availability",
            ],
        ) => analytics::job_availability(st),
        (&Method::GET, ["analytics", "conversations", "details", "jobs", id]) => {
            analytics::job_status(st, id)
        }
        (
            &Method::GET,
            [
                "analytics",
                "conversations",
                "details",
                "jobs",
                id,
                "results",
            ],
        ) => analytics::job_results(st, id, &query),
        (&Method::GET, ["conversations", cid, "recordingmetadata"]) => recording_metadata(st, cid),
        (&Method::GET, ["conversations", cid, "recordings", rid]) => {
            recording_get(st, cid, rid, &query)
        }
        (&Method::POST, ["recording", "batchrequests"]) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            batch_submit(st, &body)
        }
        (&Method::GET, ["recording", "batchrequests", id]) => batch_status(st, id),
        (&Method::GET, ["recordings", "recordings"]) => compat_list(st, &query),
        (&Method::GET, ["recordings", "recordings", id]) => compat_one(st, id),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The requested resource was not found.",
        ),
    }
}

fn metadata_json(r: &SimRecording, file_state: &str) -> Value {
    json!({
        "id": r.id,
        "conversationId": r.conversation_id,
        "startTime": rfc3339(r.start),
        "endTime": rfc3339(r.end),
        "media": r.media,
        "mediaSubtype": if r.media == "screen" { "Screen" } else { "Trunk" },
        "fileState": file_state,
        "region": "us-east-1",
        "selfUri": format!("/api/v2/conversations/{}/recordingmetadata/{}", r.conversation_id, r.id),
    })
}

fn recording_metadata(st: &State, cid: &str) -> Response<Body> {
    let Some(conv) = st.data.conversation(cid) else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "conversation not found");
    };
    let vis = st.visibility();
    let list: Vec<Value> = conv
        .recordings
        .iter()
        .map(|&i| {
            let r = &st.data.recordings[i];
            metadata_json(r, &vis.file_state(&st.data, r))
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// The content type a `formatId` gives a recording: `formatId` picks the audio format;
/// screen recordings are WebM, chats and messages ZIP (`chatFormatId`/`messageFormatId`),
/// emails EML (`emailFormatId`), whatever `formatId` says. `None`: an unknown format.
fn format_content_type(format: &str, r: &SimRecording) -> Option<&'static str> {
    let audio = match format {
        "NONE" | "NATIVE" => return Some(r.native_content_type()),
        "WAV" | "WAV_ULAW" => "audio/wav",
        "WEBM" => "audio/webm",
        "OGG_VORBIS" | "OGG_OPUS" => "audio/ogg",
        "MP3" => "audio/mpeg",
        _ => return None,
    };
    Some(match r.media.as_str() {
        "screen" => "video/webm",
        "chat" | "messaging" => "application/zip",
        "email" => "message/rfc822",
        _ => audio,
    })
}

/// What a media URL signs: the path (which names the file) and the format.
fn signed_resource(path: &str, format: &str) -> String {
    format!("{path}?{format}")
}

fn media_url(st: &State, r: &SimRecording, format: &str) -> String {
    media_part_url(st, r, format, 0)
}

/// A signed URL of file `part` of a recording: `/media/{cid}/{rid}` for the first file,
/// `/media/{cid}/{rid}/{part}` for another (distinct files are distinct objects).
fn media_part_url(st: &State, r: &SimRecording, format: &str, part: u32) -> String {
    let mut path = format!("/media/{}/{}", r.conversation_id, r.id);
    if part > 0 {
        path.push_str(&format!("/{part}"));
    }
    let expires = Utc::now().timestamp() + st.cfg.url_ttl.as_secs() as i64;
    let sig = signing::sign(&st.key, &signed_resource(&path, format), expires);
    format!(
        "{}{path}?format={format}&X-Expires={expires}&X-Signature={sig}",
        st.base_url
    )
}

fn recording_get(
    st: &State,
    cid: &str,
    rid: &str,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let Some(&idx) = st.by_id.get(rid) else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "recording not found");
    };
    let r = &st.data.recordings[idx];
    if r.conversation_id != cid {
        return api_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "recording not found in conversation",
        );
    }
    let format = query
        .get("formatId")
        .map(String::as_str)
        .unwrap_or("WEBM")
        .to_string();
    let Some(ct) = format_content_type(&format, r) else {
        return api_error(StatusCode::BAD_REQUEST, "bad.request", "unknown formatId");
    };
    let file_state = st.file_state(r);
    let mut body = metadata_json(r, &file_state);
    if file_state != "AVAILABLE" {
        return json_response(StatusCode::OK, &body);
    }
    let polls = {
        let mut inner = st.lock();
        let n = inner.transcode.entry((idx, format.clone())).or_insert(0);
        *n += 1;
        *n
    };
    if polls <= st.cfg.transcode_polls {
        body["estimatedTranscodeTimeMs"] = json!(1000);
        return json_response(StatusCode::ACCEPTED, &body);
    }
    // `Recording` has no content type field: the format asked for decides it (`ct`).
    let _ = ct;
    let mut uris = json!({"0": {"mediaUri": media_url(st, r, &format)}});
    if has_two_files(st, idx) {
        uris["1"] = json!({"mediaUri": media_part_url(st, r, &format, 1)});
    }
    body["mediaUris"] = uris;
    body["outputSizeInBytes"] = json!(r.size);
    body["outputDurationMs"] = json!((r.end - r.start).num_milliseconds());
    json_response(StatusCode::OK, &body)
}

fn batch_submit(st: &State, body: &[u8]) -> Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return bad("body is not valid JSON");
    };
    let Some(list) = q.get("batchDownloadRequestList").and_then(Value::as_array) else {
        return bad("batchDownloadRequestList is required");
    };
    if list.is_empty() || list.len() > 100 {
        return bad("batchDownloadRequestList must hold 1 to 100 items");
    }
    let mut items = Vec::new();
    for it in list {
        let Some(cid) = it.get("conversationId").and_then(Value::as_str) else {
            return bad("conversationId is required");
        };
        match it.get("recordingId").and_then(Value::as_str) {
            Some(rid) => {
                if let Some(&i) = st.by_id.get(rid)
                    && st.data.recordings[i].conversation_id == cid
                {
                    items.push(i);
                }
            }
            None => {
                if let Some(c) = st.data.conversation(cid) {
                    items.extend(c.recordings.iter().copied());
                }
            }
        }
    }
    let mut inner = st.lock();
    inner.counter += 1;
    let id = format!("job-{:08x}-{}", inner.rng.next_u64() as u32, inner.counter);
    inner.jobs.insert(
        id.clone(),
        Job {
            items,
            created: Instant::now(),
        },
    );
    json_response(
        StatusCode::OK,
        &json!({"id": id, "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
    )
}

fn batch_status(st: &State, id: &str) -> Response<Body> {
    let (items, done) = {
        let mut inner = st.lock();
        let Some(job) = inner.jobs.get_mut(id) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "not.found",
                "batch request not found",
            );
        };
        (
            job.items.clone(),
            job.created.elapsed() >= st.cfg.batch_ready_after,
        )
    };
    if !done {
        return json_response(
            StatusCode::OK,
            &json!({"id": id, "jobId": id, "expectedResultCount": items.len(), "resultCount": 0, "errorCount": 0,
                    "status": "InProgress", "results": [], "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
        );
    }
    let mut errors = 0;
    let vis = st.visibility();
    let mut results: Vec<Value> = Vec::new();
    for &i in &items {
        let r = &st.data.recordings[i];
        let file_state = vis.file_state(&st.data, r);
        if file_state == "AVAILABLE" {
            results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                   "resultUrl": media_url(st, r, "NATIVE"), "contentType": r.native_content_type()}));
            // "A recording could be associated with multiple results."
            if has_two_files(st, i) {
                results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                       "resultUrl": media_part_url(st, r, "NATIVE", 1), "contentType": r.native_content_type()}));
            }
        } else {
            errors += 1;
            results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                   "errorMsg": format!("Recording is {}; it cannot be downloaded now", file_state.to_lowercase())}));
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"id": id, "jobId": id, "expectedResultCount": results.len(), "resultCount": results.len(),
                "errorCount": errors, "status": "Completed", "results": results,
                "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
    )
}

fn compat_entity(st: &State, r: &SimRecording) -> Value {
    json!({
        "id": r.id,
        "status": "completed",
        "uri": media_url(st, r, "NATIVE"),
        "md5": hex::encode(md5_of(st, r.index)),
        "interactionId": r.conversation_id,
        "startTime": rfc3339(r.start),
        "endTime": rfc3339(r.end),
        "mediaType": r.media,
        "contentType": r.native_content_type(),
        "size": r.size,
    })
}

fn compat_list(st: &State, q: &HashMap<String, String>) -> Response<Body> {
    let page_size: usize = q.get("pageSize").and_then(|s| s.parse().ok()).unwrap_or(25);
    let page_number: usize = q
        .get("pageNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if page_size == 0 || page_size > 100 || page_number == 0 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "pageSize must be 1..=100 and pageNumber >= 1",
        );
    }
    if q.get("status").is_some_and(|s| s != "completed") {
        return json_response(
            StatusCode::OK,
            &json!({"entities": [], "pageSize": page_size, "pageNumber": page_number, "total": 0}),
        );
    }
    let available: Vec<&SimRecording> = st
        .data
        .recordings
        .iter()
        .filter(|r| r.file_state == "AVAILABLE")
        .collect();
    let entities: Vec<Value> = available
        .iter()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .map(|r| compat_entity(st, r))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"entities": entities, "pageSize": page_size, "pageNumber": page_number,
                "total": available.len(), "pageCount": available.len().div_ceil(page_size)}),
    )
}

fn compat_one(st: &State, id: &str) -> Response<Body> {
    match st.by_id.get(id) {
        Some(&i) => json_response(StatusCode::OK, &compat_entity(st, &st.data.recordings[i])),
        None => api_error(StatusCode::NOT_FOUND, "not.found", "recording not found"),
    }
}

fn media_error(status: StatusCode, code: &str, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

enum BodyMode {
    Normal,
    Reset,
    Truncated,
    Corrupt,
    Slow(Duration),
    SlowReset(Duration),
}

async fn media(st: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let q: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let format = q.get("format").cloned().unwrap_or_default();
    let expires: i64 = q.get("X-Expires").and_then(|s| s.parse().ok()).unwrap_or(0);
    let sig = q.get("X-Signature").cloned().unwrap_or_default();
    if !signing::verify(&st.key, &signed_resource(&path, &format), expires, &sig) {
        st.lock().stats.media_requests += 1;
        return media_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature does not match.",
        );
    }
    if Utc::now().timestamp() > expires {
        st.lock().stats.media_requests += 1;
        return media_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    }
    // /media/{cid}/{rid} or /media/{cid}/{rid}/{part}
    let segs: Vec<&str> = path.trim_start_matches("/media/").split('/').collect();
    let (rid, part) = match segs.as_slice() {
        [_, rid] => (*rid, 0u32),
        [_, rid, part] => (*rid, part.parse().unwrap_or(u32::MAX)),
        _ => ("", 0),
    };
    let Some(&idx) = st.by_id.get(rid) else {
        return media_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if part > 1 || (part == 1 && !has_two_files(st, idx)) {
        return media_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    }
    let r = st.data.recordings[idx].clone();
    let Some(ct) = format_content_type(&format, &r) else {
        return media_error(StatusCode::BAD_REQUEST, "InvalidArgument", "unknown format");
    };
    let mode = {
        let mut inner = st.lock();
        inner.stats.media_requests += 1;
        let attempt = {
            let n = inner.media_attempts.entry(idx).or_insert(0);
            *n += 1;
            *n
        };
        let spec = st
            .cfg
            .faults
            .iter()
            .find(|f| f.recording == idx && f.times.is_none_or(|t| attempt <= t));
        let rates = st.cfg.rates;
        match spec.map(|s| s.fault) {
            Some(Fault::ExpiredUrl) => {
                return media_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
            }
            Some(Fault::ServerError) => {
                return media_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate.",
                );
            }
            Some(Fault::RateLimited) => {
                let mut resp = api_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too.many.requests.retry.after",
                    "Rate limit exceeded the maximum. Retry the request in [1] seconds",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
            Some(Fault::Reset) => BodyMode::Reset,
            Some(Fault::Truncated) => BodyMode::Truncated,
            Some(Fault::Corrupt) => BodyMode::Corrupt,
            Some(Fault::Slow(d)) => BodyMode::Slow(d),
            Some(Fault::SlowReset(d)) => BodyMode::SlowReset(d),
            Some(Fault::Archived | Fault::TwoFiles) | None => {
                if rates.media_5xx > 0.0 && inner.rng.unit() < rates.media_5xx {
                    return media_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Please reduce your request rate.",
                    );
                } else if rates.media_reset > 0.0 && inner.rng.unit() < rates.media_reset {
                    BodyMode::Reset
                } else if rates.media_corrupt > 0.0 && inner.rng.unit() < rates.media_corrupt {
                    BodyMode::Corrupt
                } else {
                    BodyMode::Normal
                }
            }
        }
    };
    let etag = st.cfg.media_etag.then(|| {
        if part == 0 {
            hex::encode(md5_of(st, idx))
        } else {
            hex::encode(content_md5(part_seed(r.body_seed, part), r.size))
        }
    });
    if req.method() == Method::HEAD {
        let mut resp = Response::new(full(Bytes::new()));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(r.size));
        return resp;
    }
    let size = r.size;
    let half = size / 2;
    let cgen = ContentGen::new(part_seed(r.body_seed, part), size);
    let stream = futures::stream::unfold(
        (cgen, 0u64, mode),
        move |(mut cgen, pos, mode)| async move {
            if let BodyMode::Slow(d) | BodyMode::SlowReset(d) = mode {
                tokio::time::sleep(d).await;
            }
            let limit = match mode {
                BodyMode::Reset | BodyMode::Truncated | BodyMode::SlowReset(_) => half,
                _ => u64::MAX,
            };
            if pos >= limit && pos < size {
                return match mode {
                    BodyMode::Reset | BodyMode::SlowReset(_) => Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "simulated connection reset",
                        )),
                        (cgen, size, BodyMode::Normal),
                    )),
                    _ => None,
                };
            }
            let mut chunk = cgen.next_chunk()?;
            let end = pos + chunk.len() as u64;
            if end > limit {
                chunk.truncate((limit - pos) as usize);
            }
            if matches!(mode, BodyMode::Corrupt) && pos <= half && half < end {
                let mut v = chunk.to_vec();
                let at = (half - pos) as usize;
                if at < v.len() {
                    v[at] ^= 0xFF;
                }
                chunk = Bytes::from(v);
            }
            let next = pos + chunk.len() as u64;
            Some((Ok(Frame::data(chunk)), (cgen, next, mode)))
        },
    );
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Some(e) = etag
        && let Ok(v) = HeaderValue::from_str(&format!("\"{e}\""))
    {
        h.insert(header::ETAG, v);
    }
    st.lock().stats.media_bytes += size;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn precompute_etags_fills_the_cache_with_each_body_md5() {
        let sim = Simulator::start(SimConfig {
            recordings: 5,
            size_range: (1, 300_000),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        assert!(sim.state.lock().md5_cache.is_empty());
        sim.precompute_etags().await;
        let cache = sim.state.lock().md5_cache.clone();
        assert_eq!(cache.len(), sim.state.data.recordings.len());
        for (i, r) in sim.state.data.recordings.iter().enumerate() {
            assert_eq!(cache[&i], content_md5(r.body_seed, r.size), "recording {i}");
        }
    }
}
