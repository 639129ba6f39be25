//! Continuous mode against the simulator: the checkpoint advances, and the overlap window
//! catches recordings that analytics reports late.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, PollSettings, run_continuous};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};

mod common;
use common::{Rig, client, collect, impatient, recent_sim, rig};

/// Hides the latest quarter of the conversations, polls once, reveals them, polls again with
/// `overlap`; returns (archived in poll 1, archived in poll 2).
/// Hides the conversations in `range` of the start order (analytics will report them late);
/// returns how many recordings they hold.
fn hide_late(s: &SimHandle, range: impl Fn(usize) -> std::ops::Range<usize>) -> usize {
    let mut convs: Vec<_> = s.dataset().conversations.clone();
    convs.sort_by_key(|c| c.start);
    let late: Vec<String> = convs[range(convs.len())]
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let recordings = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| late.contains(&r.conversation_id))
        .count();
    s.hide_conversations(late);
    recordings
}

async fn late_arrivals(overlap: Duration) -> (u64, u64, usize) {
    let s = recent_sim().await;
    let late_recordings = hide_late(&s, |n| n * 3 / 4..n);
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        overlap,
        // Every poll reads the whole overlap (the cadence has its own test).
        sweep_every: 1,
        settle: Duration::ZERO,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    let q = |from, to| DiscoveryQuery::interval(from, to);
    let first = run_continuous(
        c.clone(),
        sink.clone(),
        q,
        cfg.clone(),
        poll.clone(),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    let cp = ledger.checkpoint("discovery").await.unwrap().unwrap();
    assert!(
        cp.as_str() > s.config().end().to_rfc3339().as_str(),
        "checkpoint {cp} moved past the data"
    );
    s.reveal_all_conversations();
    let second = run_continuous(c, sink, q, cfg, poll, Arc::new(archiver::NoEvents))
        .await
        .unwrap();
    assert_eq!(second.skipped + second.archived, second.found);
    (first.archived, second.archived, late_recordings)
}

#[tokio::test]
async fn the_overlap_window_catches_recordings_reported_late() {
    let (first, second, late) = late_arrivals(Duration::from_secs(3 * 3600)).await;
    assert!(late > 0);
    assert_eq!(
        first + late as u64,
        24,
        "poll 1 archived all visible recordings"
    );
    assert_eq!(
        second, late as u64,
        "poll 2 found the late ones in the overlap"
    );
}

/// Between sweeps a poll reads back only the recent part of the overlap (fewer pages); the
/// next sweep reaches back the whole overlap from the previous sweep and finds what analytics
/// reported late in the meantime.
#[tokio::test]
async fn polls_between_sweeps_read_less_and_the_next_sweep_finds_late_data() {
    let s = Arc::new(recent_sim().await);
    let late_recordings = hide_late(&s, |n| 0..n / 2) as u64;
    let Rig {
        c, _dir, sink, cfg, ..
    } = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        overlap: Duration::from_secs(3 * 3600),
        sweep_every: 2,
        recent_overlap: Duration::from_secs(300),
        settle: Duration::ZERO,
        max_polls: Some(3),
        ..PollSettings::default()
    };
    // The late conversations appear right after the first poll.
    let sim = s.clone();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let events = Arc::new(move |e: &archiver::Event| {
        if let archiver::Event::Polled {
            sweep,
            archived,
            from,
            ..
        } = e
        {
            let mut seen = keep.lock().unwrap();
            seen.push((*sweep, *archived, *from));
            if seen.len() == 1 {
                sim.reveal_all_conversations();
            }
        }
    });
    let total = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll, events)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|p| p.0).collect::<Vec<_>>(),
        [true, false, true],
        "{seen:?}"
    );
    assert_eq!(seen[0].1 + late_recordings, 24, "{seen:?}");
    assert!(
        seen[1].2 > s.config().end(),
        "poll 2 reads only the recent part: {seen:?}"
    );
    assert_eq!(seen[1].1, 0, "{seen:?}");
    assert_eq!(seen[2].1, late_recordings, "the sweep found them: {seen:?}");
    assert!(seen[2].2 <= s.config().start + chrono::Duration::hours(1));
    assert_eq!(total.archived, 24);
}

#[tokio::test]
async fn without_overlap_late_recordings_would_be_missed() {
    let (first, second, late) = late_arrivals(Duration::ZERO).await;
    assert_eq!(first + late as u64, 24);
    assert_eq!(second, 0, "the checkpoint had moved past them");
}

/// A platform outage fails a poll without stopping the loop or moving the checkpoint; the
/// next poll after the outage archives everything.
#[tokio::test]
async fn the_poll_loop_rides_out_a_source_outage() {
    let s = recent_sim().await;
    s.set_outage(true);
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let mut cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    cfg.retry.max_elapsed = Duration::from_millis(300);
    let c = impatient(&c);
    let polls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = polls.clone();
    let sim = Arc::new(s);
    let sim2 = sim.clone();
    let events = Arc::new(move |e: &archiver::Event| {
        if let archiver::Event::Polled {
            checkpoint_advanced,
            archived,
            ..
        } = e
        {
            seen.lock().unwrap().push((*checkpoint_advanced, *archived));
            // The outage ends after the first failed poll.
            sim2.set_outage(false);
        }
    });
    let poll = PollSettings {
        start: sim.config().start,
        interval: Duration::from_millis(50),
        settle: Duration::ZERO,
        max_polls: Some(2),
        ..PollSettings::default()
    };
    let total = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll, events)
        .await
        .expect("an outage is not fatal");
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls, vec![(false, 0), (true, 24)], "{total:?}");
    assert_eq!(total.archived, 24);
    assert!(ledger.checkpoint("discovery").await.unwrap().is_some());
}

/// `batch_wait` keeps the conversations it defers in the ledger (without phone numbers), not
/// behind a held checkpoint: a failed poll leaves them there, and a later poll whose window no
/// longer lists them resolves them all the same, also with the wait turned off.
#[tokio::test]
async fn waiting_conversations_are_kept_in_the_ledger_until_resolved() {
    let s = recent_sim().await;
    let Rig {
        c,
        sink,
        ledger,
        cfg,
        _dir,
    } = rig(&s);
    let c = impatient(&c);
    let poll = |batch_wait: Option<Duration>| PollSettings {
        start: s.config().start,
        settle: Duration::ZERO,
        max_polls: Some(1),
        batch_wait,
        ..PollSettings::default()
    };
    let run = |batch_wait| {
        let (seen, events) = collect(|e| match e {
            archiver::Event::Polled {
                checkpoint_advanced,
                pending,
                ..
            } => Some((*checkpoint_advanced, *pending)),
            _ => None,
        });
        let fut = run_continuous(
            c.clone(),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll(batch_wait),
            events,
        );
        async move {
            let summary = fut.await.unwrap();
            let polled = seen.lock().unwrap().pop().expect("polled");
            (summary, polled)
        }
    };
    let conversations = s.dataset().conversations.len() as u64;
    let waiting = || async { ledger.checkpoint("discovery.waiting").await.unwrap() };

    // Everything ended an hour ago; a 12 h wait defers the whole partial batch.
    let (summary, (advanced, pending)) = run(Some(Duration::from_secs(12 * 3600))).await;
    assert_eq!(summary.archived, 0);
    assert_eq!(pending, conversations);
    assert!(
        advanced,
        "the checkpoint is not held for waiting conversations"
    );
    let kept = waiting().await.expect("kept in the ledger");
    let kept_conversations: Vec<serde_json::Value> = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept_conversations.len() as u64, conversations);
    assert!(
        !kept.contains("\"ani\"") && !kept.contains("\"dnis\""),
        "{kept}"
    );
    let checkpoint = ledger.checkpoint("discovery").await.unwrap().unwrap();
    let checkpoint = chrono::DateTime::parse_from_rfc3339(&checkpoint).unwrap();
    assert!(
        s.dataset()
            .conversations
            .iter()
            .all(|conv| conv.end < checkpoint - chrono::Duration::minutes(10)),
        "the next poll's window lists none of them"
    );

    // A failed poll keeps them.
    s.set_outage(true);
    let (summary, (advanced, _)) = run(Some(Duration::from_secs(12 * 3600))).await;
    assert!(
        !advanced && summary.discovery_error.is_some(),
        "{summary:?}"
    );
    assert_eq!(waiting().await.as_deref(), Some(kept.as_str()));

    // The wait turned off: resolved and archived, though the window lists none of them.
    s.set_outage(false);
    let (summary, (advanced, pending)) = run(None).await;
    assert!(advanced);
    assert_eq!((summary.archived, pending), (24, 0), "{summary:?}");
    assert_eq!(waiting().await.as_deref(), Some("[]"));
}

#[test]
fn summed_summaries_keep_a_bounded_list_of_reasons() {
    let mut total = archiver::Summary::default();
    for i in 0..1500u64 {
        let mut one = archiver::Summary {
            failed: 1,
            ..archiver::Summary::default()
        };
        one.failures.push(archiver::FailureReport {
            conversation_id: "c".into(),
            recording_id: format!("r{i}"),
            reason: "x".into(),
            unavailable: false,
            kind: archiver::ReportKind::Failed,
        });
        total.absorb(one);
    }
    assert_eq!(total.failed, 1500, "counts keep everything");
    assert_eq!(total.failures.len(), archiver::MAX_REPORTED_FAILURES);
    assert_eq!(total.failures_dropped, 500);
    assert_eq!(
        total.failures.last().unwrap().recording_id,
        "r1499",
        "the newest are kept"
    );
}

/// This machine's clock runs three hours ahead of the source's (or jumped forward): the
/// checkpoint stays at the source's present (minus settle), never at the local clock's, so
/// the next polls still read the three hours the source has not reached yet; the disagreement
/// is reported as a `ClockJump` event.
#[tokio::test]
async fn a_local_clock_ahead_of_the_source_never_moves_the_checkpoint_past_the_source() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 12,
        start: Utc::now() - chrono::Duration::hours(5),
        span: Duration::from_secs(3600),
        clock_offset_secs: -3 * 3600,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let Rig {
        c,
        _dir,
        sink,
        ledger,
        cfg,
    } = rig(&s);
    let settle = Duration::from_secs(60);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        overlap: Duration::from_secs(600),
        settle,
        max_polls: Some(2),
        ..PollSettings::default()
    };
    let (seen, events) = collect(|e| match e {
        archiver::Event::ClockJump { seconds, against } => Some((*seconds, *against)),
        _ => None,
    });
    let total = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll, events)
        .await
        .unwrap();
    assert_eq!(total.archived, 12, "{total:?}");
    let source_now = Utc::now() - chrono::Duration::hours(3);
    let cp = ledger.checkpoint("discovery").await.unwrap().unwrap();
    let cp = chrono::DateTime::parse_from_rfc3339(&cp)
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        cp <= source_now - chrono::Duration::from_std(settle).unwrap()
            && cp > source_now - chrono::Duration::minutes(5),
        "checkpoint {cp}: at the source's present {source_now} minus settle, not this machine's"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the disagreement is reported");
    for (seconds, against) in seen {
        assert_eq!(against, "source");
        assert!((seconds - 10_800).abs() < 120, "{seconds}");
    }
}

#[tokio::test]
async fn the_daemon_writes_the_index_after_its_first_poll() {
    let s = recent_sim().await;
    let r = rig(&s);
    let anchors = tempfile::tempdir().unwrap();
    let anchor = archiver::IndexAnchor::Store {
        sink: Arc::new(sink::LocalDirSink::new(anchors.path())),
        prefix: "anchors/".into(),
    };
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        settle: Duration::ZERO,
        max_polls: Some(3),
        index_prefix: Some("index/".into()),
        index_anchor: Some(anchor.clone()),
        ..PollSettings::default()
    };
    let total = run_continuous(
        r.c.clone(),
        r.sink.clone(),
        DiscoveryQuery::interval,
        r.cfg.clone(),
        poll,
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert!(total.archived > 0);
    // One part (the first poll of the day), listing everything archived by then.
    let parts = r.ledger.index_parts().await.unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0].entries, total.archived);
    let report = archiver::verify_chain(r.sink.as_ref(), "index/", Some(&r.ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(report.clean(), "{:?}", report.problems);
    assert_eq!(report.verified, total.archived);
    // Its digest is anchored outside the store.
    let anchored = anchor.read().await.unwrap();
    assert_eq!(anchored.len(), 1, "{anchored:?}");
    assert_eq!(
        (anchored[0].seq, anchored[0].sha256.clone()),
        (1, parts[0].sha256.clone().unwrap())
    );
}

/// A shutdown (SIGTERM of a rolling deploy) while the poll waits on a batch download job:
/// before, the pipeline broke off without saying its source was not drained, so the poll
/// counted as reconciled: the checkpoint moved past the window (a first poll's whole
/// `--since` span) and `--batch-wait`'s waiting set was replaced by an empty one, with nothing
/// archived. Now such a poll is not done: checkpoint, sweep anchor and waiting set stay.
#[tokio::test]
async fn a_shutdown_while_a_batch_job_runs_leaves_the_window_and_the_waiting_set_as_they_were() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 24,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        // Longer than the test waits: the job is still running when the shutdown comes.
        batch_ready_after: Duration::from_secs(8),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let Rig {
        c,
        sink,
        ledger,
        cfg,
        _dir,
    } = rig(&s);
    let poll = |batch_wait: Option<Duration>| PollSettings {
        start: s.config().start,
        settle: Duration::ZERO,
        max_polls: Some(1),
        batch_wait,
        ..PollSettings::default()
    };
    let none = || Arc::new(archiver::NoEvents) as Arc<dyn archiver::EventHandler>;
    // A 12 h wait defers every conversation (no batch job): they wait in the ledger.
    let first = run_continuous(
        c.clone(),
        sink.clone(),
        DiscoveryQuery::interval,
        cfg.clone(),
        poll(Some(Duration::from_secs(12 * 3600))),
        none(),
    )
    .await
    .unwrap();
    assert_eq!(first.archived, 0);
    let kept = ledger
        .checkpoint("discovery.waiting")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(kept, "[]");
    let checkpoint = ledger.checkpoint("discovery").await.unwrap();
    let anchor = ledger.checkpoint("discovery.sweep").await.unwrap();

    // The wait turned off: the next poll submits a batch job for them and is stopped while
    // the job runs.
    let shutdown = archiver::CancellationToken::new();
    let cfg = ArchiverConfig {
        shutdown: shutdown.clone(),
        drain_timeout: Duration::from_millis(200),
        ..cfg
    };
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        shutdown.cancel();
    });
    let cut = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll(None), none())
        .await
        .unwrap();
    stop.await.unwrap();
    assert_eq!(cut.archived, 0, "{cut:?}");
    assert!(cut.source_incomplete && !cut.success(), "{cut:?}");
    assert_eq!(cut.unreconciled_polls, 1);
    assert!(cut.line().contains("interrupted before discovery finished"));
    assert_eq!(
        ledger
            .checkpoint("discovery.waiting")
            .await
            .unwrap()
            .as_deref(),
        Some(kept.as_str()),
        "the waiting conversations were dropped"
    );
    assert_eq!(ledger.checkpoint("discovery").await.unwrap(), checkpoint);
    assert_eq!(ledger.checkpoint("discovery.sweep").await.unwrap(), anchor);
}

/// A conversation that started just before a UTC midnight, found late (analytics revealed it
/// after the poll that covered it), and a sweep whose window begins after that midnight: the
/// details query returns conversations by start day, so before, no query of the sweep
/// returned it (docs/guarantees.md promised "found by the next sweep at the latest"). The
/// sweep's query across the midnight finds it.
#[tokio::test]
async fn a_sweep_finds_a_late_conversation_that_started_the_utc_day_before_its_window() {
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let midnight = today - chrono::Duration::days(1);
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1,
        // One conversation starting 10 s before the midnight, lasting at least 30 s.
        start: midnight - chrono::Duration::seconds(10),
        span: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let conversation = s.dataset().conversations[0].id.clone();
    s.hide_conversations(vec![conversation]);
    let Rig {
        c, sink, cfg, _dir, ..
    } = rig(&s);
    let poll = PollSettings {
        start: midnight + chrono::Duration::seconds(5),
        overlap: Duration::from_secs(3 * 24 * 3600),
        sweep_every: 1,
        settle: Duration::ZERO,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    let run = || {
        run_continuous(
            c.clone(),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll.clone(),
            Arc::new(archiver::NoEvents),
        )
    };
    assert_eq!(run().await.unwrap().found, 0, "hidden at first");
    s.reveal_all_conversations();
    let sweep = run().await.unwrap();
    assert_eq!((sweep.found, sweep.archived), (1, 1), "{sweep:?}");
}

/// A recording stuck `UPLOADING` for hours after its conversation ended: before, it held the
/// checkpoint at its conversation's start, so every poll read a window growing back to it.
/// Now its conversation waits in the ledger (resolved again at each poll, still reported
/// pending) and the checkpoint moves on; once the upload is done it is archived.
#[tokio::test]
async fn a_recording_stuck_uploading_does_not_hold_the_checkpoint() {
    let now = Utc::now();
    let base = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1,
        start: now - chrono::Duration::hours(10),
        span: Duration::from_millis(1),
        ..SimConfig::default()
    };
    let end = genesys_sim::Dataset::generate(&base).recordings[0].end;
    let ready_at = now + chrono::Duration::seconds(6);
    let s = Simulator::start(SimConfig {
        upload_lag: (ready_at - end).to_std().unwrap(),
        ..base
    })
    .await
    .unwrap();
    let Rig {
        c,
        sink,
        ledger,
        cfg,
        _dir,
    } = rig(&s);
    let poll = PollSettings {
        start: now - chrono::Duration::hours(11),
        overlap: Duration::from_secs(1800),
        sweep_every: 1,
        settle: Duration::ZERO,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    let run = || {
        let (seen, events) = collect(|e| match e {
            archiver::Event::Polled { from, pending, .. } => Some((*from, *pending)),
            _ => None,
        });
        let fut = run_continuous(
            c.clone(),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll.clone(),
            events,
        );
        async move {
            let summary = fut.await.unwrap();
            let polled = seen.lock().unwrap().pop().expect("polled");
            (summary, polled)
        }
    };
    let (_, (_, pending)) = run().await;
    assert_eq!(pending, 1);
    let (second, (from, pending)) = run().await;
    assert_eq!((pending, second.archived), (1, 0));
    assert!(
        from > now - chrono::Duration::hours(1),
        "the second poll read back to {from}: the checkpoint was held"
    );
    let waiting = ledger
        .checkpoint("discovery.waiting")
        .await
        .unwrap()
        .unwrap();
    assert!(
        waiting.contains(&s.dataset().conversations[0].id),
        "{waiting}"
    );

    tokio::time::sleep_until(
        tokio::time::Instant::now() + (ready_at - Utc::now()).to_std().unwrap_or_default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (third, _) = run().await;
    assert_eq!(third.archived, 1, "{third:?}");
    assert_eq!(
        ledger
            .checkpoint("discovery.waiting")
            .await
            .unwrap()
            .as_deref(),
        Some("[]")
    );
}
