//! Simulator configuration.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::faults::{FaultRates, FaultSpec};

/// How the simulator behaves. `Default` gives a small, fault-free org with the real API's
/// limits (300 requests per minute per token, 100 items per batch request).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: std::net::SocketAddr,
    /// Number of recordings to generate.
    pub recordings: usize,
    /// Seed for ids, sizes, contents and random faults.
    pub seed: u64,
    /// Start of the time range in which conversations are generated.
    pub start: DateTime<Utc>,
    /// Width of that range.
    pub span: Duration,
    /// Smallest and largest recording size in bytes (inclusive).
    pub size_range: (u64, u64),
    /// Accepted OAuth client id.
    pub client_id: String,
    /// Accepted OAuth client secret.
    pub client_secret: String,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_ttl: Duration,
    /// Requests per minute per token before 429 (`inin-ratelimit-allowed`); 0 disables.
    pub rate_limit_per_minute: u32,
    /// Largest `paging.pageSize` accepted by the details query.
    pub max_page_size: u32,
    /// Records one details query may page through (the real API stops at 10,000).
    pub max_query_results: u32,
    /// How long a batch request stays `InProgress` before it is `Completed`.
    pub batch_ready_after: Duration,
    /// 202 answers before a per-recording GET returns `mediaUris` (these say nothing of
    /// the time left).
    pub transcode_polls: u32,
    /// How long a recording transcodes from the first per-recording GET of a format: 202
    /// answers meanwhile, each with the time left as `estimatedTranscodeTimeMs` (a field of
    /// the real `Recording` model). Zero: only `transcode_polls` applies.
    pub transcode_time: Duration,
    /// Lifetime of signed media URLs.
    pub url_ttl: Duration,
    /// Send an `ETag` holding the body's MD5 on media responses, as a presigned GET of a
    /// single-part S3 object would. Unverified for the real service.
    pub media_etag: bool,
    /// Faults for individual recordings.
    pub faults: Vec<FaultSpec>,
    /// Faults drawn at random per request.
    pub rates: FaultRates,
    /// Revoke each token after it has served this many API requests (401 afterwards).
    pub revoke_tokens_after: Option<u32>,
    /// How far the analytics data lake lags behind now: details jobs answer
    /// `dataAvailabilityDate = now - lag` and hold only conversations that ended before it
    /// (the real lake lags "up to 48 hours").
    pub data_lake_lag: Duration,
    /// Oldest interval start the synchronous details query accepts, back from now (the real
    /// limit: 35 days). Older starts are refused with 400.
    pub sync_query_max_age: Duration,
    /// How long after its conversation ends a recording stays `UPLOADING`.
    pub upload_lag: Duration,
    /// The most recent N conversations start out still in progress (no `conversationEnd`,
    /// recordings `UPLOADING`) until `hold_open_for` has passed or
    /// [`crate::SimHandle::close_all_conversations`] is called.
    pub hold_open: usize,
    /// How long the `hold_open` conversations stay open; zero keeps them open until closed.
    pub hold_open_for: Duration,
    /// Statuses the login host answers to the first token requests, in order (e.g. 503, 429),
    /// before it issues tokens normally.
    pub login_faults: Vec<u16>,
    /// The first N API requests answer 429 with `Retry-After: retry_after_secs`.
    pub throttle_first_api_calls: u32,
    /// `Retry-After` (seconds) of injected 429s (faults and `throttle_first_api_calls`).
    pub retry_after_secs: u64,
    /// `inin-ratelimit-allowed` for batch-request status polls
    /// (`GET /api/v2/recording/batchrequests/{id}`), which have a bucket of their own; `None`
    /// counts them against the token's budget like every other call.
    pub batch_status_limit_per_minute: Option<u32>,
    /// Conversations without any recording, spread over the same range (most of a real org's
    /// traffic may be unrecorded): analytics lists them, batch requests return nothing.
    pub unrecorded_conversations: usize,
    /// The simulated service's clock relative to this machine's, in seconds, as its API
    /// answers' `Date` header shows it (negative: the source is behind, i.e. the client's
    /// clock runs ahead or jumped forward).
    pub clock_offset_secs: i64,
    /// The details query answers in an order of its own (stable across pages, not by start),
    /// as a service that ignores `orderBy` would: a client must not rely on start order.
    pub unordered_query_results: bool,
    /// The first N status answers of each completed batch request leave out its last result
    /// while `resultCount` and `expectedResultCount` count it (an answer whose results lag
    /// its counts): a client must not take the counts for the results.
    pub results_lag_polls: u32,
    /// Extra voice conversations with one recording each, over these exact spans (start,
    /// end), added after the generated ones (their recordings' indexes follow): conversations
    /// longer than a day (queued email, async messaging) that the details query returns only
    /// by their start day.
    pub long_conversations: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Late files `(recording index, d)`: the recording is not attached to its conversation
    /// until the conversation's end + `d` by the simulator's real clock. Before that it is
    /// absent wherever the conversation's recordings are listed or served
    /// (`recordingmetadata`, the per-recording GET answers 404, batch requests submitted
    /// meanwhile, the compat listing, the retention query); after it, it is an ordinary
    /// `AVAILABLE` recording, never announced as `UPLOADING`. Indexes out of range are
    /// ignored.
    pub late_files: Vec<(usize, Duration)>,
    /// Orphans `(recording index, d)`: the recording is an orphan (absent from its
    /// conversation as a late file is, and listed by `GET /api/v2/orphanrecordings` under an
    /// orphan id of its own with `orphanStatus` `NO_CONVERSATION`) until its conversation's
    /// end + `d`; `None`: never re-attached (unless
    /// [`crate::SimHandle::attach_recordings`]). Once re-attached it leaves the orphan list
    /// (`GET /api/v2/orphanrecordings/{orphanId}` answers 404) and is an ordinary `AVAILABLE`
    /// recording of its conversation. Indexes out of range are ignored.
    pub orphans: Vec<(usize, Option<Duration>)>,
    /// The first N status polls of a batch request whose results are ready answer
    /// `InProgress` with `expectedResultCount` below the final count, growing by one per
    /// poll (the real field "could change as recordings are being discovered"), and
    /// `resultCount` and `results` as far as it says; then `Completed` with every result. A
    /// client that stops when `resultCount == expectedResultCount` loses the rest. 0: off.
    /// A job without results completes at once.
    pub growing_expected_polls: u32,
    /// Permissions the OAuth client lacks (`GET /api/v2/authorization/divisionspermitted/
    /// paged/me` answers none for them). Without `recording:recording:viewSensitiveData`,
    /// the `sensitive_recordings` are left out of batch downloads, silently, as documented
    /// for an org with sensitive-data redaction.
    pub missing_permissions: Vec<String>,
    /// Recordings (indexes) holding sensitive data (see `missing_permissions`).
    pub sensitive_recordings: Vec<usize>,
    /// Append every API request the simulator routes (one that passed authentication and
    /// the rate limit) to this file as a JSON line: method, path, query string and body (as
    /// JSON where it parses), for a contract test of what a client sends. Token requests are
    /// not written. `None`: nothing is written.
    pub capture_requests: Option<std::path::PathBuf>,
    /// The base URL clients reach the simulator at, when it is not the listening address
    /// (behind a proxy, such as the real-network benchmark's delay proxy): the base URL
    /// reported and the origin of every media URL handed out. `None`: `http://{listen}`.
    pub public_url: Option<String>,
    /// The first N retention PUTs (`PUT /api/v2/conversations/{id}/recordings/{id}`) answer
    /// 409 (an update in progress), for a client's retry. 0: none.
    pub retention_conflicts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            recordings: 50,
            seed: 1,
            start: default_start(),
            span: Duration::from_secs(2 * 24 * 3600),
            size_range: (16 * 1024, 256 * 1024),
            client_id: "sim-client".into(),
            client_secret: "sim-secret".into(),
            token_ttl: Duration::from_secs(24 * 3600),
            rate_limit_per_minute: 300,
            max_page_size: 200,
            max_query_results: 10_000,
            batch_ready_after: Duration::from_millis(200),
            transcode_polls: 1,
            transcode_time: Duration::ZERO,
            url_ttl: Duration::from_secs(3600),
            media_etag: true,
            faults: Vec::new(),
            rates: FaultRates::default(),
            revoke_tokens_after: None,
            data_lake_lag: Duration::from_secs(24 * 3600),
            sync_query_max_age: Duration::from_secs(35 * 24 * 3600),
            upload_lag: Duration::ZERO,
            hold_open: 0,
            hold_open_for: Duration::ZERO,
            login_faults: Vec::new(),
            throttle_first_api_calls: 0,
            retry_after_secs: 1,
            batch_status_limit_per_minute: None,
            unrecorded_conversations: 0,
            clock_offset_secs: 0,
            unordered_query_results: false,
            results_lag_polls: 0,
            long_conversations: Vec::new(),
            late_files: Vec::new(),
            orphans: Vec::new(),
            growing_expected_polls: 0,
            missing_permissions: Vec::new(),
            sensitive_recordings: Vec::new(),
            capture_requests: None,
            public_url: None,
            retention_conflicts: 0,
        }
    }
}

/// Three days before now, to the minute: the default org's two days of conversations end at
/// least a day before now, so they are finished and inside every API's reach whenever a test
/// runs (a fixed date would drift past the details query's 35-day limit).
fn default_start() -> DateTime<Utc> {
    let t = Utc::now() - chrono::Duration::days(3);
    Utc.timestamp_opt(t.timestamp() / 60 * 60, 0)
        .single()
        .unwrap_or(t)
}

impl SimConfig {
    /// End of the generated time range.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.span).unwrap_or(chrono::Duration::zero())
    }
}
