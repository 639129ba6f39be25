//! A one-shot backfill shared by several instances on one ledger ([`archive_shared`]): the
//! interval is listed once, by whichever instance takes its listing lease, into chunks of up
//! to 100 conversations; every instance (the lister too, once it has listed) claims chunks,
//! resolves each with one batch job and archives its recordings, as continuous mode's
//! scale-out does. An instance started later on the same interval joins the chunks; N
//! instances spend about one instance's API calls.
//!
//! No silent gap: the interval counts as listed only once a listing completed (a checkpoint
//! written before the listing lease is given back); a listing cut short is taken again by
//! the next instance. An instance ends when the interval is listed and no chunk is left that
//! it could claim or that another live instance holds (a chunk whose instance died is taken
//! over when its lease expires). Chunks left waiting for a retry (recordings not ready, a
//! batch job that failed) are reported in [`Summary::shared_backlog`]: the run is not clean
//! until they are done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_media::{DiscoveryQuery, GenesysClient};
use sink::ObjectSink;

use crate::config::ArchiverConfig;
use crate::events::EventHandler;
use crate::pipeline::archive;
use crate::poll::{ContinuousError, PollSettings};
use crate::scale_out::{listing, renewing, work_chunks};
use crate::summary::Summary;

/// How a one-shot backfill is shared between instances ([`archive_shared`]).
#[derive(Debug, Clone)]
pub struct SharedBackfill {
    /// The backfill's name in the ledger: instances given the same name (and interval) share
    /// its listing and chunks. [`SharedBackfill::for_interval`] names it after the interval.
    pub name: String,
    /// How often an instance with nothing to claim looks again at chunks other instances
    /// hold, and the base of a retried chunk's backoff.
    pub check_every: Duration,
}

impl SharedBackfill {
    /// The backfill of `[from, to)` with the media types `media`: every instance started on
    /// the same interval and media types shares it.
    pub fn for_interval(from: DateTime<Utc>, to: DateTime<Utc>, media: &[String]) -> Self {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut name = format!("backfill {}..{}", t(from), t(to));
        if !media.is_empty() {
            let mut m = media.to_vec();
            m.sort();
            name.push_str(&format!(" {}", m.join(",")));
        }
        Self {
            name,
            check_every: Duration::from_secs(5),
        }
    }

    fn listed_name(&self) -> String {
        format!("{}.listed", self.name)
    }
}

/// Archives `query`'s interval together with every other instance running the same
/// [`SharedBackfill`] on this ledger (see the module docs). Returns what this instance did;
/// [`Summary::shared_backlog`] counts the conversations left waiting in the backfill's
/// chunks when it ended. Needs a ledger shared by the instances (PostgreSQL; SQLite allows
/// one process at a time, so there it is one instance working in chunks).
pub async fn archive_shared(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    query: DiscoveryQuery,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
    shared: &SharedBackfill,
) -> Result<Summary, ContinuousError> {
    let ledger = cfg.ledger.clone().ok_or(ContinuousError::NoLedger)?;
    let me = cfg.instance_id.clone();
    let listed_name = shared.listed_name();
    let media = query.media_types.clone();
    let make_query = move |from, to| {
        let mut q = DiscoveryQuery::interval(from, to);
        q.media_types = media.clone();
        q
    };
    let poll = PollSettings {
        start: query.start,
        interval: shared.check_every,
        settle: Duration::ZERO,
        checkpoint: shared.name.clone(),
        ..PollSettings::default()
    };
    // A backfill listed and finished before (every chunk done) is run again: listed again
    // (what the source added since is found; settled conversations cost no batch job).
    if is_listed(&ledger, &listed_name).await?
        && ledger.chunk_backlog(&shared.name).await?.chunks == 0
    {
        ledger.set_checkpoint(&listed_name, "").await?;
    }
    let mut total = Summary::default();
    // This instance lists at most once: a listing that failed is left to the others (and
    // reported here), so instances that all fail end instead of listing forever.
    let mut tried_listing = false;
    loop {
        if cfg.shutdown.is_cancelled() {
            break;
        }
        let listed = is_listed(&ledger, &listed_name).await?;
        if !listed
            && !tried_listing
            && ledger
                .take_listing(&shared.name, &me, cfg.lease, Duration::ZERO)
                .await?
        {
            tried_listing = true;
            let present = client.now();
            let late = cfg.late_at(present);
            let stats = late.stats.clone();
            let mut q = query.clone();
            // Rechecks that came due since the last run, chunked with the listing's own.
            q.waiting = ledger.due_rechecks(present, 1000).await?;
            let found = listing(&client, q, ledger.clone(), shared.name.clone(), late);
            let work = archive(
                client.clone(),
                sink.clone(),
                found,
                cfg.clone(),
                events.clone(),
            );
            let renew = || ledger.take_listing(&shared.name, &me, cfg.lease, Duration::ZERO);
            let mut s = renewing(cfg.lease, work, renew).await;
            let complete = s.discovery_error.is_none() && !s.source_incomplete;
            if complete {
                // Before the lease is given back: nobody lists the interval again.
                ledger
                    .set_checkpoint(
                        &listed_name,
                        &Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    )
                    .await?;
            }
            ledger.end_listing(&shared.name, &me, complete).await?;
            s.rechecked += stats.rechecked();
            s.late_files += stats.late_files();
            s.unrecorded += stats.unrecorded();
            if s.discovery_error_is_config {
                return Err(ContinuousError::Config(
                    s.discovery_error.unwrap_or_default(),
                ));
            }
            total.absorb(s);
        }
        total.absorb(work_chunks(&client, &sink, &make_query, &cfg, &poll, &events).await?);
        let listed = is_listed(&ledger, &listed_name).await?;
        let backlog = ledger.chunk_backlog(&shared.name).await?;
        // Nothing left for this instance once the interval is listed (or its own listing
        // failed, which it reports), nothing is claimable now (`work_chunks` just returned) and
        // no live instance holds a chunk: one that dies leaves its chunk to be taken over, so
        // an instance waits while any is held.
        if (listed || tried_listing) && backlog.leased == 0 {
            total.shared_backlog = backlog.conversations;
            if backlog.chunks > 0 {
                tracing::warn!(
                    chunks = backlog.chunks,
                    conversations = backlog.conversations,
                    error = backlog.last_error.as_deref().unwrap_or("none"),
                    "chunks of the shared backfill wait for a retry; a rerun works them"
                );
            }
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(shared.check_every) => {}
            () = cfg.shutdown.cancelled() => {}
        }
    }
    if !is_listed(&ledger, &listed_name).await? {
        // Ended before the interval was listed: shut down, or this instance's listing failed
        // (its error is in the summary already).
        if cfg.shutdown.is_cancelled() {
            total.source_incomplete = true;
        } else if total.discovery_error.is_none() {
            total.discovery_error = Some("the interval was not listed completely".into());
        }
    }
    Ok(total)
}

/// Whether the backfill's listing completed (an empty mark: cleared for a new run).
async fn is_listed(ledger: &crate::Ledger, name: &str) -> Result<bool, crate::LedgerError> {
    Ok(ledger
        .checkpoint(name)
        .await?
        .is_some_and(|v| !v.is_empty()))
}
