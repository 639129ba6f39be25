//! Continuous mode: poll the source on an interval, archive what appeared, keep a checkpoint
//! in the ledger, and retry what the ledger says failed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use genesys_media::{DiscoveredRecording, DiscoveryQuery, GenesysClient, MediaAvailability};
use sink::ObjectSink;

use crate::config::ArchiverConfig;
use crate::events::{Event, EventHandler};
use crate::ledger::{LedgerEntry, RecordStatus};
use crate::pipeline::archive;
use crate::poll::{ContinuousError, PollSettings, RECHECKS_PER_POLL, retry_backoff};
use crate::scale_out::{as_kept, list_holding_lease, listing_gap, work_chunks};
use crate::summary::Summary;

/// Polls until `cfg.shutdown` is cancelled (or `max_polls`), archiving each new interval and
/// retrying failed rows; returns the summed counts. Transient source outages are logged and
/// retried at the next poll; the checkpoint only advances over an interval whose discovery
/// completed and whose recordings were all handled (with [`PollSettings::scale_out`]: were
/// all handled, or wait in a chunk in the ledger).
pub async fn run_continuous<Q>(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    make_query: Q,
    cfg: ArchiverConfig,
    poll: PollSettings,
    events: Arc<dyn EventHandler>,
) -> Result<Summary, ContinuousError>
where
    Q: Fn(DateTime<Utc>, DateTime<Utc>) -> DiscoveryQuery,
{
    let ledger = cfg.ledger.clone().ok_or(ContinuousError::NoLedger)?;
    let mut total = Summary::default();
    let mut polls = 0u64;
    let overlap = chrono::Duration::from_std(poll.overlap).unwrap_or(chrono::Duration::zero());
    let settle = chrono::Duration::from_std(poll.settle).unwrap_or(chrono::Duration::zero());
    let tolerance = overlap + settle;
    let mut previous: Option<(DateTime<Utc>, tokio::time::Instant)> = None;
    let mut index_day: Option<chrono::NaiveDate> = None;
    // Parts written whose anchor could not be written yet.
    let mut unanchored: Vec<crate::IndexPart> = Vec::new();
    // The UTC day of this process's last sweep that looked back as far as the query asks.
    let mut deep_sweep_day: Option<chrono::NaiveDate> = None;
    let recent = chrono::Duration::from_std(poll.recent_overlap.min(poll.overlap))
        .unwrap_or(chrono::Duration::zero());
    let sweep_name = format!("{}.sweep", poll.checkpoint);
    let since_name = format!("{}.polls-since-sweep", poll.checkpoint);
    // Conversations deferred to a fuller batch (`batch_wait`) wait here, not behind a held
    // checkpoint, so later polls need not list them again. Read even with `batch_wait` off.
    let waiting_name = format!("{}.waiting", poll.checkpoint);
    while !cfg.shutdown.is_cancelled() && poll.max_polls.is_none_or(|m| polls < m) {
        polls += 1;
        let started = tokio::time::Instant::now();
        let wall = Utc::now();
        if let Some(seconds) = previous.and_then(|p| clock_jump(p, (wall, started), tolerance)) {
            report_jump(&events, seconds, "elapsed time");
        }
        previous = Some((wall, started));
        // Shared work: list only while holding the listing lease (one instance per window).
        let lister = match &poll.scale_out {
            None => true,
            Some(_) => {
                ledger
                    .take_listing(
                        &poll.checkpoint,
                        &cfg.instance_id,
                        cfg.lease,
                        listing_gap(poll.interval),
                    )
                    .await?
            }
        };
        let checkpoint = ledger.checkpoint_time(&poll.checkpoint).await?;
        // Polls since the last completed sweep; none recorded: sweep now.
        let since_sweep: Option<u32> = ledger
            .checkpoint(&since_name)
            .await?
            .and_then(|s| s.parse().ok());
        let sweep = since_sweep.is_none_or(|n| n + 1 >= poll.sweep_every);
        // A sweep reaches back from the previous sweep's checkpoint: whatever became visible
        // since then and is late by up to `overlap` lies after that point minus `overlap`.
        let anchor = if sweep {
            ledger.checkpoint_time(&sweep_name).await?
        } else {
            None
        };
        let from = checkpoint
            .map(|c| {
                let back = if sweep {
                    anchor.map_or(c, |a| a.min(c)) - overlap
                } else {
                    c - recent
                };
                back.max(poll.start)
            })
            .unwrap_or(poll.start);
        // The earlier of this machine's clock and the source's (as its last answer showed it;
        // a fresh client learns it from the token answer first, or the poll would judge its
        // end by this machine's clock alone).
        if client.source_now().is_none()
            && let Err(e) = client.tokens().token().await
        {
            tracing::debug!(error = %e, "no token yet; discovery asks again");
        }
        let to = client.now() - settle;
        let calls_before = client.metrics().snapshot();
        if lister && to > from {
            let mut q = make_query(from, to);
            // Conversations that started on an earlier UTC day than `from` (found only by
            // queries across midnights, one call each): a poll between sweeps reads nothing
            // new before `from`; a sweep looks one day back, and the first sweep of each UTC
            // day as far as the query asks.
            q.earlier_starts = if !sweep {
                chrono::Duration::zero()
            } else if deep_sweep_day == Some(wall.date_naive()) {
                q.earlier_starts.min(chrono::Duration::days(1))
            } else {
                q.earlier_starts
            };
            let deep = sweep && deep_sweep_day != Some(wall.date_naive());
            q.waiting = load_waiting(&ledger, &waiting_name).await?;
            let had_waiting = !q.waiting.is_empty();
            // Conversations whose late window has passed since their last resolution: resolved
            // again (driven from the ledger; analytics no longer lists them), in the same
            // batch jobs as the poll's new conversations (a job carries up to 100).
            let late = cfg.late_at(to);
            let stats = late.stats.clone();
            let due = ledger.due_rechecks(to, RECHECKS_PER_POLL).await?;
            let listed: std::collections::HashSet<String> = q
                .waiting
                .iter()
                .map(|c| c.conversation_id.clone())
                .collect();
            q.waiting.extend(
                due.into_iter()
                    .filter(|c| !listed.contains(&c.conversation_id)),
            );
            let summary = match &poll.scale_out {
                None => {
                    q.partial_batch_wait = poll
                        .batch_wait
                        .and_then(|w| chrono::Duration::from_std(w).ok());
                    let found =
                        client.discover_known(q, Some(ledger.known_conversations_with(late)));
                    archive(
                        client.clone(),
                        sink.clone(),
                        found,
                        cfg.clone(),
                        events.clone(),
                    )
                    .await
                }
                Some(_) => {
                    let s = list_holding_lease(
                        &client,
                        &sink,
                        q,
                        &ledger,
                        &poll.checkpoint,
                        late,
                        &cfg,
                        &events,
                        listing_gap(poll.interval),
                    )
                    .await;
                    // Cut short (shutdown): not listed; the next lister lists it again.
                    ledger
                        .end_listing(
                            &poll.checkpoint,
                            &cfg.instance_id,
                            s.discovery_error.is_none() && !s.source_incomplete,
                        )
                        .await?;
                    s
                }
            };
            let mut summary = summary;
            summary.rechecked += stats.rechecked();
            summary.late_files += stats.late_files();
            // Resolutions the ledger could not record: their late window would be lost.
            summary.unrecorded += stats.unrecorded();
            if let Ok((n, until)) = ledger.late_window_open(to).await {
                summary.late_window_open = n;
                summary.late_window_until = until;
            }
            if summary.discovery_error_is_config {
                return Err(ContinuousError::Config(
                    summary.discovery_error.unwrap_or_default(),
                ));
            }
            // The window is reconciled when discovery completed, every part of it was
            // listed and nothing was cut short: no shutdown before the source ended, no
            // recording interrupted, no failure the ledger has no row for. Failed recordings
            // are in the ledger and retried below; pending ones (conversations in progress,
            // recordings uploading, recordings another instance holds) are not: the checkpoint
            // stays at the earliest of them, so the next poll reads them again.
            let reconciled = poll_reconciled(&summary);
            let mut next = summary.pending_since.map_or(to, |p| p.min(to));
            // Never past the source's present when the poll began (the source's clock is known
            // once it answered): a local clock running ahead must not skip what the source has
            // not listed yet.
            if let Some(source) = client.source_now() {
                let source_start = source
                    - chrono::Duration::from_std(started.elapsed())
                        .unwrap_or(chrono::Duration::zero());
                let skew = wall - source_start;
                if skew.abs() > tolerance {
                    report_jump(&events, skew.num_seconds(), "source");
                }
                next = next.min(source_start - settle);
            }
            // It may move back too: a conversation found in progress before the checkpoint
            // (through the overlap) keeps the next polls reading from its start.
            let advanced = reconciled && checkpoint != Some(next);
            // What waits now replaces what waited (resolved, or in `summary.waiting` again),
            // before the checkpoint moves past where they were listed.
            if reconciled && (had_waiting || !summary.waiting.is_empty()) {
                // One entry per conversation (several of its recordings may wait).
                let mut seen = std::collections::HashSet::new();
                let waiting: Vec<_> = summary
                    .waiting
                    .iter()
                    .filter(|c| seen.insert(c.conversation_id.clone()))
                    .cloned()
                    .collect();
                let keep = as_kept(waiting, cfg.keep_phone_numbers);
                let text = serde_json::to_string(&keep).map_err(|e| ContinuousError::Waiting {
                    name: waiting_name.clone(),
                    message: e.to_string(),
                })?;
                ledger.set_checkpoint(&waiting_name, &text).await?;
            }
            if advanced {
                ledger
                    .set_checkpoint(
                        &poll.checkpoint,
                        &next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    )
                    .await?;
            }
            if reconciled && deep {
                deep_sweep_day = Some(wall.date_naive());
            }
            if reconciled && sweep {
                // The next sweep reaches `overlap` back from here.
                ledger
                    .set_checkpoint(
                        &sweep_name,
                        &next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    )
                    .await?;
            }
            if reconciled {
                let n = if sweep {
                    0
                } else {
                    since_sweep.unwrap_or(0) + 1
                };
                ledger.set_checkpoint(&since_name, &n.to_string()).await?;
            }
            if let Some(e) = &summary.discovery_error {
                tracing::warn!(error = %e, "poll did not complete; the next poll reads the same window again");
            }
            events.handle(&Event::Polled {
                from,
                to,
                found: summary.found,
                archived: summary.archived,
                failed: summary.failed,
                pending: summary.pending,
                not_discoverable: summary.not_discoverable,
                discovery_error: summary.discovery_error.clone(),
                checkpoint_advanced: reconciled,
                known_conversations: summary.known_conversations,
                rechecked: summary.rechecked,
                late_files: summary.late_files,
                sweep,
                api_calls: calls_since(&calls_before, &client.metrics().snapshot()),
            });
            total.absorb(summary);
            if !reconciled {
                total.unreconciled_polls += 1;
            }
        }
        // Shared work: failed rows are retried by the instance that listed (each retry costs a
        // URL request; two instances must not both spend it).
        if lister && !cfg.shutdown.is_cancelled() {
            let failed = due_rows(&ledger, &poll, &cfg.instance_id, &events).await?;
            if !failed.is_empty() {
                let s = archive_entries(
                    client.clone(),
                    sink.clone(),
                    failed,
                    cfg.clone(),
                    events.clone(),
                )
                .await;
                total.absorb(s);
            }
        }
        if lister
            && !cfg.shutdown.is_cancelled()
            && let Some(every) = poll.inventory_every
        {
            let s =
                crate::inventory::daemon_audit(&client, &sink, &cfg, &poll, every, &events).await?;
            total.absorb(s);
        }
        if poll.scale_out.is_some() {
            let worked =
                work_chunks(&client, &sink, &make_query, &cfg, &poll, &events, None).await?;
            let backlog = ledger.chunk_backlog(&poll.checkpoint).await?;
            events.handle(&Event::SharedWork {
                listed: lister,
                chunks: backlog.chunks,
                conversations: backlog.conversations,
                last_error: backlog.last_error,
                archived: worked.archived,
                rechecked: worked.rechecked,
                late_files: worked.late_files,
            });
            total.absorb(worked);
        }
        if let Some(prefix) = &poll.index_prefix {
            let today = Utc::now().date_naive();
            if index_day != Some(today) {
                match crate::write_index(
                    &ledger,
                    sink.as_ref(),
                    prefix,
                    Utc::now(),
                    poll.index_signer.as_deref(),
                )
                .await
                {
                    Ok(parts) => {
                        index_day = Some(today);
                        if let Some(anchor) = &poll.index_anchor {
                            unanchored.extend(parts.iter().cloned());
                            match anchor.record(&unanchored).await {
                                Ok(()) => unanchored.clear(),
                                Err(e) => {
                                    tracing::error!(error = %e, "index anchor not written; the next poll tries again");
                                    // Come back at the next poll, not tomorrow.
                                    index_day = None;
                                }
                            }
                        }
                        for p in parts {
                            tracing::info!(seq = p.seq, key = %p.key, entries = p.entries, "index part written");
                            events.handle(&Event::IndexWritten {
                                seq: p.seq,
                                key: p.key,
                                sha256: p.sha256,
                                entries: p.entries,
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "index not written; the next poll tries again")
                    }
                }
            }
        }
        if lister
            && !cfg.shutdown.is_cancelled()
            && let Some(policy) = &poll.release
        {
            crate::release_undo::daemon_release(&client, &sink, &cfg, policy, &events).await;
        }
        if poll.max_polls.is_some_and(|m| polls >= m) {
            break;
        }
        let next = started + poll.interval;
        // Shared work: between polls, chunks other instances listed are taken up promptly.
        let check = poll.scale_out.as_ref().map(|s| s.chunk_check);
        loop {
            let wake = check.map_or(next, |c| next.min(tokio::time::Instant::now() + c));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = cfg.shutdown.cancelled() => break,
            }
            if wake >= next {
                break;
            }
            total.absorb(
                work_chunks(&client, &sink, &make_query, &cfg, &poll, &events, None).await?,
            );
        }
    }
    Ok(total)
}

/// Whether a poll's window is done: discovery completed and listed every part of it, the run
/// was not cut short (shutdown before the source ended, recordings interrupted), every failure
/// is in the ledger (retried from there), and every recording another instance holds has a
/// start the checkpoint can be held at.
fn poll_reconciled(summary: &Summary) -> bool {
    summary.discovery_error.is_none()
        && !summary.source_incomplete
        && summary.interrupted == 0
        && summary.unrecorded == 0
        && summary.not_discoverable == 0
        && (summary.leased_elsewhere == 0 || summary.pending_since.is_some())
}

/// The conversations `name` keeps for a fuller batch (none when it was never written).
async fn load_waiting(
    ledger: &crate::ledger::Ledger,
    name: &str,
) -> Result<Vec<genesys_media::models::AnalyticsConversation>, ContinuousError> {
    match ledger.checkpoint(name).await? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| ContinuousError::Waiting {
            name: name.to_string(),
            message: e.to_string(),
        }),
    }
}

/// API calls by endpoint shape between two snapshots.
fn calls_since(
    before: &genesys_media::ApiMetricsSnapshot,
    after: &genesys_media::ApiMetricsSnapshot,
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for ((endpoint, status), n) in &after.calls {
        let prev = before
            .calls
            .get(&(endpoint.clone(), *status))
            .copied()
            .unwrap_or(0);
        if *n > prev {
            *out.entry(endpoint.clone()).or_insert(0) += n - prev;
        }
    }
    out
}

/// How far the wall clock moved beyond (or short of) the monotonic clock between two readings,
/// in seconds, when that exceeds `tolerance`.
pub(crate) fn clock_jump(
    before: (DateTime<Utc>, tokio::time::Instant),
    now: (DateTime<Utc>, tokio::time::Instant),
    tolerance: chrono::Duration,
) -> Option<i64> {
    let wall = now.0 - before.0;
    let elapsed = chrono::Duration::from_std(now.1.saturating_duration_since(before.1))
        .unwrap_or(chrono::Duration::MAX);
    let jump = wall - elapsed;
    (jump.abs() > tolerance).then(|| jump.num_seconds())
}

fn report_jump(events: &Arc<dyn EventHandler>, seconds: i64, against: &'static str) {
    tracing::warn!(
        seconds,
        against,
        "this machine's clock disagrees with {against} by more than the poll overlap plus settle time; the checkpoint stays within what the source has listed"
    );
    events.handle(&Event::ClockJump { seconds, against });
}

/// The rows due for a retry now: failed rows after their backoff, and pending rows whose
/// lease ended (an instance stopped or was killed while holding them, or gave them back on
/// shutdown): nothing else revisits those once the windows that listed them were done. Failed
/// rows that reached the attempt bound are given up: quarantined with the reason (and a
/// `Quarantined` event), not retried forever.
async fn due_rows(
    ledger: &crate::ledger::Ledger,
    poll: &PollSettings,
    instance_id: &str,
    events: &Arc<dyn EventHandler>,
) -> Result<Vec<LedgerEntry>, ContinuousError> {
    let now = Utc::now();
    let mut due: Vec<LedgerEntry> = ledger
        .entries(Some(RecordStatus::Pending))
        .await?
        .into_iter()
        .filter(|e| {
            e.lease_owner.as_deref() != Some(instance_id)
                && e.lease_until_ms
                    .is_none_or(|until| until <= now.timestamp_millis())
        })
        .collect();
    for e in ledger.entries(Some(RecordStatus::Failed)).await? {
        if e.attempts >= poll.retry_failed_below_attempts {
            let reason = format!(
                "gave up after {} attempts over several polls: {}",
                e.attempts,
                e.last_error.as_deref().unwrap_or("no error recorded")
            );
            if ledger.give_up(&e.recording_id, &reason).await? {
                events.handle(&Event::Quarantined {
                    recording_id: e.recording_id.clone(),
                    reason,
                });
            }
            continue;
        }
        let waited = DateTime::parse_from_rfc3339(&e.updated_at)
            .ok()
            .and_then(|t| (now - t.with_timezone(&Utc)).to_std().ok());
        let wait = retry_backoff(poll.interval, e.attempts);
        if waited.is_none_or(|w| w >= wait) {
            due.push(e);
        }
    }
    Ok(due)
}

/// Rebuilds what discovery would have yielded for a ledger row (ids, times, media type,
/// conversation facts); the media URL is requested again when the row is archived.
pub fn entry_to_recording(e: &LedgerEntry) -> DiscoveredRecording {
    let t = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    // One file of several is kept as `recording~file` (DiscoveredRecording::ledger_id).
    let (recording_id, file) = match e.recording_id.split_once('~') {
        Some((r, f)) => (r.to_string(), Some(f.to_string())),
        None => (e.recording_id.clone(), None),
    };
    DiscoveredRecording {
        conversation_id: e.conversation_id.clone(),
        recording_id,
        file,
        start_time: t(&e.start_time),
        end_time: t(&e.end_time),
        media_type: e.media_type.clone().unwrap_or_default(),
        content_type: None,
        expected_md5: None,
        expected_size: None,
        media: MediaAvailability::Unavailable("not requested yet".into()),
        // What analytics said when it was first claimed: a retried recording's object carries
        // the same metadata as one archived at once.
        facts: Arc::new(e.facts.clone()),
    }
}

/// Archives recordings named by ledger rows (failed ones, or quarantined ones an operator
/// released): each one's media URL is requested again from the source, then it goes through
/// the normal pipeline.
pub async fn archive_entries(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    entries: Vec<LedgerEntry>,
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
) -> Summary {
    let refresher = client.clone();
    let stream = futures::stream::iter(entries)
        .map(move |e| {
            let client = refresher.clone();
            async move {
                let mut rec = entry_to_recording(&e);
                let auth = |e: &genesys_media::Error| matches!(e, genesys_media::Error::Auth { .. });
                // Every retry goes through a claim, so its outcome is recorded and its attempt
                // charged: a row answered "unavailable" or failing to refresh is retried with
                // a growing backoff and given up at the bound, never every poll forever.
                let fail_with = match client.refresh_media(&rec).await {
                    // No media: gone only when its fileState says so (as discovery decides);
                    // otherwise a failure, not an exit-0 "unavailable".
                    Ok(MediaAvailability::Unavailable(reason)) => {
                        match client
                            .gone_state(&rec.conversation_id, &rec.recording_id)
                            .await
                        {
                            Ok(Some(state)) => {
                                rec.media = MediaAvailability::Unavailable(format!(
                                    "{reason} (fileState {state})"
                                ));
                                None
                            }
                            Ok(None) => Some(format!(
                                "the source gave no media URL although the recording is not gone: {reason}"
                            )),
                            Err(err) if auth(&err) => return Err(err),
                            Err(err) => Some(format!(
                                "the source gave no media URL ({reason}) and its state could not be read: {err}"
                            )),
                        }
                    }
                    Ok(m) => {
                        rec.media = m;
                        None
                    }
                    Err(err) if auth(&err) => return Err(err),
                    Err(err) => Some(format!("requesting its media: {err}")),
                };
                Ok(crate::pipeline::Pulled::Retry { rec, fail_with })
            }
        })
        .buffered(cfg.workers.start());
    crate::pipeline::archive_pulled(client, sink, stream, cfg, events).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ledger_row_gives_back_the_facts_it_was_claimed_with() {
        let facts = genesys_media::ConversationFacts {
            direction: Some("inbound".into()),
            queue_ids: vec!["q1".into()],
            user_ids: vec!["u1".into()],
            ..Default::default()
        };
        let e = LedgerEntry {
            recording_id: "r1~part2".into(),
            conversation_id: "c1".into(),
            key: "k".into(),
            status: crate::RecordStatus::Failed,
            size: None,
            md5: None,
            attempts: 1,
            last_error: None,
            media_type: Some("audio".into()),
            start_time: Some("2026-11-03T10:00:00.000Z".into()),
            end_time: None,
            lease_owner: None,
            updated_at: "2026-11-03T10:05:00.000Z".into(),
            sha256: None,
            facts: facts.clone(),
            lease_until_ms: None,
        };
        let rec = entry_to_recording(&e);
        assert_eq!(
            (rec.recording_id.as_str(), rec.file.as_deref()),
            ("r1", Some("part2"))
        );
        assert_eq!(*rec.facts, facts);
    }

    #[test]
    fn a_wall_clock_step_beyond_the_tolerance_is_a_jump() {
        let t0 = Utc::now();
        let m0 = tokio::time::Instant::now();
        let tol = chrono::Duration::minutes(61);
        let m1 = m0 + Duration::from_secs(300);
        // Five minutes on both clocks: no jump.
        assert_eq!(
            clock_jump((t0, m0), (t0 + chrono::Duration::minutes(5), m1), tol),
            None
        );
        // The wall clock stepped two hours forward, or back, during five minutes.
        assert_eq!(
            clock_jump((t0, m0), (t0 + chrono::Duration::minutes(125), m1), tol),
            Some(7200)
        );
        assert_eq!(
            clock_jump((t0, m0), (t0 - chrono::Duration::minutes(115), m1), tol),
            Some(-7200)
        );
        // Within the tolerance (an NTP slew, a short step): not reported.
        assert_eq!(
            clock_jump((t0, m0), (t0 + chrono::Duration::minutes(65), m1), tol),
            None
        );
    }
}
