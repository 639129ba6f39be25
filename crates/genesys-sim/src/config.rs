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
    /// 202 answers before a per-recording GET returns `mediaUris`.
    pub transcode_polls: u32,
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
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            recordings: 50,
            seed: 1,
            start: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
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
            url_ttl: Duration::from_secs(3600),
            media_etag: true,
            faults: Vec::new(),
            rates: FaultRates::default(),
            revoke_tokens_after: None,
        }
    }
}

impl SimConfig {
    /// End of the generated time range.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.span).unwrap_or(chrono::Duration::zero())
    }
}
