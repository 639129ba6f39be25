//! The archive pipeline: discovery -> bounded queue -> worker pool -> sink.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use genesys_media::{
    Discovered, DiscoveredRecording, ErrorClass, GenesysClient, MediaAvailability, MediaUrl,
    RetryPolicy, Wait,
};
use http_body_util::BodyExt;
use integrity::{BoxError, Md5Digest};
use sink::{ObjectSink, PutOptions, SinkErrorKind};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::adopt::{Proof, check_existing};
use crate::events::{Event, EventHandler};
use crate::ledger::{AdoptedObject, Claim, Ledger};
use crate::refresh::{RefreshQueue, Refreshed, Waiting};
use crate::template::KeyTemplate;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    /// Recordings processed at the same time.
    pub workers: usize,
    /// Where each recording goes.
    pub key_template: KeyTemplate,
    /// Backoff for 5xx and transport errors, and the `Retry-After` clamp.
    pub retry: RetryPolicy,
    /// How often one recording's URL may be refreshed after 403s.
    pub max_url_refreshes: u32,
    /// Retries after an MD5 or length mismatch (the brief: once).
    pub integrity_retries: u32,
    /// Use a media response's ETag as the expected MD5 when it looks like one.
    pub verify_source_etag: bool,
    /// HEAD the key first and skip recordings already stored.
    pub skip_existing: bool,
    /// Write with create-only semantics (never replace an object).
    pub create_only: bool,
    /// Time limit of one download-and-upload attempt.
    pub attempt_timeout: Duration,
    /// Re-request a media URL before using it when it was received longer ago than this
    /// (Genesys URLs live 60 minutes by default; a 403 triggers a refresh anyway).
    pub url_max_age: Duration,
    /// URL refreshes are gathered and asked for together (up to 100 in one batch job): at
    /// the latest this long after the first one is waiting, sooner when 100 are waiting or
    /// nothing else is left to do. Workers do not wait for them.
    pub url_refresh_window: Duration,
    /// The ledger: each recording is claimed in it before any byte moves and its outcome is
    /// written after; recordings it lists as archived or quarantined are skipped without
    /// asking the store or the source.
    pub ledger: Option<Ledger>,
    /// This instance's id, written as the lease owner (unique per process).
    pub instance_id: String,
    /// How long a claim holds before another instance may take the recording over; renewed
    /// every third of it while the upload runs.
    pub lease: Duration,
    /// Cancel to shut down: discovery stops, no new attempt starts, and in-flight uploads get
    /// `drain_timeout` to finish before they are aborted (their claims are released).
    pub shutdown: CancellationToken,
    /// See `shutdown`.
    pub drain_timeout: Duration,
    /// Keep the phone numbers analytics gives (`ani`, `dnis`: personal data) in object
    /// metadata, the ledger and the index. Off by default: they are dropped on arrival.
    pub keep_phone_numbers: bool,
    /// Compute each object's SHA-256 while streaming and keep it in the ledger, for the
    /// chain-of-custody index (about a third of MD5's CPU cost with SHA-NI). On by default.
    pub sha256: bool,
    /// How long after its end a conversation may still gain files: it is resolved again
    /// once this has passed before it settles (see [`crate::LateWindow`]); zero: off.
    pub late_window: Duration,
}

/// A process-unique instance id: host name, process id and a random suffix.
pub fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

impl ArchiverConfig {
    /// The late window of discovery working in `present` (see [`crate::LateWindow`]).
    pub fn late_at(&self, present: chrono::DateTime<chrono::Utc>) -> crate::LateWindow {
        crate::LateWindow {
            window: self.late_window,
            present,
            recheck_all: false,
            keep_phone_numbers: self.keep_phone_numbers,
            stats: Default::default(),
        }
    }
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            key_template: KeyTemplate::default(),
            retry: RetryPolicy::default(),
            max_url_refreshes: 3,
            integrity_retries: 1,
            verify_source_etag: false,
            skip_existing: true,
            create_only: true,
            attempt_timeout: Duration::from_secs(3600),
            url_max_age: Duration::from_secs(45 * 60),
            url_refresh_window: Duration::from_secs(30),
            ledger: None,
            instance_id: default_instance_id(),
            lease: Duration::from_secs(600),
            shutdown: CancellationToken::new(),
            drain_timeout: Duration::from_secs(30),
            keep_phone_numbers: false,
            sha256: true,
            late_window: crate::DEFAULT_LATE_WINDOW,
        }
    }
}

/// The most reasons [`Summary::absorb`] keeps; older ones are counted in
/// `failures_dropped`.
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// What kind of account a [`FailureReport`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Tried and given up (or waiting in quarantine).
    Failed,
    /// The source has no media for it (archived, deleted, ...).
    Unavailable,
    /// Exists but is not ready: the conversation is in progress or the recording is
    /// uploading or being restored. The daemon comes back for it.
    Pending,
    /// A part of the interval no API could list.
    NotDiscoverable,
    /// Another live instance holds its lease: not archived by this run. Pending: a poll holds
    /// its checkpoint at it, a chunk keeps its conversation, a one-shot run exits non-zero.
    LeasedElsewhere,
}

/// A recording (or conversation, or part of the interval) that was not archived, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureReport {
    /// Conversation id (empty for a part of the interval).
    pub conversation_id: String,
    /// Recording id as the ledger knows it (`~file` appended for one file of several);
    /// empty when not known (a conversation in progress, a part of the interval).
    pub recording_id: String,
    /// Why.
    pub reason: String,
    /// Whether it is unavailable at the source rather than failed.
    pub unavailable: bool,
    /// The kind of account.
    pub kind: ReportKind,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Recordings discovered.
    pub found: u64,
    /// Stored and verified in this run.
    pub archived: u64,
    /// Already stored; not downloaded.
    pub skipped: u64,
    /// Gave up on (see `failures`).
    pub failed: u64,
    /// Without media at the source (archived/deleted); reported, not retried.
    pub unavailable: u64,
    /// Skipped because the ledger holds them in quarantine (`quarantine retry` releases them).
    pub quarantined: u64,
    /// Skipped because another live instance holds their lease.
    pub leased_elsewhere: u64,
    /// Not finished because of shutdown; their claims were released for the next run.
    pub interrupted: u64,
    /// The run stopped (shutdown) before its source was drained: recordings the source had
    /// not yielded yet were never seen, so no count covers them. Never clean.
    pub source_incomplete: bool,
    /// Failures (counted in `failed`) that left no row in the ledger: the claim or the outcome
    /// could not be written, the key could not be built, or the worker stopped. Nothing
    /// retries them from the ledger, so a poll with any is not reconciled (its window is read
    /// again) and a chunk with any is kept.
    pub unrecorded: u64,
    /// Polls (continuous mode) whose window was not reconciled: their checkpoint did not move
    /// past it, and the next poll reads it again.
    pub unreconciled_polls: u64,
    /// Conversations in progress and recordings not uploaded yet: not archivable now.
    pub pending: u64,
    /// Parts of the interval no API could list.
    pub not_discoverable: u64,
    /// Finished conversations the ledger holds as settled (every recording archived or
    /// accounted for before): listed by analytics, not resolved again (no API call).
    pub known_conversations: u64,
    /// Conversations resolved again after an earlier complete resolution (late-window
    /// rechecks, see [`crate::LateWindow`]).
    pub rechecked: u64,
    /// Files those rechecks found that the earlier resolution had not listed (files that
    /// reached their conversation late; archived like any other).
    pub late_files: u64,
    /// Conversations still inside their late window when the run ended: resolved, every
    /// file archived, and resolved again once the window has passed. Not a failure.
    pub late_window_open: u64,
    /// When the last of those late windows closes.
    pub late_window_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The earliest start of a conversation counted in `pending`: a poll loop must read
    /// from here again.
    pub pending_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Bytes stored in this run.
    pub bytes: u64,
    /// Failures, unavailable and pending recordings and undiscoverable parts, with reasons
    /// (when several runs are summed, the most recent [`MAX_REPORTED_FAILURES`]).
    pub failures: Vec<FailureReport>,
    /// Reports left out of `failures` to keep it bounded (the counts include them).
    pub failures_dropped: u64,
    /// Discovery stopped early with this error.
    pub discovery_error: Option<String>,
    /// Whether the discovery error is a configuration problem (credentials, region).
    pub discovery_error_is_config: bool,
    /// Finished conversations discovery deferred to a fuller batch (counted in `pending`,
    /// not in `pending_since`): the caller keeps them and passes them back in
    /// [`genesys_media::DiscoveryQuery::waiting`] (continuous mode keeps them in the ledger),
    /// or they are never archived. Not in the report (they carry personal data); summing
    /// runs keeps the latest run's.
    #[serde(skip)]
    pub waiting: Vec<genesys_media::models::AnalyticsConversation>,
}

/// Every account of a run, checked: what the source listed equals what was archived plus
/// what is reported with a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciliation {
    /// Recording files the source listed (discovered).
    pub listed: u64,
    /// Archived in this run or earlier (skipped).
    pub archived: u64,
    /// Unavailable at the source (archived, deleted), with the source's reason.
    pub unavailable: u64,
    /// Failed, or waiting in quarantine.
    pub failed: u64,
    /// Held by another live instance's lease.
    pub leased_elsewhere: u64,
    /// Stopped by shutdown.
    pub interrupted: u64,
    /// Conversations and recordings not ready yet.
    pub pending: u64,
    /// Parts of the interval that could not be listed.
    pub not_discoverable: u64,
    /// Listed but in none of the above: always 0 unless the archiver lost track of one.
    pub unaccounted: u64,
    /// Discovery did not complete (the listing itself is incomplete).
    pub discovery_incomplete: bool,
    /// The run was stopped before the source was drained (see [`Summary::source_incomplete`]).
    pub source_incomplete: bool,
    /// Failures not recorded in the ledger (see [`Summary::unrecorded`]).
    pub unrecorded: u64,
    /// Clean: everything listed is archived or unavailable at the source with a reason,
    /// nothing is pending, failed, leased by another instance or unlisted, discovery
    /// completed and the run was not cut short.
    pub clean: bool,
}

impl Summary {
    /// The one-line summary the CLI prints.
    pub fn line(&self) -> String {
        let mut line = format!(
            "found {}, archived {}, skipped {}, failed {}, unavailable {}",
            self.found, self.archived, self.skipped, self.failed, self.unavailable
        );
        for (n, what) in [
            (self.quarantined, "in quarantine"),
            (
                self.leased_elsewhere,
                "leased by another instance (pending)",
            ),
            (self.interrupted, "interrupted"),
            (self.unrecorded, "failed without a ledger row (read again)"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        for (n, what) in [
            (
                self.known_conversations,
                "conversation(s) already archived (not resolved again)",
            ),
            (self.pending, "pending (not ready at the source)"),
            (
                self.not_discoverable,
                "part(s) of the interval not discoverable",
            ),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        if self.rechecked > 0 {
            line.push_str(&format!(
                ", {} conversation(s) rechecked for late files ({} found)",
                self.rechecked, self.late_files
            ));
        }
        if let (n, Some(until)) = (self.late_window_open, self.late_window_until)
            && n > 0
        {
            line.push_str(&format!(
                ", {n} conversation(s) inside their late window (rechecked by {})",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if self.source_incomplete {
            line.push_str(", interrupted before discovery finished (the rest was never seen)");
        }
        line.push_str(&format!(" ({} bytes)", self.bytes));
        line
    }

    /// True when the reconciliation is clean: nothing failed, waits in quarantine, is
    /// pending or could not be listed, and the run was not cut short.
    pub fn success(&self) -> bool {
        self.reconcile().clean
    }

    /// Checks that every recording the source listed is accounted for.
    pub fn reconcile(&self) -> Reconciliation {
        let archived = self.archived + self.skipped;
        let failed = self.failed + self.quarantined;
        let accounted =
            archived + self.unavailable + failed + self.leased_elsewhere + self.interrupted;
        let discovery_incomplete = self.discovery_error.is_some();
        let unaccounted = self.found.saturating_sub(accounted);
        Reconciliation {
            listed: self.found,
            archived,
            unavailable: self.unavailable,
            failed,
            leased_elsewhere: self.leased_elsewhere,
            interrupted: self.interrupted,
            pending: self.pending,
            not_discoverable: self.not_discoverable,
            unaccounted,
            discovery_incomplete,
            source_incomplete: self.source_incomplete,
            unrecorded: self.unrecorded,
            clean: failed == 0
                && self.interrupted == 0
                && self.leased_elsewhere == 0
                && !self.source_incomplete
                && self.pending == 0
                && self.not_discoverable == 0
                && unaccounted == 0
                && !discovery_incomplete,
        }
    }

    /// Adds the counts of another run (continuous mode sums its polls).
    pub fn absorb(&mut self, other: Summary) {
        self.found += other.found;
        self.known_conversations += other.known_conversations;
        self.archived += other.archived;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.unavailable += other.unavailable;
        self.quarantined += other.quarantined;
        self.leased_elsewhere += other.leased_elsewhere;
        self.interrupted += other.interrupted;
        self.source_incomplete |= other.source_incomplete;
        self.unrecorded += other.unrecorded;
        self.unreconciled_polls += other.unreconciled_polls;
        self.rechecked += other.rechecked;
        self.late_files += other.late_files;
        // The latest run's view of the ledger.
        self.late_window_open = other.late_window_open;
        self.late_window_until = other.late_window_until;
        self.pending += other.pending;
        self.not_discoverable += other.not_discoverable;
        self.pending_since = self
            .pending_since
            .into_iter()
            .chain(other.pending_since)
            .min();
        self.waiting = other.waiting;
        self.bytes += other.bytes;
        // A long-running daemon sums its polls: the counts keep growing, the list of
        // reasons keeps the most recent MAX_REPORTED_FAILURES (memory stays flat).
        self.failures.extend(other.failures);
        if self.failures.len() > MAX_REPORTED_FAILURES {
            let excess = self.failures.len() - MAX_REPORTED_FAILURES;
            self.failures.drain(..excess);
            self.failures_dropped += excess as u64;
        }
        if other.discovery_error.is_some() {
            self.discovery_error = other.discovery_error;
            self.discovery_error_is_config = other.discovery_error_is_config;
        }
    }
}

enum Outcome {
    Archived {
        size: u64,
    },
    Skipped,
    Unavailable(String),
    /// Reason, integrity (quarantine), attempts made.
    Failed(String, bool, u32),
    Quarantined(String),
    Busy,
    Interrupted,
    /// Failed, and the ledger has no row saying so (see [`Summary::unrecorded`]).
    Unrecorded(String),
    /// The URL was refused (403) or grew too old: the claim was given back and the recording
    /// waits for a fresh URL with others ([`crate::refresh`]); `refreshes` so far.
    NeedsUrl {
        refreshes: u32,
        attempts: u32,
    },
}

/// A recording ready for a worker.
pub(crate) struct Ready {
    pub(crate) rec: DiscoveredRecording,
    /// When its URL was received.
    pub(crate) received_at: tokio::time::Instant,
    /// URL refreshes it had (bounded by `max_url_refreshes`).
    pub(crate) refreshes: u32,
    /// Download attempts it had before (a refresh does not reset them).
    pub(crate) attempts: u32,
    /// Its URL was just refreshed: use it, do not check its age.
    pub(crate) refreshed: bool,
    /// Refreshing failed for good: record this failure under a claim.
    pub(crate) fail_with: Option<String>,
}

/// Why one attempt failed, in the classification the retry table uses.
enum AttemptError {
    /// 403 on the media URL: refresh it.
    Forbidden(String),
    /// 429: wait this long.
    Throttled(Duration, String),
    /// 5xx, transport, body broken mid-stream, store hiccup: back off.
    Temporary(String),
    /// MD5 or length mismatch; what was written is gone.
    Integrity(String),
    /// Someone else stored it meanwhile.
    AlreadyExists,
    /// Any other 4xx, refused URL, bad data: no retry.
    Permanent(String),
}

struct Shared {
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
}

/// Archives every recording `source` yields into `sink`, with `cfg.workers` at a time,
/// and returns the counts. Never panics on bad data; failures are counted and reported.
///
/// `source` yields [`Discovered`] items ([`GenesysClient::discover`]) or plain
/// [`DiscoveredRecording`]s; pending items and undiscoverable parts are counted and reported,
/// never dropped.
pub async fn archive<S, T>(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    source: S,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
) -> Summary
where
    S: Stream<Item = genesys_media::Result<T>> + Send,
    T: Into<Discovered>,
{
    let source = source.map(|r| r.map(|t| Pulled::Found(t.into())));
    archive_pulled(client, sink, source, cfg, events).await
}

/// What the pipeline pulls from its source.
pub(crate) enum Pulled {
    /// A discovery item.
    Found(Discovered),
    /// A recording named by a ledger row (a retry): it always goes through a claim, so the
    /// ledger records its outcome and charges the attempt, also when the source gave no media
    /// for it; `fail_with` records a failure found before any download.
    Retry {
        rec: DiscoveredRecording,
        fail_with: Option<String>,
    },
}

/// [`archive`] of [`Pulled`] items.
pub(crate) async fn archive_pulled<S>(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    source: S,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
) -> Summary
where
    S: Stream<Item = genesys_media::Result<Pulled>> + Send,
{
    let workers = cfg.workers.max(1);
    let refresh_window = cfg.url_refresh_window;
    let shared = Arc::new(Shared {
        client,
        sink,
        cfg,
        events,
    });
    let permits = Arc::new(Semaphore::new(workers));
    let mut tasks = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, DiscoveredRecording> = HashMap::new();
    let mut summary = Summary::default();
    let bytes = Arc::new(AtomicU64::new(0));
    let shutdown = shared.cfg.shutdown.clone();
    let mut source = std::pin::pin!(source);
    let mut source_done = false;
    // Recordings ready for a worker: refreshed ones first (their new URLs are used at once).
    let mut ready: VecDeque<Ready> = VecDeque::new();
    let mut refresh = RefreshQueue::new(refresh_window);
    // The refresh in progress, and the recordings it carries (so none is lost if it fails).
    let mut refreshing: Option<(tokio::task::JoinHandle<Vec<Refreshed>>, Vec<Waiting>)> = None;
    loop {
        // Start what can start.
        while !ready.is_empty() {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let Some(item) = ready.pop_front() else { break };
            // A URL discovered long ago is refreshed (with others) rather than tried.
            if !item.refreshed
                && item.received_at.elapsed() > shared.cfg.url_max_age
                && matches!(item.rec.media, MediaAvailability::Url(_))
            {
                refresh.push(Waiting {
                    rec: item.rec,
                    refreshes: item.refreshes,
                    attempts: item.attempts,
                });
                continue;
            }
            let shared = shared.clone();
            let bytes = bytes.clone();
            let rec = item.rec.clone();
            let handle = tasks.spawn(async move {
                let _permit = permit;
                let outcome = process_claimed(&shared, &item).await;
                if let Outcome::Archived { size } = &outcome {
                    bytes.fetch_add(*size, Ordering::Relaxed);
                }
                (item.rec, outcome)
            });
            in_flight.insert(handle.id(), rec);
        }
        let idle = source_done && ready.is_empty() && tasks.is_empty();
        if refreshing.is_none() && refresh.due(idle) {
            let batch = refresh.take();
            refreshing = Some((
                tokio::spawn(crate::refresh::refresh(
                    shared.client.clone(),
                    batch.clone(),
                )),
                batch,
            ));
        }
        if idle && refresh.is_empty() && refreshing.is_none() {
            break;
        }
        let can_pull = !source_done && ready.is_empty() && permits.available_permits() > 0;
        let refresh_at = refresh
            .deadline()
            .filter(|_| refreshing.is_none())
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            done = async { (&mut refreshing.as_mut().expect("guarded").0).await }, if refreshing.is_some() => {
                let (_, batch) = refreshing.take().expect("guarded");
                // A refresh task that panicked refreshed nothing: its recordings are retried
                // like after a failed request, never dropped.
                let results = done.unwrap_or_else(|e| {
                    let why = format!("the URL refresh stopped: {e}");
                    batch
                        .into_iter()
                        .map(|w| (w, Err((ErrorClass::Temporary, why.clone()))))
                        .collect()
                });
                for (w, result) in results {
                    match result {
                        Ok(media) => ready.push_front(Ready {
                            rec: DiscoveredRecording { media, ..w.rec },
                            received_at: tokio::time::Instant::now(),
                            refreshes: w.refreshes,
                            attempts: w.attempts,
                            refreshed: true,
                            fail_with: None,
                        }),
                        // Failed through a worker, so the ledger records it under a claim.
                        Err((class, m)) if class == ErrorClass::Permanent
                            || w.refreshes >= shared.cfg.max_url_refreshes =>
                        {
                            ready.push_front(Ready {
                                rec: w.rec,
                                received_at: tokio::time::Instant::now(),
                                refreshes: w.refreshes,
                                attempts: w.attempts,
                                refreshed: true,
                                fail_with: Some(format!("refreshing the media URL failed: {m}")),
                            });
                        }
                        Err((_, m)) => {
                            tracing::debug!(recording_id = %w.rec.ledger_id(), error = %m, "URL refresh failed; will retry");
                            refresh.push(Waiting { refreshes: w.refreshes + 1, ..w });
                        }
                    }
                }
            }
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                if let Some(done) = done
                    && let Some(w) = tally(&mut summary, &mut in_flight, done)
                {
                    refresh.push(w);
                }
            }
            item = source.next(), if can_pull => {
                let Some(item) = item else {
                    source_done = true;
                    continue;
                };
                let item = match item {
                    Ok(r) => r,
                    Err(e) => {
                        summary.discovery_error_is_config = matches!(e, genesys_media::Error::Auth { .. })
                            || e.status() == Some(403)
                            || e.status() == Some(401);
                        summary.discovery_error = Some(e.to_string());
                        source_done = true;
                        continue;
                    }
                };
                let (mut rec, retry) = match item {
                    Pulled::Found(Discovered::Recording(r)) => (r, None),
                    Pulled::Found(other) => {
                        account_unlisted(&mut summary, &shared.events, other);
                        continue;
                    }
                    Pulled::Retry { rec, fail_with } => (rec, Some(fail_with)),
                };
                // Phone numbers are personal data: dropped on arrival unless asked for.
                if !shared.cfg.keep_phone_numbers
                    && (!rec.facts.ani.is_empty() || !rec.facts.dnis.is_empty())
                {
                    rec.facts = std::sync::Arc::new((*rec.facts).clone().without_personal_data());
                }
                summary.found += 1;
                shared.events.handle(&Event::Discovered {
                    recording_id: rec.ledger_id().into_owned(),
                });
                ready.push_back(Ready {
                    rec,
                    received_at: tokio::time::Instant::now(),
                    refreshes: 0,
                    attempts: 0,
                    // A retry's URL was just requested, and it goes through a claim.
                    refreshed: retry.is_some(),
                    fail_with: retry.flatten(),
                });
            }
            _ = tokio::time::sleep_until(refresh_at), if refresh.deadline().is_some() && refreshing.is_none() => {}
        }
    }
    // Stopped before the source ended: what it had not yielded yet was never seen, and no
    // count covers it (a poll or chunk cut here is not done).
    summary.source_incomplete = !source_done;
    // Shut down before they started: discovered (or refreshed) but never claimed, or their
    // claims were given back when they went for a fresh URL.
    summary.interrupted += (ready.len() + refresh.drain().len()) as u64;
    if let Some((r, batch)) = refreshing.take() {
        r.abort();
        summary.interrupted += batch.len() as u64;
    }
    if shutdown.is_cancelled() {
        let deadline = tokio::time::sleep(shared.cfg.drain_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                done = tasks.join_next_with_id() => match done {
                    Some(done) => {
                        if tally(&mut summary, &mut in_flight, done).is_some() {
                            summary.interrupted += 1;
                        }
                    }
                    None => break,
                },
                _ = &mut deadline => {
                    tracing::warn!(in_flight = tasks.len(), "drain deadline reached; aborting in-flight uploads");
                    tasks.abort_all();
                    break;
                }
            }
        }
    }
    while let Some(done) = tasks.join_next_with_id().await {
        // Shutting down: one that went for a fresh URL is not started again.
        if tally(&mut summary, &mut in_flight, done).is_some() {
            summary.interrupted += 1;
        }
    }
    // Aborted at the deadline: give their claims back so the next run takes them at once.
    for (_, rec) in in_flight.drain() {
        summary.interrupted += 1;
        if let Some(l) = &shared.cfg.ledger
            && let Err(e) = l.release(&rec.ledger_id(), &shared.cfg.instance_id).await
        {
            tracing::warn!(recording_id = %rec.ledger_id(), error = %e, "could not release a claim");
        }
    }
    summary.bytes = bytes.load(Ordering::Relaxed);
    summary
}

/// Counts and reports a discovery item that is not a recording to archive.
fn account_unlisted(summary: &mut Summary, events: &Arc<dyn EventHandler>, item: Discovered) {
    let (conversation_id, recording_id, reason, kind) = match item {
        Discovered::Known { .. } => {
            summary.known_conversations += 1;
            return;
        }
        Discovered::Recording(_) => unreachable!("recordings are archived, not accounted here"),
        Discovered::Pending(p) => {
            summary.pending += 1;
            match p.waiting {
                Some(conversation) => summary.waiting.push(*conversation),
                None => {
                    summary.pending_since = summary.pending_since.into_iter().chain(p.since).min()
                }
            }
            (
                p.conversation_id,
                p.recording_id.unwrap_or_default(),
                p.reason,
                ReportKind::Pending,
            )
        }
        Discovered::NotDiscoverable(span) => {
            summary.not_discoverable += 1;
            let t = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            (
                String::new(),
                String::new(),
                format!(
                    "{} to {} could not be listed: {}",
                    t(span.start),
                    t(span.end),
                    span.reason
                ),
                ReportKind::NotDiscoverable,
            )
        }
        Discovered::Unresolved {
            conversation_id,
            reason,
        } => {
            summary.failed += 1;
            (conversation_id, String::new(), reason, ReportKind::Failed)
        }
    };
    events.handle(&Event::NotArchivable {
        conversation_id: conversation_id.clone(),
        recording_id: recording_id.clone(),
        reason: reason.clone(),
        pending: kind == ReportKind::Pending,
    });
    summary.failures.push(FailureReport {
        conversation_id,
        recording_id,
        reason,
        unavailable: false,
        kind,
    });
}

/// Counts a finished worker; a recording that went for a fresh URL comes back to be queued.
fn tally(
    summary: &mut Summary,
    in_flight: &mut HashMap<tokio::task::Id, DiscoveredRecording>,
    done: Result<(tokio::task::Id, (DiscoveredRecording, Outcome)), tokio::task::JoinError>,
) -> Option<Waiting> {
    let (rec, outcome) = match done {
        Ok((id, v)) => {
            in_flight.remove(&id);
            v
        }
        // Aborted at the drain deadline: left in `in_flight`, counted and released there.
        Err(e) if e.is_cancelled() => return None,
        Err(e) => {
            let rec = in_flight.remove(&e.id());
            summary.failed += 1;
            // Its claim may hold until its lease expires, with no outcome written.
            summary.unrecorded += 1;
            summary.failures.push(FailureReport {
                conversation_id: rec
                    .as_ref()
                    .map(|r| r.conversation_id.clone())
                    .unwrap_or_default(),
                recording_id: rec.map(|r| r.ledger_id().into_owned()).unwrap_or_default(),
                reason: format!("worker task failed: {e}"),
                unavailable: false,
                kind: ReportKind::Failed,
            });
            return None;
        }
    };
    let mut report = |reason: String, unavailable: bool| {
        summary.failures.push(FailureReport {
            conversation_id: rec.conversation_id.clone(),
            recording_id: rec.ledger_id().into_owned(),
            reason,
            unavailable,
            kind: if unavailable {
                ReportKind::Unavailable
            } else {
                ReportKind::Failed
            },
        })
    };
    match outcome {
        Outcome::Archived { .. } => summary.archived += 1,
        Outcome::Skipped => summary.skipped += 1,
        Outcome::Busy => {
            // Pending, not done: a poll holds its checkpoint at it, a chunk keeps it.
            summary.leased_elsewhere += 1;
            summary.pending_since = summary
                .pending_since
                .into_iter()
                .chain(rec.start_time)
                .min();
            summary.failures.push(FailureReport {
                conversation_id: rec.conversation_id.clone(),
                recording_id: rec.ledger_id().into_owned(),
                reason: "another instance holds its lease; archived once that lease ends".into(),
                unavailable: false,
                kind: ReportKind::LeasedElsewhere,
            });
        }
        Outcome::Interrupted => summary.interrupted += 1,
        Outcome::Unrecorded(reason) => {
            report(format!("{reason} (no ledger row: read again)"), false);
            summary.failed += 1;
            summary.unrecorded += 1;
        }
        Outcome::Unavailable(reason) => {
            report(reason, true);
            summary.unavailable += 1;
        }
        Outcome::Quarantined(reason) => {
            report(format!("in quarantine: {reason}"), false);
            summary.quarantined += 1;
        }
        Outcome::Failed(reason, _, _) => {
            report(reason, false);
            summary.failed += 1;
        }
        Outcome::NeedsUrl {
            refreshes,
            attempts,
        } => {
            return Some(Waiting {
                rec,
                refreshes,
                attempts,
            });
        }
    }
    None
}

/// The tags every object carries.
pub fn tags_for(rec: &DiscoveredRecording) -> BTreeMap<String, String> {
    let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    [
        ("conversation_id", rec.conversation_id.clone()),
        ("recording_id", rec.recording_id.clone()),
        ("start_time", t(rec.start_time)),
        ("end_time", t(rec.end_time)),
        ("media_type", rec.media_type.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Claims the recording in the ledger (when there is one), keeps the lease alive while it is
/// processed, and writes the outcome.
async fn process_claimed(sh: &Shared, item: &Ready) -> Outcome {
    let rec = &item.rec;
    let ledger_id = rec.ledger_id();
    let rid: &str = &ledger_id;
    let key = match sh.cfg.key_template.render(rec, None) {
        Ok(k) => k,
        // Nothing claimed: the ledger has no row to retry it from.
        Err(e) => return unrecorded(sh, rid, format!("cannot build its key: {e}")),
    };
    // Unavailable at discovery: reported, nothing claimed. (A refreshed recording was claimed
    // before: it goes through the claim, so the ledger records the outcome.)
    if !item.refreshed
        && let MediaAvailability::Unavailable(reason) = &rec.media
    {
        sh.events.handle(&Event::Unavailable {
            recording_id: rid.to_string(),
            reason: reason.clone(),
        });
        return Outcome::Unavailable(reason.clone());
    }
    let Some(ledger) = &sh.cfg.ledger else {
        if let Some(reason) = &item.fail_with {
            return fail(sh, rid, reason.clone(), false, item.attempts.max(1));
        }
        return process(sh, item, &key, false).await;
    };
    let owner = sh.cfg.instance_id.as_str();
    let resumed = match ledger.claim(rec, &key, owner, sh.cfg.lease).await {
        Ok(Claim::Claimed) => false,
        Ok(Claim::Resumed) => true,
        Ok(Claim::Archived { key }) => {
            sh.events.handle(&Event::Skipped {
                recording_id: rid.to_string(),
                key,
            });
            return Outcome::Skipped;
        }
        Ok(Claim::Quarantined { reason }) => return Outcome::Quarantined(reason),
        Ok(Claim::Busy { owner }) => {
            tracing::debug!(recording_id = rid, owner, "leased by another instance");
            return Outcome::Busy;
        }
        Err(e) => return unrecorded(sh, rid, format!("cannot claim it in the ledger: {e}")),
    };
    // Renews the lease while the work runs; ends when the lease is lost to another instance.
    let renew = async {
        let every = (sh.cfg.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match ledger.renew(rid, owner, sh.cfg.lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(recording_id = rid, error = %e, "could not renew the lease")
                }
            }
        }
    };
    let work = async {
        match &item.fail_with {
            // Charged as an attempt (also when none was made), so retries of it are bounded.
            Some(reason) => fail(sh, rid, reason.clone(), false, item.attempts.max(1)),
            None => process(sh, item, &key, resumed).await,
        }
    };
    let outcome = tokio::select! {
        o = work => o,
        () = renew => {
            // Another instance owns the recording now: stop (the in-flight transfer is
            // dropped) and write nothing; the new owner writes over whatever we left.
            tracing::warn!(recording_id = rid, "lease lost to another instance; stopped work on it");
            return Outcome::Busy;
        }
    };
    let written = match &outcome {
        Outcome::Archived { .. } => Ok(()), // written by `process` before reporting
        Outcome::Skipped => Ok(()),
        Outcome::Failed(reason, integrity, attempts) => {
            let r = ledger
                .failed(rid, owner, reason, *integrity, *attempts)
                .await;
            if *integrity && r.is_ok() {
                sh.events.handle(&Event::Quarantined {
                    recording_id: rid.to_string(),
                    reason: reason.clone(),
                });
            }
            r
        }
        // Counted as an attempt, so the poll loop's retries of it are bounded.
        Outcome::Unavailable(reason) => ledger.failed(rid, owner, reason, false, 1).await,
        Outcome::Interrupted
        | Outcome::Busy
        | Outcome::Quarantined(_)
        | Outcome::Unrecorded(_)
        | Outcome::NeedsUrl { .. } => ledger.release(rid, owner).await,
    };
    match written {
        Ok(()) => outcome,
        // Fenced: another instance took the recording over; its outcome stands.
        Err(e) if e.is_lease_lost() => {
            tracing::warn!(recording_id = rid, error = %e, "lease lost to another instance");
            Outcome::Busy
        }
        Err(e) => {
            tracing::warn!(recording_id = rid, error = %e, "could not record the outcome in the ledger; its window is read again");
            match outcome {
                // Nothing in the ledger says it failed: the poll that found it is not done.
                Outcome::Failed(reason, ..) | Outcome::Unavailable(reason) => Outcome::Unrecorded(
                    format!("{reason}; and the ledger could not record it: {e}"),
                ),
                other => other,
            }
        }
    }
}

/// Records an object that is already in the store as archived (after [`check_existing`]),
/// and reports it skipped.
async fn adopt_existing(
    sh: &Shared,
    rec: &DiscoveredRecording,
    key: &str,
    meta: sink::ObjectMeta,
    md5: Option<String>,
) -> Outcome {
    if let Some(l) = &sh.cfg.ledger {
        let obj = AdoptedObject {
            recording_id: rec.ledger_id().into_owned(),
            conversation_id: rec.conversation_id.clone(),
            key: key.to_string(),
            size: Some(meta.size),
            md5,
            media_type: Some(rec.media_type.clone()),
            start_time: None,
            end_time: None,
        };
        if let Err(e) = l.adopt(obj).await {
            tracing::warn!(recording_id = %rec.ledger_id(), error = %e, "could not record an existing object in the ledger");
        }
    }
    sh.events.handle(&Event::Skipped {
        recording_id: rec.ledger_id().into_owned(),
        key: key.to_string(),
    });
    Outcome::Skipped
}

/// Downloads and stores one recording with the retry table. `resumed`: an earlier attempt was
/// cut short, so whatever is under the key is not trusted and is written over.
async fn process(sh: &Shared, item: &Ready, key: &str, resumed: bool) -> Outcome {
    let rec = &item.rec;
    let url_received = item.received_at;
    let rid = rec.ledger_id().into_owned();
    let key = key.to_string();
    let media = &rec.media;
    // Create-only writes guard against another writer. Once one of our own attempts may have
    // reached the store (or an earlier run's did: `resumed`, which includes a failed earlier
    // attempt), an object under the key may be our own partial or unverified write, so later
    // attempts write over it and verify.
    let mut overwrite = resumed;
    // Where the store refuses a create-only write itself (S3 with a conditional PUT it was
    // seen to honour), the look before the upload is left out: the first attempt's "already
    // exists" is what the HEAD would have found, judged the same way. One round trip per new
    // object. (After a lost ledger, run `ledger rebuild` first: otherwise each object that
    // exists is downloaded before the store says so.)
    let mut found_by_write = sh.cfg.skip_existing && !resumed && !sh.sink.look_before_create();
    if sh.cfg.skip_existing && !resumed && !found_by_write {
        match sh.sink.head(&key).await {
            Ok(Some(meta)) => match check_existing(rec, &meta, Proof::NoContradiction) {
                Ok(md5) => return adopt_existing(sh, rec, &key, meta, md5).await,
                Err(why) => {
                    tracing::warn!(recording_id = %rid, key, why, "an object under its key is not this recording's as far as can be told; writing it over");
                    overwrite = true;
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(key, error = %e, "HEAD before upload failed; uploading with create-only")
            }
        }
    }
    let policy = sh.cfg.retry;
    let mut waited = Duration::ZERO;
    let mut attempt = item.attempts;
    let mut refreshes = item.refreshes;
    let mut integrity_failures = 0u32;
    loop {
        attempt += 1;
        if attempt > item.attempts + 1 {
            // Only the first write stands in for the look before it.
            found_by_write = false;
        }
        // Before writing again, make sure the recording is still ours: another instance may
        // have taken it over (and stored it) while this one was failing. Renewal in the
        // background notices too, but only every lease/3.
        if attempt > 1
            && let Some(l) = &sh.cfg.ledger
            && let Ok(false) = l.renew(&rid, &sh.cfg.instance_id, sh.cfg.lease).await
        {
            tracing::warn!(recording_id = %rid, "lease lost to another instance; not retrying");
            return Outcome::Busy;
        }
        // A retry after a long wait: an old URL is refreshed (with others) first, as long
        // as the refresh budget lasts; then it is tried as it is.
        if attempt > 1
            && url_received.elapsed() > sh.cfg.url_max_age
            && refreshes < sh.cfg.max_url_refreshes
        {
            return Outcome::NeedsUrl {
                refreshes: refreshes + 1,
                attempts: attempt - 1,
            };
        }
        let url = match &media {
            MediaAvailability::Url(u) => u.clone(),
            MediaAvailability::Unavailable(reason) => {
                sh.events.handle(&Event::Unavailable {
                    recording_id: rid.clone(),
                    reason: reason.clone(),
                });
                return Outcome::Unavailable(reason.clone());
            }
        };
        if attempt > 1 && sh.cfg.shutdown.is_cancelled() {
            return Outcome::Interrupted;
        }
        sh.events.handle(&Event::Started {
            recording_id: rid.clone(),
            key: key.clone(),
            attempt,
        });
        let result = match tokio::time::timeout(
            sh.cfg.attempt_timeout,
            attempt_once(sh, rec, &key, &url, sh.cfg.create_only && !overwrite),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(AttemptError::Temporary(format!(
                "attempt timed out after {:?}",
                sh.cfg.attempt_timeout
            ))),
        };
        let (why, reason) = match result {
            Ok((written_key, size, md5, store_verified, sha256)) => {
                // The key the object was written under (the response's content type may
                // have decided its extension): the ledger, manifest and verify use it.
                let key = written_key;
                if let Some(l) = &sh.cfg.ledger
                    && let Err(e) = l
                        .archived_object(
                            &rid,
                            &sh.cfg.instance_id,
                            &crate::StoredObject {
                                key: key.clone(),
                                size,
                                md5: md5.to_hex(),
                                sha256: sha256.map(hex::encode),
                            },
                            attempt,
                        )
                        .await
                {
                    if e.is_lease_lost() {
                        tracing::warn!(recording_id = %rid, error = %e, "stored, but another instance owns the recording now");
                        return Outcome::Busy;
                    }
                    return fail(
                        sh,
                        &rid,
                        format!("stored and verified, but the ledger could not record it: {e}"),
                        false,
                        attempt,
                    );
                }
                sh.events.handle(&Event::Archived {
                    recording_id: rid,
                    key,
                    size,
                    md5: md5.to_hex(),
                    store_verified,
                });
                return Outcome::Archived { size };
            }
            Err(AttemptError::AlreadyExists) => {
                // Someone wrote the key between our HEAD and our create-only write: adopt it
                // only with proof that it holds this recording's bytes. Without a HEAD before
                // (`found_by_write`), the first refusal is what the HEAD would have found.
                let proof = if std::mem::take(&mut found_by_write) {
                    Proof::NoContradiction
                } else {
                    Proof::Positive
                };
                match sh.sink.head(&key).await {
                    Ok(Some(meta)) => match check_existing(rec, &meta, proof) {
                        Ok(md5) => return adopt_existing(sh, rec, &key, meta, md5).await,
                        Err(why) => (
                            Wait::Immediately,
                            format!(
                                "an object appeared under its key without proof that it is this recording ({why}); writing it over"
                            ),
                        ),
                    },
                    Ok(None) => (
                        Wait::Immediately,
                        "an object appeared under its key and went again".into(),
                    ),
                    Err(e) => (
                        Wait::Backoff,
                        format!("reading the object that appeared under its key: {e}"),
                    ),
                }
            }
            Err(AttemptError::Permanent(m)) => return fail(sh, &rid, m, false, attempt),
            Err(AttemptError::Integrity(m)) => {
                integrity_failures += 1;
                if integrity_failures > sh.cfg.integrity_retries {
                    return fail(
                        sh,
                        &rid,
                        format!("integrity check failed {integrity_failures} times: {m}"),
                        true,
                        attempt,
                    );
                }
                (Wait::Immediately, m)
            }
            Err(AttemptError::Forbidden(m)) => {
                refreshes += 1;
                if refreshes > sh.cfg.max_url_refreshes {
                    return fail(
                        sh,
                        &rid,
                        format!("media URL refused {refreshes} times even after refreshing: {m}"),
                        false,
                        attempt,
                    );
                }
                // Not refreshed here (one batch job for one URL): the recording waits for a
                // fresh URL with others while this worker takes the next one.
                tracing::debug!(recording_id = %rid, error = %m, "media URL refused; queued for a refresh");
                sh.events.handle(&Event::Retrying {
                    recording_id: rid.clone(),
                    attempt,
                    reason: format!("{m}; retried with a fresh URL"),
                    wait: Duration::ZERO,
                });
                return Outcome::NeedsUrl {
                    refreshes,
                    attempts: attempt,
                };
            }
            Err(AttemptError::Throttled(d, m)) => (Wait::RetryAfter(Some(d)), m),
            Err(AttemptError::Temporary(m)) => (Wait::Backoff, m),
        };
        overwrite = true;
        // The budget counts the time spent waiting between attempts, not the time spent
        // transferring: a long upload that fails once is retried.
        let Some(wait) = policy.next_wait(attempt, waited, why) else {
            let asked = match why {
                Wait::RetryAfter(Some(d)) => {
                    format!("the source asked to wait {d:?}, more than the retry budget allows: ")
                }
                _ => String::new(),
            };
            return fail(
                sh,
                &rid,
                format!("gave up after {attempt} attempts: {asked}{reason}"),
                false,
                attempt,
            );
        };
        sh.events.handle(&Event::Retrying {
            recording_id: rid.clone(),
            attempt,
            reason,
            wait,
        });
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = sh.cfg.shutdown.cancelled() => return Outcome::Interrupted,
            }
            waited += wait;
        }
    }
}

/// A failure the ledger has no row for (when there is a ledger).
fn unrecorded(sh: &Shared, rid: &str, reason: String) -> Outcome {
    match fail(sh, rid, reason, false, 0) {
        Outcome::Failed(reason, ..) if sh.cfg.ledger.is_some() => Outcome::Unrecorded(reason),
        other => other,
    }
}

fn fail(sh: &Shared, rid: &str, reason: String, integrity: bool, attempts: u32) -> Outcome {
    sh.events.handle(&Event::Failed {
        recording_id: rid.to_string(),
        reason: reason.clone(),
        integrity,
    });
    Outcome::Failed(reason, integrity, attempts)
}

async fn attempt_once(
    sh: &Shared,
    rec: &DiscoveredRecording,
    key: &str,
    url: &MediaUrl,
    create_only: bool,
) -> Result<(String, u64, Md5Digest, bool, Option<[u8; 32]>), AttemptError> {
    let resp = match sh.client.open_media(url).await {
        Ok(r) => r,
        Err(e) => {
            let m = e.to_string();
            return Err(match e.status() {
                Some(403) => AttemptError::Forbidden(m),
                Some(429) => {
                    let d = match &e {
                        genesys_media::Error::Status { retry_after, .. } => {
                            retry_after.unwrap_or(Duration::from_secs(1))
                        }
                        _ => Duration::from_secs(1),
                    };
                    AttemptError::Throttled(d, m)
                }
                Some(s) if s >= 500 => AttemptError::Temporary(m),
                Some(_) => AttemptError::Permanent(m),
                None if e.class() == ErrorClass::Temporary => AttemptError::Temporary(m),
                None => AttemptError::Permanent(m),
            });
        }
    };
    if let (Some(expected), Some(announced)) = (rec.expected_size, resp.content_length)
        && expected != announced
    {
        return Err(AttemptError::Integrity(format!(
            "the source announced {expected} bytes but the media response has Content-Length {announced}"
        )));
    }
    let mut expected_md5 = rec.expected_md5.as_deref().and_then(Md5Digest::from_hex);
    if sh.cfg.verify_source_etag
        && let Some(etag_md5) = resp.etag.as_deref().and_then(Md5Digest::from_hex)
    {
        if expected_md5.is_some_and(|m| m != etag_md5) {
            return Err(AttemptError::Integrity(
                "the source's MD5 and its media ETag disagree".into(),
            ));
        }
        expected_md5 = Some(etag_md5);
    }
    let content_type = rec.content_type.clone().or(resp.content_type.clone());
    let key_ct = sh
        .cfg
        .key_template
        .render(rec, content_type.as_deref())
        .map_err(AttemptError::Permanent)?;
    let key = if key_ct != key && rec.content_type.is_none() {
        key_ct
    } else {
        key.to_string()
    };
    let mut metadata: BTreeMap<String, String> = tags_for(rec)
        .into_iter()
        .map(|(k, v)| (k.replace('_', "-"), v))
        .collect();
    metadata.insert("source".into(), "genesys-cloud".into());
    if let Some(f) = &rec.file {
        metadata.insert("file".into(), f.clone());
    }
    if let Some(m) = expected_md5 {
        metadata.insert("md5".into(), m.to_hex());
    }
    metadata.extend(crate::facts::facts_metadata(&rec.facts));
    let opts = PutOptions {
        content_length: resp.content_length.or(rec.expected_size),
        content_type,
        metadata,
        tags: tags_for(rec),
        expected_md5,
        create_only,
        sha256: sh.cfg.sha256,
        upload_log: sh.cfg.ledger.as_ref().map(|l| {
            sink::UploadLogHandle(std::sync::Arc::new(crate::LedgerUploadLog::new(
                l.clone(),
                &rec.recording_id,
                &sh.cfg.instance_id,
            )))
        }),
    };
    let body = resp.body.map_err(|e| Box::new(e) as BoxError).boxed();
    match sh.sink.put(&key, body, opts).await {
        Ok(r) => Ok((key, r.size, r.md5, r.store_verified, r.sha256)),
        Err(e) => {
            let m = e.to_string();
            Err(match e.kind {
                SinkErrorKind::AlreadyExists => AttemptError::AlreadyExists,
                SinkErrorKind::Verification => AttemptError::Integrity(m),
                SinkErrorKind::Source | SinkErrorKind::StoreTemporary | SinkErrorKind::Conflict => {
                    AttemptError::Temporary(m)
                }
                SinkErrorKind::StorePermanent | SinkErrorKind::Invalid => {
                    AttemptError::Permanent(m)
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_another_instance_holds_or_a_cut_source_is_never_clean() {
        let leased = Summary {
            found: 1,
            leased_elsewhere: 1,
            ..Summary::default()
        };
        let r = leased.reconcile();
        assert!(!r.clean, "{r:?}");
        assert_eq!(r.unaccounted, 0);
        let cut = Summary {
            source_incomplete: true,
            ..Summary::default()
        };
        assert!(!cut.success());
        assert!(cut.line().contains("interrupted before discovery finished"));
        let mut total = Summary::default();
        total.absorb(cut);
        assert!(total.source_incomplete, "summing polls keeps it");
        assert!(Summary::default().success());
    }
}
