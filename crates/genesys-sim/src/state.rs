//! The simulator's state and the pieces every endpoint shares: the dataset and its indexes,
//! the mutable counters behind a lock, what is visible now, and the HTTP answer helpers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::capture::Capture;
use crate::config::SimConfig;
use crate::content::content_md5;
use crate::dataset::{Dataset, Rng, SimConversation, SimRecording};
use crate::faults::Fault;
use crate::lifecycle::{Attachments, Lifecycle};
use crate::ratelimit::RateLimiter;

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
    /// Retention PUTs that changed a recording (`PUT .../recordings/{id}`).
    pub retention_updates: u64,
    /// Restorations of archived recordings those PUTs caused (an `archiveDate` changed).
    pub restorations: u64,
    /// The most media downloads that finished while another one was open (from its headers
    /// to its last byte). Where writes take turns (a store with one upload slot), a client
    /// that opens a download before its turn and holds it meanwhile shows here.
    pub media_overlap: u64,
}

/// Media bodies sent to the end, and the most of them that finished while one body was open
/// ([`SimStats::media_overlap`]).
#[derive(Debug, Default)]
pub(crate) struct MediaWatch {
    pub(crate) finished: std::sync::atomic::AtomicU64,
    pub(crate) overlap: std::sync::atomic::AtomicU64,
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
    /// Delete dates set through the retention PUT, by recording index.
    pub(crate) delete_dates: HashMap<usize, DateTime<Utc>>,
    /// Conversations under deletion protection (legal hold).
    pub(crate) protected: HashSet<String>,
    /// Time passed by hand for delete dates ([`crate::SimHandle::pass_retention_time`]).
    pub(crate) retention_ahead: chrono::Duration,
    /// Retention PUTs answered 409 so far (`SimConfig::retention_conflicts`).
    pub(crate) retention_conflicts_served: u32,
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
    /// Recordings deleted at the source (their delete date passed): `DELETED`.
    pub(crate) deleted: HashSet<usize>,
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
        if self.deleted.contains(&r.index) {
            return "DELETED".into();
        }
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
    pub(crate) media_watch: std::sync::Arc<MediaWatch>,
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
            absent: absent(self, &inner.attach, now),
            deleted: crate::release::deleted(self, &inner, now),
        }
    }

    /// A conversation by id, through the index (`Dataset::conversation` scans).
    pub(crate) fn conversation(&self, id: &str) -> Option<&SimConversation> {
        self.conv_by_id
            .get(id)
            .map(|&i| &self.data.conversations[i])
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

/// End of recording `i`'s conversation (its own end if the conversation is unknown).
fn conversation_end(st: &State, i: usize) -> DateTime<Utc> {
    let r = &st.data.recordings[i];
    st.conversation(&r.conversation_id).map_or(r.end, |c| c.end)
}

/// Whether `end + d` is still to come at `now`.
fn before(end: DateTime<Utc>, d: std::time::Duration, now: DateTime<Utc>) -> bool {
    match chrono::Duration::from_std(d) {
        Ok(d) => now < end + d,
        // Too far to represent: never reached.
        Err(_) => true,
    }
}

/// Whether recording `i` is an orphan at `now`: configured as one, not attached by hand, and
/// its re-attachment time (if any) not reached.
pub(crate) fn is_orphan(st: &State, att: &Attachments, i: usize, now: DateTime<Utc>) -> bool {
    if att.forced.contains(&i) {
        return false;
    }
    match st.life.orphan_until.get(&i) {
        None => false,
        Some(None) => true,
        Some(Some(d)) => before(conversation_end(st, i), *d, now),
    }
}

/// The recordings absent from their conversation at `now`: late files before their time,
/// orphans, and detached ones.
pub(crate) fn absent(st: &State, att: &Attachments, now: DateTime<Utc>) -> HashSet<usize> {
    let n = st.data.recordings.len();
    let mut out: HashSet<usize> = att.detached.clone();
    for &(i, d) in &st.cfg.late_files {
        if i < n && !att.forced.contains(&i) && before(conversation_end(st, i), d, now) {
            out.insert(i);
        }
    }
    for &i in st.life.orphan_id.keys() {
        if is_orphan(st, att, i, now) {
            out.insert(i);
        }
    }
    out
}
