//! A one-shot backfill shared by several instances on one ledger ([`archive_shared`]): the
//! interval is listed once, by whichever instance takes its listing lease, into chunks of up
//! to 100 conversations; every instance (the lister too, once it has listed) claims chunks,
//! resolves each with one batch job and archives its recordings, as continuous mode's
//! scale-out does. An instance started later on the same interval joins the chunks; N
//! instances spend about one instance's API calls.
//!
//! A *run* of the backfill is a generation: instances that start while another works it (is
//! present: each holds a lease of its own while it works the backfill, and one decides at a
//! time whether to join or begin) join its generation; one that starts when nobody does begins
//! the next, which lists the interval again (a rerun: what the source added since, conversations
//! an earlier run reported, are found; settled ones cost no batch job, ones still waiting in the
//! backfill's chunks are left to them).
//!
//! No silent gap: a generation counts as listed only once a listing completed (a mark written
//! before the listing lease is given back); a listing cut short is taken again by the next
//! instance. An instance ends when its generation is listed and no chunk is left that it could
//! claim now or that another live instance holds (a chunk whose instance died is taken over
//! when its lease expires). Chunks left waiting out a retry's backoff (recordings not ready, a
//! batch job that failed) are reported in [`Summary::shared_backlog`]; what another instance
//! reported not archived (failed recordings, conversations in progress, unlistable parts) is
//! written to the ledger before its listing or chunk is done, and every instance ending after
//! it reports it in [`Summary::shared_problems`]. Neither is clean: an instance exits 0 only
//! when the whole backfill is archived or accounted for as far as the ledger shows.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_media::{DiscoveryQuery, GenesysClient};
use sink::ObjectSink;

use crate::config::ArchiverConfig;
use crate::events::EventHandler;
use crate::ledger::{Ledger, LedgerError};
use crate::poll::{ContinuousError, PollSettings, RECHECKS_PER_POLL};
use crate::scale_out::{list_holding_lease, work_chunks};
use crate::summary::Summary;

/// How a one-shot backfill is shared between instances ([`archive_shared`]).
#[derive(Debug, Clone)]
pub struct SharedBackfill {
    /// The backfill's name in the ledger: instances given the same name (and interval) share
    /// its listing and chunks. [`SharedBackfill::for_interval`] names it after the interval.
    pub name: String,
    /// How often an instance with nothing to claim looks again (for chunks the lister
    /// writes, and whether the chunks other instances hold are done): a few ledger queries,
    /// no API call. Short, so that instances joining a listing start soon after its first
    /// chunk and the last one ends soon after the last chunk; a backfill's instances are
    /// idle only at its start and end.
    pub check_every: Duration,
    /// The base of a retried chunk's backoff (a chunk whose batch job failed, or whose
    /// recordings were not ready): each retry costs API calls.
    pub retry_after: Duration,
}

impl SharedBackfill {
    /// The backfill of `[from, to)` with the media types `media`: every instance started on
    /// the same interval and media types shares it.
    pub fn for_interval(from: DateTime<Utc>, to: DateTime<Utc>, media: &[String]) -> Self {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut name = format!("backfill {}..{}", t(from), t(to));
        if !media.is_empty() {
            let mut m: Vec<String> = media.iter().map(|t| t.to_ascii_lowercase()).collect();
            m.sort();
            m.dedup();
            name.push_str(&format!(" {}", m.join(",")));
        }
        Self {
            name,
            check_every: Duration::from_millis(250),
            retry_after: Duration::from_secs(5),
        }
    }
}

/// The generation mark: which run of the backfill, and whether its listing completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    generation: u64,
    listed: bool,
}

impl Mark {
    /// Whether the listing of `generation` completed (a later generation starts only after
    /// that).
    fn listed_for(self, generation: u64) -> bool {
        self.generation > generation || (self.generation == generation && self.listed)
    }
}

async fn read_mark(ledger: &Ledger, key: &str) -> Result<Mark, LedgerError> {
    let value = ledger.checkpoint(key).await?.unwrap_or_default();
    let mut words = value.split_whitespace();
    let generation = words.next().and_then(|g| g.parse().ok()).unwrap_or(0);
    Ok(Mark {
        generation,
        listed: words.next() == Some("listed"),
    })
}

async fn write_mark(ledger: &Ledger, key: &str, mark: Mark) -> Result<(), LedgerError> {
    let state = if mark.listed { "listed" } else { "listing" };
    ledger
        .set_checkpoint(key, &format!("{} {state}", mark.generation))
        .await
}

/// Archives `query`'s interval together with every other instance running the same
/// [`SharedBackfill`] on this ledger (see the module docs). Returns what this instance did
/// (also when it stopped on an error: the error comes beside it, the counts are kept);
/// [`Summary::shared_backlog`] and [`Summary::shared_problems`] say what the backfill still
/// lacks. Needs a ledger shared by the instances (PostgreSQL; SQLite allows one process at a
/// time, so there it is one instance working in chunks).
pub async fn archive_shared(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    query: DiscoveryQuery,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
    shared: &SharedBackfill,
) -> (Summary, Result<(), ContinuousError>) {
    let mut total = Summary::default();
    let outcome = run(&client, &sink, query, &cfg, &events, shared, &mut total).await;
    // Gone from the backfill: a new start may begin its next run (a presence left by a crash
    // ends with its lease).
    if let Some(l) = &cfg.ledger {
        let me = &cfg.instance_id;
        let _ = l.end_listing(&presence_key(shared, me), me, false).await;
        let _ = l
            .end_listing(&format!("{}.start", shared.name), me, false)
            .await;
    }
    (total, outcome)
}

/// The lease an instance holds while it works the backfill (renewed on each look at the
/// chunks): a new run begins only when no instance holds one.
fn presence_key(shared: &SharedBackfill, me: &str) -> String {
    format!("{}.worker.{me}", shared.name)
}

async fn run(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    query: DiscoveryQuery,
    cfg: &ArchiverConfig,
    events: &Arc<dyn EventHandler>,
    shared: &SharedBackfill,
    total: &mut Summary,
) -> Result<(), ContinuousError> {
    let ledger = cfg.ledger.clone().ok_or(ContinuousError::NoLedger)?;
    let me = cfg.instance_id.clone();
    let mark_key = format!("{}.run", shared.name);
    let media = query.media_types.clone();
    let make_query = move |from, to| {
        let mut q = DiscoveryQuery::interval(from, to);
        q.media_types = media.clone();
        q
    };
    let poll = PollSettings {
        start: query.start,
        interval: shared.retry_after,
        settle: Duration::ZERO,
        checkpoint: shared.name.clone(),
        ..PollSettings::default()
    };
    // Join the generation being worked, or begin the next when nobody works this backfill
    // (no other instance present, listing or holding a chunk). One instance decides at a
    // time (a short lease), and is present before it lets the next decide: of instances
    // started together, the first begins the run and the others join it.
    let presence = presence_key(shared, &me);
    let workers = format!("{}.worker.", shared.name);
    let start_key = format!("{}.start", shared.name);
    while !ledger
        .take_listing(&start_key, &me, Duration::from_secs(30), Duration::ZERO)
        .await?
    {
        if cfg.shutdown.is_cancelled() {
            total.source_incomplete = true;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mark = read_mark(&ledger, &mark_key).await?;
    let busy = ledger.others_holding(&workers, &me).await? > 0
        || ledger.listing_held(&shared.name).await?
        || ledger.chunk_backlog(&shared.name).await?.leased > 0;
    if mark.listed && !busy {
        write_mark(
            &ledger,
            &mark_key,
            Mark {
                generation: mark.generation + 1,
                listed: false,
            },
        )
        .await?;
    }
    let generation = read_mark(&ledger, &mark_key).await?.generation;
    ledger
        .take_listing(&presence, &me, cfg.lease, Duration::ZERO)
        .await?;
    ledger.end_listing(&start_key, &me, false).await?;
    let problems_key = format!("{}.problems.{generation}", shared.name);
    // This instance lists at most once: a listing that failed is left to the others (and
    // reported here), so instances that all fail end instead of listing forever.
    let mut tried_listing = false;
    loop {
        if cfg.shutdown.is_cancelled() {
            break;
        }
        ledger
            .take_listing(&presence, &me, cfg.lease, Duration::ZERO)
            .await?;
        let listed = read_mark(&ledger, &mark_key).await?.listed_for(generation);
        if !listed
            && !tried_listing
            && ledger
                .take_listing(&shared.name, &me, cfg.lease, Duration::ZERO)
                .await?
        {
            // Another instance may have completed the listing just before the lease was free.
            if read_mark(&ledger, &mark_key).await?.listed_for(generation) {
                ledger.end_listing(&shared.name, &me, false).await?;
            } else {
                tried_listing = true;
                let s = list(client, sink, &query, cfg, events, shared, &ledger).await?;
                // A listing stopped with recordings in flight is not complete either.
                let complete =
                    s.discovery_error.is_none() && !s.source_incomplete && s.interrupted == 0;
                let problems = listing_problems(&s);
                let config = s
                    .discovery_error_is_config
                    .then(|| s.discovery_error.clone().unwrap_or_default());
                // Counted before anything below can fail.
                total.absorb(s);
                if let Some(e) = config {
                    ledger.end_listing(&shared.name, &me, false).await?;
                    return Err(ContinuousError::Config(e));
                }
                // Only over this generation's own mark: a lister whose lease lapsed must not
                // write over a run begun since.
                if complete && read_mark(&ledger, &mark_key).await?.generation == generation {
                    if let Some(p) = problems {
                        ledger
                            .set_checkpoint(&problems_key, &format!("{me}: {p}"))
                            .await?;
                    }
                    // Before the lease is given back: nobody lists this generation again.
                    write_mark(
                        &ledger,
                        &mark_key,
                        Mark {
                            generation,
                            listed: true,
                        },
                    )
                    .await?;
                }
                ledger.end_listing(&shared.name, &me, complete).await?;
            }
        }
        let worked = work_chunks(
            client,
            sink,
            &make_query,
            cfg,
            &poll,
            events,
            Some(&problems_key),
        )
        .await?;
        total.absorb(worked);
        let listed = read_mark(&ledger, &mark_key).await?.listed_for(generation);
        let backlog = ledger.chunk_backlog(&shared.name).await?;
        // Nothing left for this instance once its generation is listed (or its own listing
        // failed, which it reports), no chunk is claimable now and no live instance holds
        // one: one that dies leaves its chunk to be taken over, so an instance waits while
        // any is held.
        if (listed || tried_listing)
            && backlog.leased == 0
            && backlog.due == 0
            && !ledger.listing_held(&shared.name).await?
        {
            total.shared_backlog = backlog.conversations;
            if backlog.chunks > 0 {
                tracing::warn!(
                    chunks = backlog.chunks,
                    conversations = backlog.conversations,
                    error = backlog.last_error.as_deref().unwrap_or("none"),
                    "chunks of the shared backfill wait for a retry; run it again to finish them"
                );
            }
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(shared.check_every) => {}
            () = cfg.shutdown.cancelled() => {}
        }
    }
    if !read_mark(&ledger, &mark_key).await?.listed_for(generation) {
        // Ended before the interval was listed: shut down, or this instance's listing failed
        // (its error is in the summary already).
        if cfg.shutdown.is_cancelled() {
            total.source_incomplete = true;
        } else if total.discovery_error.is_none() {
            total.discovery_error = Some("the interval was not listed completely".into());
        }
    } else if let Some(p) = ledger.checkpoint(&problems_key).await? {
        // Reported by this instance or another: the backfill is not complete.
        total.shared_problems = Some(p);
    }
    Ok(())
}

/// Lists the interval into the backfill's chunks (with the late window's due rechecks),
/// archiving what comes through (in progress, settled, unlistable: accounted for here).
async fn list(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    query: &DiscoveryQuery,
    cfg: &ArchiverConfig,
    events: &Arc<dyn EventHandler>,
    shared: &SharedBackfill,
    ledger: &Ledger,
) -> Result<Summary, ContinuousError> {
    let present = client.now();
    let late = cfg.late_at(present);
    let stats = late.stats.clone();
    let mut q = query.clone();
    q.waiting = ledger.due_rechecks(present, RECHECKS_PER_POLL).await?;
    let mut s = list_holding_lease(
        client,
        sink,
        q,
        ledger,
        &shared.name,
        late,
        cfg,
        events,
        Duration::ZERO,
    )
    .await;
    s.rechecked += stats.rechecked();
    s.late_files += stats.late_files();
    s.unrecorded += stats.unrecorded();
    Ok(s)
}

/// What a completed listing leaves not archived, for the other instances.
fn listing_problems(s: &Summary) -> Option<String> {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.pending, "pending (in progress or not uploaded)"),
        (
            s.not_discoverable,
            "part(s) of the interval not discoverable",
        ),
        (s.failed + s.quarantined, "failed"),
        (s.unrecorded, "failed without a ledger row"),
        (s.leased_elsewhere, "leased by another instance"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}
