//! Several instances on one ledger without multiplying API calls ([`crate::ScaleOut`]): per poll one
//! instance holds the listing lease and lists the window (analytics pages only), writing
//! finished conversations into the ledger in chunks of up to 100; every instance claims
//! chunks with a lease, resolves each with one batch job (the next one while the current
//! one's recordings are archived), archives its recordings and finishes it. N instances spend
//! about one instance's calls and share the downloads and uploads.
//!
//! No silent gap: a chunk is durable in the ledger before the listing's checkpoint moves past
//! its conversations; a chunk whose instance stopped is taken over when its lease expires; a
//! chunk that could not be resolved, or whose conversations still have recordings in progress,
//! is kept (with its error) and tried again after a backoff; its conversations stay "queued",
//! so later listings neither drop nor duplicate them.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use genesys_media::models::AnalyticsConversation;
use genesys_media::{Discovered, DiscoveryQuery, GenesysClient, Listed};
use sink::ObjectSink;

use crate::config::ArchiverConfig;
use crate::events::EventHandler;
use crate::ledger::{Chunk, Ledger};
use crate::pipeline::archive;
use crate::poll::{ContinuousError, PollSettings, retry_backoff};
use crate::summary::Summary;
use tokio_util::sync::CancellationToken;

/// The least time between two listings of one window by any instance: most of the poll
/// interval, so instances whose polls interleave list about once per interval in all.
pub(crate) fn listing_gap(interval: Duration) -> Duration {
    interval - interval / 4
}

/// Runs `work` while renewing a lease every third of `lease` with `renew` (false or an
/// error: logged; the work goes on, guarded by the recordings' own claims).
pub(crate) async fn renewing<T, W, R, F>(lease: Duration, work: W, renew: R) -> T
where
    W: Future<Output = T>,
    R: Fn() -> F,
    F: Future<Output = Result<bool, crate::LedgerError>>,
{
    let mut work = std::pin::pin!(work);
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tokio::time::sleep(every) => match renew().await {
                Ok(true) => {}
                Ok(false) => tracing::warn!("a lease on shared work was taken over by another instance"),
                Err(e) => tracing::warn!(error = %e, "could not renew a lease on shared work"),
            },
        }
    }
}

/// Conversations as the ledger keeps them: without their phone numbers (personal data)
/// unless `keep_phone_numbers`.
pub(crate) fn as_kept(
    conversations: Vec<AnalyticsConversation>,
    keep_phone_numbers: bool,
) -> Vec<AnalyticsConversation> {
    if keep_phone_numbers {
        conversations
    } else {
        conversations
            .into_iter()
            .map(|c| c.without_phone_numbers())
            .collect()
    }
}

/// The listing of `query` as discovery items: finished conversations go into the ledger as
/// chunks (not into the stream); in-progress, settled and unlistable ones come through to be
/// accounted for. A chunk the ledger cannot store ends the stream with an error, so the
/// listing counts as incomplete and the checkpoint stays.
pub(crate) fn listing(
    client: &GenesysClient,
    query: DiscoveryQuery,
    ledger: Ledger,
    name: String,
    late: crate::LateWindow,
) -> impl Stream<Item = genesys_media::Result<Discovered>> + Send + 'static {
    let keep_phone_numbers = late.keep_phone_numbers;
    let memory = ledger.listing_memory(&name, late);
    client.list_known(query, Some(memory)).filter_map(move |r| {
        let (ledger, name) = (ledger.clone(), name.clone());
        async move {
            match r {
                Ok(Listed::Item(i)) => Some(Ok(*i)),
                Ok(Listed::Conversations(c)) => {
                    let c = as_kept(c, keep_phone_numbers);
                    match ledger.add_chunk(&name, &c).await {
                        Ok(_) => None,
                        Err(e) => Some(Err(genesys_media::Error::Transport {
                            endpoint: "ledger".into(),
                            message: format!("could not store listed conversations: {e}"),
                        })),
                    }
                }
                Err(e) => Some(Err(e)),
            }
        }
    })
}

/// Lists `query` into chunks of the listing `name` (see [`listing`]) and archives what comes
/// through, renewing this instance's listing lease (`gap`: as it was taken) all along.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn list_holding_lease(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    query: DiscoveryQuery,
    ledger: &Ledger,
    name: &str,
    late: crate::LateWindow,
    cfg: &ArchiverConfig,
    events: &Arc<dyn EventHandler>,
    gap: Duration,
) -> Summary {
    let found = listing(client, query, ledger.clone(), name.to_string(), late);
    let work = archive(
        client.clone(),
        sink.clone(),
        found,
        cfg.clone(),
        events.clone(),
    );
    let renew = || ledger.take_listing(name, &cfg.instance_id, cfg.lease, gap);
    renewing(cfg.lease, work, renew).await
}

/// Claims and works chunks of `poll.checkpoint` until none is due; returns what was archived.
/// With `problems` (a shared backfill), a chunk whose recordings failed writes why under that
/// ledger entry before the chunk is finished, so the backfill's other instances learn it.
///
/// While one chunk's recordings are archived, the next chunk is claimed and resolved (its
/// batch job runs meanwhile), so that the workers do not wait out a batch job between chunks;
/// an instance holds at most two chunks, both leases renewed. A chunk resolved ahead is
/// handed to the archiver even when a stop came meanwhile: it stops before taking any of its
/// recordings (the run counts as incomplete) and the chunk is kept, due at once for any
/// instance. A chunk whose lease was lost meanwhile is not finished by this instance.
pub(crate) async fn work_chunks<Q>(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    make_query: &Q,
    cfg: &ArchiverConfig,
    poll: &PollSettings,
    events: &Arc<dyn EventHandler>,
    problems: Option<&str>,
) -> Result<Summary, ContinuousError>
where
    Q: Fn(DateTime<Utc>, DateTime<Utc>) -> DiscoveryQuery,
{
    let ledger = cfg.ledger.clone().ok_or(ContinuousError::NoLedger)?;
    let renew = |id: i64| ledger.renew_chunk(id, &cfg.instance_id, cfg.lease);
    // Claims a chunk (none once stopped or when none is due) and resolves it, renewing its
    // lease; then holds it, still renewing, until `hold` is cancelled.
    let claim_resolved = |hold: Option<CancellationToken>| async {
        if cfg.shutdown.is_cancelled() {
            return Ok(None);
        }
        let Some(chunk) = ledger
            .claim_chunk(&poll.checkpoint, &cfg.instance_id, cfg.lease)
            .await?
        else {
            return Ok(None);
        };
        let id = chunk.id;
        let resolve = async {
            let resolved = resolve_chunk(client, make_query, cfg, poll, &ledger, chunk).await;
            // Held (its lease renewed) until the current chunk is done; one that ended here
            // was given back already.
            if let (Some(hold), Ok(Resolved::Ready(_))) = (hold, &resolved) {
                hold.cancelled().await;
            }
            resolved
        };
        renewing(cfg.lease, resolve, || renew(id)).await.map(Some)
    };
    let mut total = Summary::default();
    let mut ahead: Option<Resolved> = None;
    loop {
        let current = match ahead.take() {
            Some(r) => r,
            None => match claim_resolved(None).await? {
                Some(r) => r,
                None => break,
            },
        };
        let ready = match current {
            Resolved::Ended(summary) => {
                total.absorb(summary);
                continue;
            }
            Resolved::Ready(ready) => ready,
        };
        let id = ready.chunk.id;
        let done = CancellationToken::new();
        let this = async {
            let work = archive_chunk(client, sink, cfg, events, &ledger, poll, ready, problems);
            let summary = renewing(cfg.lease, work, || renew(id)).await;
            done.cancel();
            summary
        };
        let (summary, next) = tokio::join!(this, claim_resolved(Some(done.clone())));
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                // The chunk resolved ahead is given back (best effort), so that other
                // instances need not wait for its lease to end.
                if let Ok(Some(Resolved::Ready(r))) = &next {
                    let c = &r.chunk;
                    let _ = ledger
                        .retry_chunk(
                            c.id,
                            &cfg.instance_id,
                            &c.conversations,
                            None,
                            Duration::ZERO,
                        )
                        .await;
                }
                return Err(e);
            }
        };
        total.absorb(summary);
        ahead = next?;
    }
    Ok(total)
}

/// A claimed chunk after its batch job: ready to archive, or ended without archiving (kept
/// for a retry, or stopped), with what to count.
enum Resolved {
    Ready(ReadyChunk),
    Ended(Summary),
}

/// A resolved chunk's recordings, and what its resolution already says.
struct ReadyChunk {
    chunk: Chunk,
    items: Vec<Discovered>,
    /// Conversations to look at again: recordings still uploading or restoring, or results
    /// that could not be read (one without a conversation id: the whole chunk).
    again: HashSet<String>,
    error: Option<String>,
    stats: Arc<crate::LateStats>,
    /// When the batch job gave the media URLs (a chunk resolved ahead waits a while).
    resolved_at: tokio::time::Instant,
}

/// Resolves a claimed chunk with one batch job. A failure or a stop keeps the chunk in the
/// ledger (for a retry after a backoff, or at once for any instance).
async fn resolve_chunk<Q>(
    client: &GenesysClient,
    make_query: &Q,
    cfg: &ArchiverConfig,
    poll: &PollSettings,
    ledger: &Ledger,
    chunk: Chunk,
) -> Result<Resolved, ContinuousError>
where
    Q: Fn(DateTime<Utc>, DateTime<Utc>) -> DiscoveryQuery,
{
    let owner = cfg.instance_id.as_str();
    // Only the query's media-type filter applies to a chunk; its interval was the listing's.
    let query = make_query(poll.start, Utc::now());
    let settle = chrono::Duration::from_std(poll.settle).unwrap_or(chrono::Duration::zero());
    let late = cfg.late_at(client.now() - settle);
    let stats = late.stats.clone();
    let known = ledger.known_conversations_with(late);
    let resolve = client.resolve_listed(&query, chunk.conversations.clone(), Some(known.as_ref()));
    let resolved = tokio::select! {
        r = resolve => r,
        // Stopped while its batch job runs: the chunk is kept, due at once for any instance.
        () = cfg.shutdown.cancelled() => {
            ledger
                .retry_chunk(chunk.id, owner, &chunk.conversations, None, Duration::ZERO)
                .await?;
            return Ok(Resolved::Ended(Summary {
                source_incomplete: true,
                ..Summary::default()
            }));
        }
    };
    let resolved_at = tokio::time::Instant::now();
    let items = match resolved {
        Ok(items) => items,
        Err(e) => {
            let config = matches!(e, genesys_media::Error::Auth { .. });
            let delay = if config {
                Duration::ZERO
            } else {
                retry_backoff(poll.interval, chunk.attempts + 1)
            };
            ledger
                .retry_chunk(
                    chunk.id,
                    owner,
                    &chunk.conversations,
                    Some(e.to_string()),
                    delay,
                )
                .await?;
            if config {
                return Err(ContinuousError::Config(e.to_string()));
            }
            tracing::warn!(chunk = chunk.id, conversations = chunk.conversations.len(), error = %e,
                "resolving a chunk failed; it is kept and tried again");
            return Ok(Resolved::Ended(Summary {
                discovery_error: Some(e.to_string()),
                ..Summary::default()
            }));
        }
    };
    let mut again: HashSet<String> = HashSet::new();
    let mut error = None;
    for item in &items {
        match item {
            Discovered::Pending(p) => {
                again.insert(p.conversation_id.clone());
            }
            Discovered::Unresolved {
                conversation_id,
                reason,
            } => {
                error = Some(reason.clone());
                if conversation_id.is_empty() {
                    again.extend(
                        chunk
                            .conversations
                            .iter()
                            .map(|c| c.conversation_id.clone()),
                    );
                } else {
                    again.insert(conversation_id.clone());
                }
            }
            _ => {}
        }
    }
    Ok(Resolved::Ready(ReadyChunk {
        chunk,
        items,
        again,
        error,
        stats,
        resolved_at,
    }))
}

/// Archives a resolved chunk's recordings, then finishes the chunk, or keeps what must be
/// looked at again (recordings in progress, held by another instance, failed without a
/// ledger row, or not reached before a stop).
#[allow(clippy::too_many_arguments)]
async fn archive_chunk(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    cfg: &ArchiverConfig,
    events: &Arc<dyn EventHandler>,
    ledger: &Ledger,
    poll: &PollSettings,
    ready: ReadyChunk,
    problems: Option<&str>,
) -> Result<Summary, ContinuousError> {
    let owner = cfg.instance_id.as_str();
    let ReadyChunk {
        chunk,
        items,
        mut again,
        error,
        stats,
        resolved_at,
    } = ready;
    let summary = crate::pipeline::archive_pulled(
        client.clone(),
        sink.clone(),
        futures::stream::iter(
            items
                .into_iter()
                .map(move |d| Ok(crate::pipeline::Pulled::Found(d, resolved_at))),
        ),
        cfg.clone(),
        events.clone(),
    )
    .await;
    // Recordings another instance holds: their conversations stay in the chunk, to be
    // looked at again once that lease ends (archived by then, or taken over).
    again.extend(
        summary
            .failures
            .iter()
            .filter(|f| f.kind == crate::ReportKind::LeasedElsewhere)
            .map(|f| f.conversation_id.clone()),
    );
    let not_archived = summary.failed + summary.quarantined + summary.unrecorded;
    if let Some(key) = problems
        && not_archived > 0
    {
        let example = summary
            .failures
            .first()
            .map(|f| format!(", e.g. {}", f.reason))
            .unwrap_or_default();
        ledger
            .set_checkpoint(
                key,
                &format!("{owner}: {not_archived} recording(s) not archived{example}"),
            )
            .await?;
    }
    if summary.interrupted > 0 || summary.source_incomplete {
        // Shut down mid-chunk: another instance (or the next start) takes all of it; what
        // was archived is skipped through the ledger.
        ledger
            .retry_chunk(chunk.id, owner, &chunk.conversations, None, Duration::ZERO)
            .await?;
    } else if summary.unrecorded > 0 {
        // A failure the ledger has no row for: only this chunk remembers its recording.
        let error = format!(
            "{} recording(s) failed without a ledger row; the chunk is kept",
            summary.unrecorded
        );
        ledger
            .retry_chunk(
                chunk.id,
                owner,
                &chunk.conversations,
                Some(error),
                retry_backoff(poll.interval, chunk.attempts + 1),
            )
            .await?;
    } else if again.is_empty() {
        if !ledger.finish_chunk(chunk.id, owner).await? {
            // Its lease lapsed and another instance took it over (it resolved the chunk again
            // and may keep it for what it saw): left to that instance.
            tracing::warn!(
                chunk = chunk.id,
                "a chunk was taken over by another instance while this one worked it; left to it"
            );
        }
    } else {
        let keep: Vec<_> = chunk
            .conversations
            .into_iter()
            .filter(|c| again.contains(&c.conversation_id))
            .collect();
        let attempts = chunk.attempts + u32::from(error.is_some());
        ledger
            .retry_chunk(
                chunk.id,
                owner,
                &keep,
                error,
                retry_backoff(poll.interval, attempts.max(1)),
            )
            .await?;
    }
    let mut summary = summary;
    summary.rechecked += stats.rechecked();
    summary.late_files += stats.late_files();
    Ok(summary)
}
