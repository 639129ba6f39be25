//! Discovery: which recordings exist in an interval, with a media URL for each, and an
//! explicit item for everything that cannot be archived yet or cannot be listed at all.
//!
//! The flow (see `docs/architecture.md`):
//!
//! 1. **Plan** ([`crate::analytics`]): history before the data lake's availability date comes
//!    from analytics jobs, what lies after it from the synchronous details query (which reaches
//!    35 days back). A part neither can serve is a [`Discovered::NotDiscoverable`] item.
//! 2. **Conversations**: every conversation with activity in the interval, de-duplicated
//!    across pages, pieces and APIs. No filter on the sessions' `recording` flag (it is about
//!    audio only). A conversation without `conversationEnd` is still going on: a
//!    [`Discovered::Pending`] item, resolved on a later pass.
//! 3. **Media** ([`crate::resolve`]): chunks of 100 finished conversations go to batch
//!    downloads (or `recordingmetadata` + the per-recording GET); every file of every
//!    recording becomes one [`DiscoveredRecording`].

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use http::Method;

use std::sync::Arc;

use crate::client::{GenesysClient, SourceMode};
use crate::error::{Error, Result};
use crate::facts::ConversationFacts;
use crate::known::{KnownConversations, ResolvedConversation};
use crate::media::MediaUrl;
use crate::models::{AnalyticsConversation, CompatListing, CompatRecording};

/// What to discover: an interval and the filters users expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryQuery {
    /// Interval start (inclusive).
    pub start: DateTime<Utc>,
    /// Interval end (exclusive). The interval's conversations are those with activity in it:
    /// started before its end and not ended before its start.
    pub end: DateTime<Utc>,
    /// Keep only these media types (`audio`, `screen`, `chat`, `email`); empty keeps all.
    pub media_types: Vec<String>,
    /// Keep only conversations that touched one of these queues; empty keeps all.
    pub queue_ids: Vec<String>,
    /// Keep only conversations in one of these divisions; empty keeps all.
    pub division_ids: Vec<String>,
    /// Keep only `inbound` or `outbound` conversations.
    pub direction: Option<String>,
    /// Defer a last batch of fewer than 100 finished conversations while its oldest one ended
    /// less than this long before `end`: its conversations come as [`Discovered::Pending`]
    /// with [`PendingItem::waiting`] set, instead of costing a batch download job now. The
    /// caller keeps them and passes them back in [`DiscoveryQuery::waiting`] next time (or
    /// reads again from [`PendingItem::since`]). For polls of a quiet org, where one job per
    /// poll is most of the API calls. `None` resolves every conversation now.
    pub partial_batch_wait: Option<chrono::Duration>,
    /// Finished conversations an earlier query deferred ([`PendingItem::waiting`]): resolved
    /// with this query's, or deferred again, whether or not its interval lists them.
    pub waiting: Vec<AnalyticsConversation>,
    /// How long before the interval a conversation active in it may have started (the
    /// longest conversation looked for: queued email and async messaging can stay open for
    /// days). The details query returns conversations by their start day, so one that started
    /// on an earlier UTC day than where the query begins is found by one small query across
    /// each UTC midnight back to this far (one API call per midnight). Zero: none (the caller
    /// knows the earlier days were read, as a poll between sweeps does). Default: 7 days.
    pub earlier_starts: ChronoDuration,
}

/// [`DiscoveryQuery::earlier_starts`] of [`DiscoveryQuery::interval`].
pub const DEFAULT_EARLIER_STARTS: ChronoDuration = ChronoDuration::days(7);

impl DiscoveryQuery {
    /// All recordings of conversations with activity in `[start, end)`.
    pub fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            start,
            end,
            media_types: vec![],
            queue_ids: vec![],
            division_ids: vec![],
            direction: None,
            partial_batch_wait: None,
            waiting: Vec::new(),
            earlier_starts: DEFAULT_EARLIER_STARTS,
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

/// A recording (one file of it) found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRecording {
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id.
    pub recording_id: String,
    /// Which file of the recording, when it has several: `part1`, `part2`... for several
    /// batch results, `ch0`, `ch1`, `chS`... for several `mediaUris` channels. `None` for
    /// the only file.
    pub file: Option<String>,
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
    /// What analytics says about the conversation (empty for the compat listing); shared by
    /// the conversation's files.
    pub facts: std::sync::Arc<ConversationFacts>,
}

impl DiscoveredRecording {
    /// The identity of this file in the ledger, reports and events: the recording id, with
    /// `~file` appended when the recording has several files.
    pub fn ledger_id(&self) -> Cow<'_, str> {
        match &self.file {
            None => Cow::Borrowed(&self.recording_id),
            Some(f) => Cow::Owned(format!("{}~{f}", self.recording_id)),
        }
    }
}

/// A recording (or a whole conversation) that exists but cannot be archived yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    /// Conversation id.
    pub conversation_id: String,
    /// Recording id; `None` when the conversation is still going on and its recordings are
    /// not listed yet.
    pub recording_id: Option<String>,
    /// Where a poll loop must come back to (at least) to list it again: when the
    /// conversation started, or for a finished one deferred to a fuller batch its end (when it
    /// started the same UTC day).
    pub since: Option<DateTime<Utc>>,
    /// Why it must wait (conversation in progress, `fileState` `UPLOADING`, ...).
    pub reason: String,
    /// A finished conversation to resolve again later: deferred to a fuller batch
    /// ([`DiscoveryQuery::partial_batch_wait`]), or with a recording not ready yet
    /// (`UPLOADING`, `RESTORING`, a file without a URL). What to pass back in
    /// [`DiscoveryQuery::waiting`] so that it is resolved without being listed again (a poll
    /// loop need not hold its checkpoint at it).
    pub waiting: Option<Box<AnalyticsConversation>>,
}

/// A part of the interval that no API could list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndiscoverableSpan {
    /// Start of the part.
    pub start: DateTime<Utc>,
    /// End of the part (exclusive).
    pub end: DateTime<Utc>,
    /// Why it could not be listed.
    pub reason: String,
}

/// One item of discovery: a recording to archive, or an explicit account of what could not be
/// listed or archived yet. Nothing the source lists is left out silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    /// A recording file, with its media URL or the reason there is none.
    Recording(DiscoveredRecording),
    /// Exists, not ready: the conversation is in progress or the recording is uploading or
    /// being restored.
    Pending(PendingItem),
    /// A conversation whose recordings could not be resolved (malformed results, ...).
    Unresolved {
        /// Conversation id (empty when the source did not name it).
        conversation_id: String,
        /// Why.
        reason: String,
    },
    /// A part of the interval neither analytics API can list.
    NotDiscoverable(UndiscoverableSpan),
    /// A finished conversation the caller's [`KnownConversations`] holds as settled (every
    /// recording archived or accounted for): listed by analytics, not resolved again.
    Known {
        /// Conversation id.
        conversation_id: String,
    },
}

impl From<DiscoveredRecording> for Discovered {
    fn from(r: DiscoveredRecording) -> Self {
        Discovered::Recording(r)
    }
}

impl Discovered {
    /// The recording, when this item is one.
    pub fn recording(&self) -> Option<&DiscoveredRecording> {
        match self {
            Discovered::Recording(r) => Some(r),
            _ => None,
        }
    }
}

/// The most conversations one batch download job carries.
pub const BATCH_MAX: usize = 100;

/// The conversation ids a run has seen, held compactly: a run over a million conversations
/// keeps every id, so a canonical (lower-case) UUID is kept as its 16 bytes, anything else as
/// its text.
#[derive(Debug, Default)]
pub(crate) struct SeenIds {
    uuids: HashSet<u128>,
    other: HashSet<String>,
}

impl SeenIds {
    /// Adds `id`; false when it was seen before.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        match uuid_bits(id) {
            Some(u) => self.uuids.insert(u),
            None => self.other.insert(id.to_string()),
        }
    }
}

/// The 128 bits of a canonical UUID (`8-4-4-4-12` lower-case hex digits), else `None`.
fn uuid_bits(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// What the media stage receives, in discovery order.
pub(crate) enum Work {
    /// Finished conversations to resolve (at most 100).
    Conversations(Vec<AnalyticsConversation>),
    /// An item to pass on as it is.
    Item(Box<Discovered>),
}

/// De-duplicates conversations across pages, pieces and APIs; keeps those with activity in
/// the query's interval; reports the ones still in progress; hands finished ones on in
/// chunks of 100.
pub(crate) struct Collector<'a> {
    q: &'a DiscoveryQuery,
    known: Option<Arc<dyn KnownConversations>>,
    seen: SeenIds,
    pending: Vec<AnalyticsConversation>,
    out: mpsc::Sender<Work>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(
        q: &'a DiscoveryQuery,
        known: Option<Arc<dyn KnownConversations>>,
        out: mpsc::Sender<Work>,
    ) -> Self {
        Self {
            q,
            known,
            seen: SeenIds::default(),
            pending: Vec::new(),
            out,
        }
    }

    /// Takes the conversations earlier queries deferred ([`DiscoveryQuery::waiting`]), before
    /// the first page: they are resolved with this query's whatever its interval. Returns
    /// false when the consumer has gone.
    pub(crate) async fn carry_in(&mut self) -> bool {
        let waiting = self.q.waiting.clone();
        waiting.is_empty() || self.take(waiting, false).await
    }

    /// Takes one page. Returns false when the consumer has gone.
    pub(crate) async fn absorb(&mut self, page: Vec<AnalyticsConversation>) -> bool {
        self.take(page, true).await
    }

    async fn take(&mut self, page: Vec<AnalyticsConversation>, listed: bool) -> bool {
        // One question per page: which of its finished conversations are settled already.
        let settled = match &self.known {
            Some(known) => {
                let finished: Vec<String> = page
                    .iter()
                    .filter(|c| c.conversation_end.is_some())
                    .map(|c| c.conversation_id.clone())
                    .collect();
                if finished.is_empty() {
                    HashSet::new()
                } else {
                    known.settled(&finished).await
                }
            }
            None => HashSet::new(),
        };
        for c in page {
            let start = parse_time(c.conversation_start.as_deref());
            let end = parse_time(c.conversation_end.as_deref());
            // Activity in [q.start, q.end): started before its end, not ended before its
            // start. An unreadable time keeps the conversation (never drop on doubt).
            let active = !listed
                || start.is_none_or(|s| s < self.q.end) && end.is_none_or(|e| e >= self.q.start);
            if !active || !self.seen.insert(&c.conversation_id) {
                continue;
            }
            if c.conversation_end.is_none() {
                let item = Discovered::Pending(PendingItem {
                    conversation_id: c.conversation_id.clone(),
                    recording_id: None,
                    since: start,
                    reason: "the conversation is still in progress; its recordings are archived once it has ended".into(),
                    waiting: None,
                });
                if !self.send(Work::Item(Box::new(item))).await {
                    return false;
                }
                continue;
            }
            if settled.contains(&c.conversation_id) {
                let item = Discovered::Known {
                    conversation_id: c.conversation_id,
                };
                if !self.send(Work::Item(Box::new(item))).await {
                    return false;
                }
                continue;
            }
            self.pending.push(c);
            if self.pending.len() >= BATCH_MAX {
                let chunk = std::mem::take(&mut self.pending);
                if !self.send(Work::Conversations(chunk)).await {
                    return false;
                }
            }
        }
        true
    }

    /// Passes an item on. Returns false when the consumer has gone.
    pub(crate) async fn send(&mut self, w: Work) -> bool {
        self.out.send(w).await.is_ok()
    }

    /// Hands on the last, partial chunk, or defers it (`DiscoveryQuery::partial_batch_wait`).
    pub(crate) async fn finish(mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut self.pending);
        let Some(wait) = self.q.partial_batch_wait else {
            let _ = self.out.send(Work::Conversations(chunk)).await;
            return;
        };
        // The oldest end; any unreadable end resolves now (never hold on doubt).
        let oldest = chunk
            .iter()
            .map(|c| parse_time(c.conversation_end.as_deref()))
            .collect::<Option<Vec<_>>>()
            .and_then(|ends| ends.into_iter().min());
        let until = oldest.map(|t| t + wait);
        match until {
            Some(until) if until > self.q.end => {
                let n = chunk.len();
                for c in chunk {
                    // The next polls must list it again: a window reaching back to its end
                    // does (it had activity there), as long as the window also touches the day
                    // it started on (the query returns only conversations that started on a
                    // day its interval touches); else back to its start.
                    let start = parse_time(c.conversation_start.as_deref());
                    let end = parse_time(c.conversation_end.as_deref());
                    let day = |t: DateTime<Utc>| t.date_naive();
                    let since = match (start, end) {
                        (Some(s), Some(e)) if day(s) == day(e) => Some(e),
                        _ => start,
                    };
                    let item = Discovered::Pending(PendingItem {
                        since,
                        conversation_id: c.conversation_id.clone(),
                        recording_id: None,
                        reason: format!(
                            "waiting for a fuller batch download job ({n} of {BATCH_MAX} conversations) until {}",
                            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                        waiting: Some(Box::new(c)),
                    });
                    if !self.send(Work::Item(Box::new(item))).await {
                        return;
                    }
                }
            }
            _ => {
                let _ = self.out.send(Work::Conversations(chunk)).await;
            }
        }
    }
}

pub(crate) fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
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

/// After a chunk was resolved: tells `known` what each conversation held and keeps the items
/// `q`'s media-type filter keeps. Every file counts for `known`, also those the filter leaves
/// out: a conversation settles only once all of them are archived, so a later run with a wider
/// filter still finds them.
pub(crate) async fn after_resolution(
    q: &DiscoveryQuery,
    convs: Vec<AnalyticsConversation>,
    items: Vec<Discovered>,
    known: Option<&dyn KnownConversations>,
) -> Vec<Discovered> {
    if let Some(known) = known
        && !convs.is_empty()
    {
        known.resolved(summarize(convs, &items)).await;
    }
    items
        .into_iter()
        .filter(|i| i.recording().is_none_or(|r| keeps(q, r)))
        .collect()
}

/// Whether the query's media-type filter keeps `r`.
fn keeps(q: &DiscoveryQuery, r: &DiscoveredRecording) -> bool {
    q.media_types.is_empty()
        || q.media_types
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&r.media_type))
}

/// What each conversation of a resolved chunk held, for [`KnownConversations::resolved`].
fn summarize(convs: Vec<AnalyticsConversation>, items: &[Discovered]) -> Vec<ResolvedConversation> {
    convs
        .into_iter()
        .map(|c| {
            let id = c.conversation_id.clone();
            let end = parse_time(c.conversation_end.as_deref());
            let mut files = Vec::new();
            let mut complete = true;
            for item in items {
                match item {
                    Discovered::Recording(r) if r.conversation_id == id => {
                        if matches!(r.media, MediaAvailability::Url(_)) {
                            files.push(r.ledger_id().into_owned());
                        }
                    }
                    Discovered::Pending(p) if p.conversation_id == id => complete = false,
                    Discovered::Unresolved {
                        conversation_id, ..
                    } if *conversation_id == id || conversation_id.is_empty() => complete = false,
                    _ => {}
                }
            }
            ResolvedConversation {
                conversation_id: id,
                end,
                files,
                complete,
                conversation: Box::new(c),
            }
        })
        .collect()
}

/// The longest interval of one details query.
const MAX_INTERVAL_DAYS: i64 = 7;

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

impl GenesysClient {
    /// Discovers the interval's recordings as a stream: each recording file once, with its
    /// media URL (or the reason there is none), plus an item for every conversation or
    /// recording that is not ready yet and every part of the interval that cannot be listed.
    ///
    /// The work runs in a spawned task that stays at most a few items ahead of the consumer.
    /// An error ends the stream after being yielded; so does a panic inside discovery (as an
    /// error): the stream ends without an error only when discovery completed.
    pub fn discover(
        &self,
        query: DiscoveryQuery,
    ) -> impl Stream<Item = Result<Discovered>> + Send + 'static {
        self.discover_known(query, None)
    }

    /// [`Self::discover`], skipping the finished conversations `known` holds as settled (a
    /// [`Discovered::Known`] item each, no batch job) and telling it what every resolved
    /// conversation held.
    pub fn discover_known(
        &self,
        query: DiscoveryQuery,
        known: Option<Arc<dyn KnownConversations>>,
    ) -> impl Stream<Item = Result<Discovered>> + Send + 'static {
        let (tx, rx) = mpsc::channel(BATCH_MAX);
        let client = self.clone();
        tokio::spawn(async move {
            let mut tx2 = tx.clone();
            let run = std::panic::AssertUnwindSafe(client.discover_into(&query, known, tx));
            let err = match run.catch_unwind().await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(panic) => Error::Decode {
                    endpoint: "discovery".into(),
                    message: format!(
                        "discovery stopped unexpectedly ({}); the interval was not fully listed",
                        panic_message(&panic)
                    ),
                },
            };
            let _ = tx2.send(Err(err)).await;
        });
        rx
    }

    async fn discover_into(
        &self,
        q: &DiscoveryQuery,
        known: Option<Arc<dyn KnownConversations>>,
        mut tx: mpsc::Sender<Result<Discovered>>,
    ) -> Result<()> {
        if q.start >= q.end {
            return Err(Error::InvalidArgument(format!(
                "interval start {} is not before its end {}",
                q.start.to_rfc3339(),
                q.end.to_rfc3339()
            )));
        }
        let keep = |r: &DiscoveredRecording| keeps(q, r);
        if self.config().source == SourceMode::CompatListing {
            return self.compat_into(q, &keep, &mut tx).await;
        }
        // Reading analytics (the producer) and resolving media for chunks of 100
        // conversations overlap: up to `batch_parallelism` chunks are resolved at once, and
        // items come out in discovery order.
        let (work_tx, work_rx) = mpsc::channel::<Work>(1);
        let memory = known.clone();
        let producer = async move {
            let mut collector = Collector::new(q, memory, work_tx);
            if !collector.carry_in().await || !self.list_conversations(q, &mut collector).await? {
                return Ok(());
            }
            collector.finish().await;
            Ok(())
        };
        let parallelism = self.config().batch_parallelism.max(1);
        type Resolved = (Vec<AnalyticsConversation>, Vec<Discovered>);
        let consumer = async {
            // The batch jobs go on while the archiver is busy: a resolved chunk waits in
            // `done` (at most `parallelism` of them) for room in `tx`, instead of the jobs
            // behind it waiting, unpolled, until the archiver has taken every item of it. Else
            // each round of jobs starts only once the workers are idle, and they wait for it.
            let (mut done_tx, mut done_rx) = mpsc::channel::<Result<Resolved>>(parallelism);
            let known_for_jobs = known.clone();
            let resolve = async move {
                let known = known_for_jobs;
                let mut resolved = std::pin::pin!(
                    work_rx
                        .map(|w| -> BoxFuture<'_, Result<Resolved>> {
                            match w {
                                Work::Conversations(chunk) => {
                                    let memory = known.clone();
                                    let convs = chunk.clone();
                                    Box::pin(async move {
                                        let items = self
                                            .resolve_conversations(chunk, memory.as_deref())
                                            .await?;
                                        Ok((convs, items))
                                    })
                                }
                                Work::Item(item) => {
                                    Box::pin(std::future::ready(Ok((Vec::new(), vec![*item]))))
                                }
                            }
                        })
                        .buffered(parallelism)
                );
                while let Some(r) = resolved.next().await {
                    let failed = r.is_err();
                    if done_tx.send(r).await.is_err() || failed {
                        return;
                    }
                }
            };
            let forward = async {
                while let Some(r) = done_rx.next().await {
                    let (convs, items) = r?;
                    let items = after_resolution(q, convs, items, known.as_deref()).await;
                    for item in items {
                        if tx.send(Ok(item)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            };
            let mut forward = std::pin::pin!(forward);
            tokio::select! {
                // Forwarding ended (all sent, an error, or the archiver went away): jobs
                // still in flight are dropped, as before.
                out = &mut forward => out,
                // Every chunk resolved: forward what waits.
                () = resolve => forward.await,
            }
        };
        // When the consumer stops (error, or the archiver went away) the producer's next send
        // fails and it stops too.
        let (produced, consumed): (Result<()>, Result<()>) = tokio::join!(producer, consumer);
        consumed.and(produced)
    }

    async fn compat_into(
        &self,
        q: &DiscoveryQuery,
        keep: &(dyn Fn(&DiscoveredRecording) -> bool + Sync),
        tx: &mut mpsc::Sender<Result<Discovered>>,
    ) -> Result<()> {
        let mut page = 1u64;
        loop {
            let size = self.config().page_size.min(100) as u64;
            let listing = self.compat_page(page, size).await?;
            let n = listing.entities.len() as u64;
            for e in listing.entities {
                let r = compat_to_discovered(e);
                let in_interval = r.start_time.is_none_or(|t| t >= q.start && t < q.end);
                if in_interval && keep(&r) && tx.send(Ok(r.into())).await.is_err() {
                    return Ok(());
                }
            }
            if n < size || listing.page_count.is_some_and(|c| page >= c) {
                return Ok(());
            }
            page += 1;
        }
    }

    /// One page of the compat listing (`status=completed`).
    pub async fn compat_page(&self, page_number: u64, page_size: u64) -> Result<CompatListing> {
        let path = format!(
            "/api/v2/recordings/recordings?status=completed&pageSize={page_size}&pageNumber={page_number}"
        );
        Ok(self.call(Method::GET, &path, None).await?.1)
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

pub(crate) fn compat_to_discovered(e: CompatRecording) -> DiscoveredRecording {
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
        file: None,
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
        facts: Default::default(),
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
mod tests;
