//! The archive pipeline: discovery -> bounded queue -> worker pool -> sink.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use genesys_media::{
    Discovered, DiscoveredRecording, ErrorClass, GenesysClient, MediaAvailability,
};
use sink::ObjectSink;

use crate::attempt::{fail, process, unrecorded};
use crate::config::ArchiverConfig;
use crate::events::{Event, EventHandler};
use crate::ledger::Claim;
use crate::refresh::{RefreshQueue, Refreshed, Waiting};
use crate::summary::{FailureReport, ReportKind, Summary};
use crate::work::{Outcome, Ready, Shared};

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
    // The URL's age counts from when the source gave it (this map runs as items are pulled).
    let source = source.map(|r| r.map(|t| Pulled::Found(t.into(), tokio::time::Instant::now())));
    archive_pulled(client, sink, source, cfg, events).await
}

/// What the pipeline pulls from its source.
pub(crate) enum Pulled {
    /// A discovery item and when its media URL was obtained (a chunk resolved ahead held it
    /// a while): its age counts from then, so an old URL is refreshed rather than tried.
    Found(Discovered, tokio::time::Instant),
    /// A recording named by a ledger row (a retry): it always goes through a claim, so the
    /// ledger records its outcome and charges the attempt, also when the source gave no media
    /// for it; `fail_with` records a failure found before any download.
    Retry {
        rec: DiscoveredRecording,
        fail_with: Option<String>,
    },
}

/// [`archive`] of [`Pulled`] items.
//
// Long on purpose: the run's one event loop. Starting work, pulling the source, refreshing
// URLs, collecting finished work, adapting the limit and stopping all change the same state
// (the ready queue, the tasks in flight, the refresh in progress, the summary), and the drain
// after the loop must see all of it; split into functions, each would take all of it.
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
    let learned = cfg.learned_workers.load(Ordering::Relaxed);
    let mut limit = crate::concurrency::Limit::new(cfg.workers, learned, std::time::Instant::now());
    let refresh_window = cfg.url_refresh_window;
    let shared = Arc::new(Shared {
        client,
        sink,
        cfg,
        events,
        pushback: AtomicU64::new(0),
    });
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
        while !ready.is_empty() && tasks.len() < limit.get() {
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
        limit.in_flight(std::time::Instant::now(), tasks.len());
        let can_pull = !source_done && ready.is_empty() && tasks.len() < limit.get();
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
                let size = match &done {
                    Some(Ok((_, (_, Outcome::Archived { size })))) => *size,
                    _ => 0,
                };
                if let Some(done) = done
                    && let Some(w) = tally(&mut summary, &mut in_flight, done)
                {
                    refresh.push(w);
                }
                let pushback = shared.pushback.load(Ordering::Relaxed);
                if let Some(n) = limit.completed(std::time::Instant::now(), size, pushback, tasks.len()) {
                    tracing::debug!(workers = n, "worker limit adapted");
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
                let (mut rec, retry, obtained) = match item {
                    Pulled::Found(Discovered::Recording(r), at) => (r, None, at),
                    Pulled::Found(other, _) => {
                        account_unlisted(&mut summary, &shared.events, other);
                        continue;
                    }
                    Pulled::Retry { rec, fail_with } => {
                        (rec, Some(fail_with), tokio::time::Instant::now())
                    }
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
                    received_at: obtained,
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
    summary.workers_peak = limit.busiest();
    shared
        .cfg
        .learned_workers
        .store(limit.get(), Ordering::Relaxed);
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

/// Claims the recording in the ledger (when there is one), keeps the lease alive while it is
/// processed, and writes the outcome.
//
// Long on purpose: one recording's claim, lease and outcome in order, each early return
// writing what the ledger must know about it; the steps themselves are in `attempt` and
// `adopt`.
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
