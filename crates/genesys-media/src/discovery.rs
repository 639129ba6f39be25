//! Discovery: which recordings exist in an interval, with a media URL for each.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::client::{AnalyticsMode, GenesysClient, SourceMode};
use crate::error::{Error, Result};
use crate::media::MediaUrl;
use crate::models::{
    AnalyticsConversation, BatchDownloadJobResult, BatchDownloadJobStatusResult,
    BatchDownloadJobSubmissionResult, BatchDownloadRequest, CompatListing, CompatRecording,
    ConversationQueryResponse, Recording, RecordingMetadata,
};

/// What to discover: an interval and the filters users expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryQuery {
    /// Interval start (inclusive): conversations that started at or after it.
    pub start: DateTime<Utc>,
    /// Interval end (exclusive).
    pub end: DateTime<Utc>,
    /// Keep only these media types (`audio`, `screen`, `chat`, `email`); empty keeps all.
    pub media_types: Vec<String>,
    /// Keep only conversations that touched one of these queues; empty keeps all.
    pub queue_ids: Vec<String>,
    /// Keep only conversations in one of these divisions; empty keeps all.
    pub division_ids: Vec<String>,
    /// Keep only `inbound` or `outbound` conversations.
    pub direction: Option<String>,
}

impl DiscoveryQuery {
    /// All recordings of conversations started in `[start, end)`.
    pub fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            start,
            end,
            media_types: vec![],
            queue_ids: vec![],
            division_ids: vec![],
            direction: None,
        }
    }
}

/// Whether a recording can be downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAvailability {
    /// A presigned URL.
    Url(MediaUrl),
    /// No URL: archived, deleted, or refused, with the API's reason.
    Unavailable(String),
}

/// A recording found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRecording {
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id.
    pub recording_id: String,
    /// Recording (or conversation) start.
    pub start_time: Option<DateTime<Utc>>,
    /// Recording (or conversation) end.
    pub end_time: Option<DateTime<Utc>>,
    /// `audio`, `screen`, `chat`, `email`, or what the API said.
    pub media_type: String,
    /// Content type of the media, when known before download.
    pub content_type: Option<String>,
    /// Hex MD5 the source vouches for (compat listing only).
    pub expected_md5: Option<String>,
    /// Size the source vouches for (`outputSizeInBytes` or the compat `size`).
    pub expected_size: Option<u64>,
    /// The media URL or why there is none.
    pub media: MediaAvailability,
}

const MAX_INTERVAL_DAYS: i64 = 7;

/// Takes one page of conversations: keeps the recorded ones not seen before, and hands every
/// full chunk of 100 to media resolution. Returns false when the consumer has gone.
async fn absorb(
    page: Vec<AnalyticsConversation>,
    seen: &mut HashSet<String>,
    pending: &mut Vec<AnalyticsConversation>,
    chunks: &mut mpsc::Sender<Vec<AnalyticsConversation>>,
) -> bool {
    for c in page {
        if c.has_recording() && seen.insert(c.conversation_id.clone()) {
            pending.push(c);
        }
    }
    while pending.len() >= BATCH_MAX {
        let chunk: Vec<_> = pending.drain(..BATCH_MAX).collect();
        if chunks.send(chunk).await.is_err() {
            return false;
        }
    }
    true
}
const BATCH_MAX: usize = 100;

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Maps a content type (or the API's media name) to `audio`, `screen`, `chat` or `email`.
pub fn media_type_of(content_type: Option<&str>, api_media: Option<&str>) -> String {
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    let from_ct = if ct.starts_with("audio/") {
        Some("audio")
    } else if ct.starts_with("video/") {
        Some("screen")
    } else if ct.starts_with("message/") {
        Some("email")
    } else if ct.contains("json") || ct.contains("zip") {
        Some("chat")
    } else {
        None
    };
    match (from_ct, api_media) {
        (Some(m), _) => m.to_string(),
        (None, Some("voice" | "callback")) => "audio".into(),
        (None, Some("screenshare")) => "screen".into(),
        (None, Some("message" | "messaging")) => "chat".into(),
        (None, Some(m)) => m.to_ascii_lowercase(),
        (None, None) => "unknown".into(),
    }
}

/// Splits `[start, end)` into pieces of at most 7 days (the details query's limit).
pub fn split_interval(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = (s + ChronoDuration::days(MAX_INTERVAL_DAYS)).min(end);
        out.push((s, e));
        s = e;
    }
    out
}

fn or_filter(dimension: &str, values: &[String]) -> Option<Value> {
    (!values.is_empty()).then(|| {
        json!({"type": "or", "predicates": values.iter().map(|v| json!({"type": "dimension", "dimension": dimension, "operator": "matches", "value": v})).collect::<Vec<_>>()})
    })
}

impl GenesysClient {
    /// Discovers the recordings of conversations started in the query's interval, as a stream
    /// that yields each recording once, with its media URL (or the reason there is none).
    ///
    /// The work runs in a spawned task that stays at most a few items ahead of the consumer.
    /// An error ends the stream after being yielded.
    pub fn discover(
        &self,
        query: DiscoveryQuery,
    ) -> impl Stream<Item = Result<DiscoveredRecording>> + Send + 'static {
        let (tx, rx) = mpsc::channel(BATCH_MAX);
        let client = self.clone();
        tokio::spawn(async move {
            let mut tx2 = tx.clone();
            if let Err(e) = client.discover_into(&query, tx).await {
                let _ = tx2.send(Err(e)).await;
            }
        });
        rx
    }

    async fn discover_into(
        &self,
        q: &DiscoveryQuery,
        mut tx: mpsc::Sender<Result<DiscoveredRecording>>,
    ) -> Result<()> {
        if q.start >= q.end {
            return Err(Error::InvalidArgument(format!(
                "interval start {} is not before its end {}",
                q.start.to_rfc3339(),
                q.end.to_rfc3339()
            )));
        }
        let keep = |r: &DiscoveredRecording| {
            q.media_types.is_empty()
                || q.media_types
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&r.media_type))
        };
        if self.config().source == SourceMode::CompatListing {
            let mut page = 1u64;
            loop {
                let size = self.config().page_size.min(100) as u64;
                let listing = self.compat_page(page, size).await?;
                let n = listing.entities.len() as u64;
                for e in listing.entities {
                    let r = compat_to_discovered(e);
                    let in_interval = r.start_time.is_none_or(|t| t >= q.start && t < q.end);
                    if in_interval && keep(&r) && tx.send(Ok(r)).await.is_err() {
                        return Ok(());
                    }
                }
                if n < size || listing.page_count.is_some_and(|c| page >= c) {
                    return Ok(());
                }
                page += 1;
            }
        }
        // Reading analytics (the producer) and resolving media for chunks of 100
        // conversations (batch requests, each submitted and polled until complete) overlap:
        // up to `batch_parallelism` chunks are resolved at once, and recordings come out in
        // discovery order.
        let (mut chunk_tx, chunk_rx) = mpsc::channel::<Vec<AnalyticsConversation>>(1);
        let producer = async move {
            let mut seen: HashSet<String> = HashSet::new();
            let mut pending: Vec<AnalyticsConversation> = Vec::new();
            let use_jobs = match self.config().analytics {
                AnalyticsMode::Query => false,
                AnalyticsMode::Jobs => true,
                AnalyticsMode::Auto => q.start < Utc::now() - ChronoDuration::days(30),
            };
            if use_jobs {
                let job_id = self.submit_details_job(q).await?;
                let mut cursor: Option<String> = None;
                loop {
                    let page = self.details_job_page(&job_id, cursor.as_deref()).await?;
                    if !absorb(page.conversations, &mut seen, &mut pending, &mut chunk_tx).await {
                        return Ok(());
                    }
                    match page.cursor.filter(|c| !c.is_empty()) {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
            } else if !self
                .query_into(q, &mut seen, &mut pending, &mut chunk_tx)
                .await?
            {
                return Ok(());
            }
            if !pending.is_empty() {
                let _ = chunk_tx.send(pending).await;
            }
            Ok(())
        };
        let parallelism = self.config().batch_parallelism.max(1);
        let consumer = async {
            let mut resolved = std::pin::pin!(
                chunk_rx
                    .map(|chunk| self.resolve_conversations(chunk))
                    .buffered(parallelism)
            );
            while let Some(recs) = resolved.next().await {
                for r in recs? {
                    if keep(&r) && tx.send(Ok(r)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        };
        // When the consumer stops (error, or the archiver went away) the producer's next send
        // fails and it stops too.
        let (produced, consumed): (Result<()>, Result<()>) = tokio::join!(producer, consumer);
        consumed.and(produced)
    }

    /// Reads the synchronous details query for the interval (split as needed) into `pending`,
    /// emitting full batches on the way. Returns false when the consumer has gone.
    async fn query_into(
        &self,
        q: &DiscoveryQuery,
        seen: &mut HashSet<String>,
        pending: &mut Vec<AnalyticsConversation>,
        chunks: &mut mpsc::Sender<Vec<AnalyticsConversation>>,
    ) -> Result<bool> {
        let mut stack: Vec<(DateTime<Utc>, DateTime<Utc>)> = split_interval(q.start, q.end);
        stack.reverse();
        while let Some((s, e)) = stack.pop() {
            let page_size = self.config().page_size;
            let mut page_number = 1u32;
            loop {
                let resp = self.details_query(q, s, e, page_size, page_number).await?;
                let total = resp.total_hits.unwrap_or(0);
                let cap = self.config().max_query_results;
                // totalHits is approximate: split well before the cap, and whenever reading
                // every page would pass it.
                let needed = total.div_ceil(page_size as u64) * page_size as u64;
                if page_number == 1
                    && (needed > cap || total >= cap / 10 * 9)
                    && e - s > ChronoDuration::minutes(2)
                {
                    let mid = s + (e - s) / 2;
                    stack.push((mid, e));
                    stack.push((s, mid));
                    tracing::debug!(total_hits = ?resp.total_hits, "splitting interval near the result cap");
                    break;
                }
                let n = resp.conversations.len();
                if !absorb(resp.conversations, seen, pending, chunks).await {
                    return Ok(false);
                }
                if n < page_size as usize || (page_number as u64 + 1) * page_size as u64 > cap {
                    break;
                }
                page_number += 1;
            }
        }
        Ok(true)
    }

    /// Resolves media for a chunk of conversations into its recordings.
    async fn resolve_conversations(
        &self,
        convs: Vec<AnalyticsConversation>,
    ) -> Result<Vec<DiscoveredRecording>> {
        let mut out = Vec::new();
        match self.config().source.clone() {
            SourceMode::Batch | SourceMode::CompatListing => {
                let by_id: HashMap<&str, &AnalyticsConversation> = convs
                    .iter()
                    .map(|c| (c.conversation_id.as_str(), c))
                    .collect();
                let items = convs
                    .iter()
                    .map(|c| BatchDownloadRequest {
                        conversation_id: c.conversation_id.clone(),
                        recording_id: None,
                    })
                    .collect();
                let mut seen = HashSet::new();
                for r in self.batch_download(items).await? {
                    let (Some(cid), Some(rid)) =
                        (r.conversation_id.clone(), r.recording_id.clone())
                    else {
                        continue;
                    };
                    if !seen.insert(rid.clone()) {
                        continue;
                    }
                    let conv = by_id.get(cid.as_str());
                    out.push(DiscoveredRecording {
                        media_type: media_type_of(
                            r.content_type.as_deref(),
                            conv.and_then(|c| c.media_type()),
                        ),
                        start_time: conv.and_then(|c| parse_time(c.conversation_start.as_deref())),
                        end_time: conv.and_then(|c| parse_time(c.conversation_end.as_deref())),
                        content_type: r.content_type.clone(),
                        expected_md5: None,
                        expected_size: None,
                        media: batch_availability(&r),
                        conversation_id: cid,
                        recording_id: rid,
                    });
                }
            }
            SourceMode::PerRecording { format_id } => {
                for c in &convs {
                    for m in self.recording_metadata(&c.conversation_id).await? {
                        let available = m
                            .file_state
                            .as_deref()
                            .is_none_or(|s| s == "AVAILABLE" || s == "RESTORED");
                        let media = if available {
                            self.per_recording_availability(&c.conversation_id, &m.id, &format_id)
                                .await?
                        } else {
                            (
                                MediaAvailability::Unavailable(format!(
                                    "recording fileState is {}",
                                    m.file_state.clone().unwrap_or_default()
                                )),
                                None,
                                None,
                            )
                        };
                        out.push(DiscoveredRecording {
                            conversation_id: c.conversation_id.clone(),
                            start_time: parse_time(m.start_time.as_deref())
                                .or_else(|| parse_time(c.conversation_start.as_deref())),
                            end_time: parse_time(m.end_time.as_deref())
                                .or_else(|| parse_time(c.conversation_end.as_deref())),
                            media_type: media_type_of(None, m.media.as_deref().or(c.media_type())),
                            content_type: media.1,
                            expected_md5: None,
                            expected_size: media.2,
                            media: media.0,
                            recording_id: m.id,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Requests a fresh media URL for one recording (after a 403 or near expiry), the way the
    /// source mode obtained it.
    pub async fn refresh_media(&self, rec: &DiscoveredRecording) -> Result<MediaAvailability> {
        match self.config().source.clone() {
            SourceMode::Batch => {
                let results = self
                    .batch_download(vec![BatchDownloadRequest {
                        conversation_id: rec.conversation_id.clone(),
                        recording_id: Some(rec.recording_id.clone()),
                    }])
                    .await?;
                Ok(results
                    .iter()
                    .find(|r| r.recording_id.as_deref() == Some(rec.recording_id.as_str()))
                    .map(batch_availability)
                    .unwrap_or_else(|| {
                        MediaAvailability::Unavailable(
                            "batch request returned no result for the recording".into(),
                        )
                    }))
            }
            SourceMode::PerRecording { format_id } => Ok(self
                .per_recording_availability(&rec.conversation_id, &rec.recording_id, &format_id)
                .await?
                .0),
            SourceMode::CompatListing => {
                let (_, e): (_, CompatRecording) = self
                    .call(
                        Method::GET,
                        &format!(
                            "/api/v2/recordings/recordings/{}",
                            path_segment(&rec.recording_id)?
                        ),
                        None,
                    )
                    .await?;
                Ok(compat_to_discovered(e).media)
            }
        }
    }

    /// One page of the analytics conversation details query.
    pub async fn details_query(
        &self,
        q: &DiscoveryQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page_size: u32,
        page_number: u32,
    ) -> Result<ConversationQueryResponse> {
        let mut body = self.query_body(q, start, end);
        body["paging"] = json!({"pageSize": page_size, "pageNumber": page_number});
        let (_, r) = self
            .call(
                Method::POST,
                "/api/v2/analytics/conversations/details/query",
                Some(&body),
            )
            .await?;
        Ok(r)
    }

    fn query_body(&self, q: &DiscoveryQuery, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
        let interval = format!(
            "{}/{}",
            start.to_rfc3339_opts(SecondsFormat::Millis, true),
            end.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let segment: Vec<Value> = or_filter("queueId", &q.queue_ids).into_iter().collect();
        let mut conversation: Vec<Value> = or_filter("divisionId", &q.division_ids)
            .into_iter()
            .collect();
        if let Some(d) = &q.direction {
            conversation.extend(or_filter("originatingDirection", std::slice::from_ref(d)));
        }
        let mut body =
            json!({"interval": interval, "order": "asc", "orderBy": "conversationStart"});
        if !segment.is_empty() {
            body["segmentFilters"] = Value::Array(segment);
        }
        if !conversation.is_empty() {
            body["conversationFilters"] = Value::Array(conversation);
        }
        body
    }

    /// Submits an asynchronous analytics details job for the query's interval and waits until
    /// it is `FULFILLED` (polling with backoff). Returns the job id.
    pub async fn submit_details_job(&self, q: &DiscoveryQuery) -> Result<String> {
        let body = self.query_body(q, q.start, q.end);
        let (_, job): (_, crate::models::AsyncJobSubmission) = self
            .call(
                Method::POST,
                "/api/v2/analytics/conversations/details/jobs",
                Some(&body),
            )
            .await?;
        let path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}",
            path_segment(&job.job_id)?
        );
        let cfg = self.config();
        let started = tokio::time::Instant::now();
        let mut wait = cfg.poll_initial;
        loop {
            tokio::time::sleep(wait).await;
            let (_, st): (_, crate::models::AsyncQueryStatus) =
                self.call(Method::GET, &path, None).await?;
            match st.state.as_deref() {
                Some("FULFILLED") => return Ok(job.job_id),
                Some(s @ ("FAILED" | "CANCELLED" | "EXPIRED")) => {
                    return Err(Error::Status {
                        endpoint: "GET /api/v2/analytics/conversations/details/jobs/{id}".into(),
                        status: 200,
                        message: format!(
                            "analytics job {s}: {}",
                            st.error_message.unwrap_or_default()
                        ),
                        retry_after: None,
                    });
                }
                _ => {}
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(format!(
                    "analytics details job {}",
                    job.job_id
                )));
            }
            wait = (wait * 2).min(cfg.poll_max);
        }
    }

    /// One cursor page of a fulfilled analytics details job.
    pub async fn details_job_page(
        &self,
        job_id: &str,
        cursor: Option<&str>,
    ) -> Result<crate::models::AsyncJobResults> {
        let mut path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}/results?pageSize=1000",
            path_segment(job_id)?
        );
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(&url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>());
        }
        Ok(self.call(Method::GET, &path, None).await?.1)
    }

    /// Submits a batch download request (at most 100 items) and polls it until `Completed`
    /// with every expected result, backing off between polls.
    pub async fn batch_download(
        &self,
        items: Vec<BatchDownloadRequest>,
    ) -> Result<Vec<BatchDownloadJobResult>> {
        if items.is_empty() || items.len() > BATCH_MAX {
            return Err(Error::InvalidArgument(format!(
                "a batch request holds 1 to 100 items, not {}",
                items.len()
            )));
        }
        let body = json!({"batchDownloadRequestList": items});
        let (_, job): (_, BatchDownloadJobSubmissionResult) = self
            .call(Method::POST, "/api/v2/recording/batchrequests", Some(&body))
            .await?;
        let path = format!("/api/v2/recording/batchrequests/{}", path_segment(&job.id)?);
        let cfg = self.config();
        let started = tokio::time::Instant::now();
        let mut wait = cfg.poll_initial;
        loop {
            tokio::time::sleep(wait).await;
            let (_, st): (_, BatchDownloadJobStatusResult) =
                self.call(Method::GET, &path, None).await?;
            let complete = st.status.as_deref() == Some("Completed")
                && st.result_count.unwrap_or(st.results.len() as u64)
                    >= st.expected_result_count.unwrap_or(0);
            if complete {
                return Ok(st.results);
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(format!("batch request {}", job.id)));
            }
            wait = (wait * 2).min(cfg.poll_max);
        }
    }

    /// `GET /api/v2/conversations/{id}/recordingmetadata`.
    pub async fn recording_metadata(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<RecordingMetadata>> {
        let path = format!(
            "/api/v2/conversations/{}/recordingmetadata",
            path_segment(conversation_id)?
        );
        Ok(self.call(Method::GET, &path, None).await?.1)
    }

    /// The per-recording GET with `formatId`, polling while it answers 202 (transcoding).
    pub async fn recording_media(
        &self,
        conversation_id: &str,
        recording_id: &str,
        format_id: &str,
    ) -> Result<Recording> {
        let path = format!(
            "/api/v2/conversations/{}/recordings/{}?formatId={}",
            path_segment(conversation_id)?,
            path_segment(recording_id)?,
            path_segment(format_id)?
        );
        let cfg = self.config();
        let started = tokio::time::Instant::now();
        let mut wait = cfg.poll_initial;
        loop {
            let (status, rec): (_, Recording) = self.call(Method::GET, &path, None).await?;
            if status != StatusCode::ACCEPTED {
                return Ok(rec);
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(format!(
                    "transcoding of recording {recording_id}"
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cfg.poll_max);
        }
    }

    async fn per_recording_availability(
        &self,
        cid: &str,
        rid: &str,
        format_id: &str,
    ) -> Result<(MediaAvailability, Option<String>, Option<u64>)> {
        let rec = self.recording_media(cid, rid, format_id).await?;
        let size = rec.output_size_in_bytes.filter(|s| *s > 0);
        let uri = rec
            .media_uris
            .get("0")
            .or_else(|| rec.media_uris.values().next())
            .and_then(|m| m.media_uri.clone());
        Ok(match uri {
            Some(u) => match MediaUrl::parse(&u) {
                Ok(u) => (MediaAvailability::Url(u), None, size),
                Err(e) => (MediaAvailability::Unavailable(e.to_string()), None, None),
            },
            None => (
                MediaAvailability::Unavailable(format!(
                    "no media URI (fileState {})",
                    rec.meta.file_state.unwrap_or_else(|| "unknown".into())
                )),
                None,
                None,
            ),
        })
    }

    /// One page of the compat listing (`status=completed`).
    pub async fn compat_page(&self, page_number: u64, page_size: u64) -> Result<CompatListing> {
        let path = format!(
            "/api/v2/recordings/recordings?status=completed&pageSize={page_size}&pageNumber={page_number}"
        );
        Ok(self.call(Method::GET, &path, None).await?.1)
    }
}

fn batch_availability(r: &BatchDownloadJobResult) -> MediaAvailability {
    match (&r.result_url, &r.error_msg) {
        (Some(u), _) => match MediaUrl::parse(u) {
            Ok(u) => MediaAvailability::Url(u),
            Err(e) => MediaAvailability::Unavailable(e.to_string()),
        },
        (None, Some(m)) => MediaAvailability::Unavailable(m.clone()),
        (None, None) => {
            MediaAvailability::Unavailable("batch result has neither resultUrl nor errorMsg".into())
        }
    }
}

fn compat_to_discovered(e: CompatRecording) -> DiscoveredRecording {
    let media = match e.uri.as_deref().map(MediaUrl::parse) {
        Some(Ok(u)) => MediaAvailability::Url(u),
        Some(Err(err)) => MediaAvailability::Unavailable(err.to_string()),
        None => MediaAvailability::Unavailable(format!(
            "no uri (status {})",
            e.status.clone().unwrap_or_default()
        )),
    };
    DiscoveredRecording {
        conversation_id: e.interaction_id.clone().unwrap_or_default(),
        start_time: parse_time(e.start_time.as_deref()),
        end_time: parse_time(e.end_time.as_deref()),
        media_type: media_type_of(e.content_type.as_deref(), e.media_type.as_deref()),
        content_type: e.content_type,
        expected_md5: e
            .md5
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|m| m.to_ascii_lowercase()),
        expected_size: e.size,
        media,
        recording_id: e.id,
    }
}

/// Refuses ids that are not plain path segments (`/`, `..`, control characters, ...).
pub fn path_segment(id: &str) -> Result<&str> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id)
    } else {
        Err(Error::Refused(format!(
            "id {:?} is not a plain identifier",
            id.escape_debug().to_string()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_seven_days() {
        let s = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let parts = split_interval(s, s + ChronoDuration::days(17));
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].1 - parts[0].0, ChronoDuration::days(7));
        assert_eq!(parts[2].1, s + ChronoDuration::days(17));
        assert!(parts.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(split_interval(s, s).is_empty());
    }

    #[test]
    fn media_types_and_ids() {
        assert_eq!(media_type_of(Some("audio/ogg"), None), "audio");
        assert_eq!(media_type_of(Some("video/webm"), Some("voice")), "screen");
        assert_eq!(media_type_of(Some("message/rfc822"), None), "email");
        assert_eq!(media_type_of(None, Some("voice")), "audio");
        assert!(path_segment("3b0f-aa_1").is_ok());
        for bad in ["", "..", "a/b", "a\nb", "a?b", "%2e%2e"] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }
}
