//! Continuous mode against the simulator: the checkpoint advances, and the overlap window
//! catches recordings that analytics reports late.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, PollSettings, run_continuous};
use chrono::Utc;
use genesys_media::{DiscoveryQuery, GenesysClient};
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::sim_client;

async fn recent_sim() -> SimHandle {
    // Conversations over the last two hours, so "now" is just after the data.
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 24,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |c| c.poll_initial = Duration::from_millis(100))
}

/// A client of the simulator, a fresh directory store and an in-memory ledger.
struct Rig {
    c: GenesysClient,
    _dir: tempfile::TempDir,
    sink: Arc<dyn ObjectSink>,
    ledger: Ledger,
    cfg: ArchiverConfig,
}

fn rig(s: &SimHandle) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::in_memory().unwrap();
    Rig {
        c: client(s),
        sink: Arc::new(LocalDirSink::new(dir.path())),
        _dir: dir,
        cfg: ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        ledger,
    }
}

/// An event handler keeping what `pick` returns for each event.
fn collect<T: Send + 'static>(
    pick: impl Fn(&archiver::Event) -> Option<T> + Send + Sync + 'static,
) -> (
    Arc<std::sync::Mutex<Vec<T>>>,
    Arc<dyn archiver::EventHandler>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let handler = Arc::new(move |e: &archiver::Event| {
        if let Some(v) = pick(e) {
            keep.lock().unwrap().push(v);
        }
    });
    (seen, handler)
}

/// Hides the latest quarter of the conversations, polls once, reveals them, polls again with
/// `overlap`; returns (archived in poll 1, archived in poll 2).
async fn late_arrivals(overlap: Duration) -> (u64, u64, usize) {
    let s = recent_sim().await;
    let mut convs: Vec<_> = s.dataset().conversations.clone();
    convs.sort_by_key(|c| c.start);
    let late: Vec<String> = convs[convs.len() * 3 / 4..]
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let late_recordings = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| late.contains(&r.conversation_id))
        .count();
    s.hide_conversations(late.clone());
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
    let mut c_cfg = c.config().clone();
    c_cfg.retry.max_elapsed = Duration::from_millis(300);
    c_cfg.retry.base_delay = Duration::from_millis(10);
    let c = GenesysClient::new(c_cfg).unwrap();
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

/// A recording that keeps failing (its media URL is always refused) is retried with backoff
/// and then given up into quarantine with the reason, where an operator sees it; before, it
/// stayed `failed` and, past the attempt bound, was neither retried nor reported.
#[tokio::test]
async fn failing_rows_are_retried_with_backoff_then_quarantined() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 4,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        faults: vec![genesys_sim::FaultSpec {
            recording: 0,
            fault: genesys_sim::Fault::ExpiredUrl,
            times: None,
        }],
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
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(20),
        // Every poll reads the recording again (and claims it: a failed row is retried).
        overlap: Duration::from_secs(3 * 3600),
        settle: Duration::ZERO,
        // Each try makes 4 attempts (1 + 3 URL refreshes): given up after the second.
        retry_failed_below_attempts: 6,
        max_polls: Some(4),
        ..PollSettings::default()
    };
    run_continuous(
        c.clone(),
        sink.clone(),
        DiscoveryQuery::interval,
        cfg.clone(),
        poll.clone(),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    let rid = &s.dataset().recordings[0].id;
    let row = ledger.entry(rid).await.unwrap().unwrap();
    assert_eq!(row.status, archiver::RecordStatus::Quarantined, "{row:?}");
    let reason = row.last_error.unwrap_or_default();
    assert!(reason.starts_with("gave up after"), "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    // Given up means no more spending on it: further polls do not download it again.
    let before = s.stats().media_requests;
    let more = PollSettings {
        max_polls: Some(5),
        ..poll
    };
    run_continuous(
        c,
        sink,
        DiscoveryQuery::interval,
        cfg,
        more,
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(s.stats().media_requests, before);
}

#[test]
fn retry_backoff_doubles_from_the_interval_and_is_capped() {
    let i = Duration::from_secs(300);
    assert_eq!(archiver::retry_backoff(i, 0), i);
    assert_eq!(archiver::retry_backoff(i, 1), i);
    assert_eq!(archiver::retry_backoff(i, 3), i * 4);
    assert_eq!(archiver::retry_backoff(i, 60), archiver::MAX_RETRY_BACKOFF);
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

/// Polls over a window with nothing new: the first poll resolves every conversation (also
/// the unrecorded ones); the next ones find them all settled in the ledger and spend only
/// the analytics pages: no batch job. Each poll says what it spent.
#[tokio::test]
async fn polls_with_nothing_new_spend_no_batch_job() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 24,
        unrecorded_conversations: 10,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let conversations = s.dataset().conversations.len() as u64;
    let Rig {
        c, _dir, sink, cfg, ..
    } = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        // Every poll re-reads the whole window.
        overlap: Duration::from_secs(4 * 3600),
        max_polls: Some(3),
        ..PollSettings::default()
    };
    let (polls, events) = collect(|e| match e {
        archiver::Event::Polled {
            api_calls,
            known_conversations,
            found,
            ..
        } => Some((api_calls.clone(), *known_conversations, *found)),
        _ => None,
    });
    let total = run_continuous(c, sink, DiscoveryQuery::interval, cfg, poll, events)
        .await
        .unwrap();
    assert_eq!(total.archived, 24, "{total:?}");
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 3);
    let jobs = |calls: &std::collections::BTreeMap<String, u64>| -> u64 {
        calls
            .iter()
            .filter(|(k, _)| k.contains("batchrequests"))
            .map(|(_, n)| n)
            .sum()
    };
    assert!(
        jobs(&polls[0].0) > 0,
        "the first poll resolves: {:?}",
        polls[0]
    );
    for (calls, known, found) in &polls[1..] {
        assert_eq!(jobs(calls), 0, "nothing new, no batch job: {calls:?}");
        assert_eq!(*known, conversations, "every conversation is settled");
        assert_eq!(*found, 0);
        assert!(
            calls.keys().all(|k| k.contains("analytics")),
            "only analytics pages: {calls:?}"
        );
    }
}

/// The daemon's steady state with the default overlap (1 h) and settle: conversations keep
/// arriving (an org's conversations revealed in ten slices in the order they ended, one poll
/// after each). Every poll spends the analytics pages of its window and batch jobs only for
/// the new conversations (at most one more than a job per 100 of them). Prints the calls per
/// 1,000 new recordings (docs/benchmarks.md quotes it).
#[tokio::test]
async fn steady_state_polls_resolve_only_new_conversations() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1000,
        // Conversations that all ended 15 to 55 minutes ago: inside every poll's overlap.
        start: Utc::now() - chrono::Duration::minutes(55),
        span: Duration::from_secs(10 * 60),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // They appear in the order they ended, as analytics shows them.
    let mut convs = s.dataset().conversations.clone();
    convs.sort_by_key(|c| c.end);
    s.hide_conversations(convs.iter().map(|c| c.id.clone()));
    let Rig {
        c,
        _dir,
        sink,
        ledger,
        cfg,
    } = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    let slices = 10;
    let per = convs.len().div_ceil(slices);
    let (mut steady_calls, mut steady_recordings) = (0u64, 0u64);
    let mut by_endpoint = std::collections::BTreeMap::new();
    for (i, slice) in convs.chunks(per).enumerate() {
        s.reveal_conversations(slice.iter().map(|c| c.id.clone()));
        let (seen, events) = collect(|e| match e {
            archiver::Event::Polled { api_calls, .. } => Some(api_calls.clone()),
            _ => None,
        });
        let summary = run_continuous(
            c.clone(),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll.clone(),
            events,
        )
        .await
        .unwrap();
        let calls = seen.lock().unwrap().pop().expect("polled");
        let jobs: u64 = calls
            .iter()
            .filter(|(k, _)| k.starts_with("POST") && k.contains("batchrequests"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            jobs as usize <= slice.len().div_ceil(100) + 1,
            "poll {i}: {jobs} batch jobs for {} new conversations: {calls:?}",
            slice.len()
        );
        assert_eq!(summary.found, summary.archived, "{summary:?}");
        if i > 0 {
            steady_calls += calls.values().sum::<u64>();
            steady_recordings += summary.archived;
            for (k, n) in &calls {
                *by_endpoint.entry(k.clone()).or_insert(0) += n;
            }
        }
    }
    assert_eq!(
        ledger
            .entries(Some(archiver::RecordStatus::Archived))
            .await
            .unwrap()
            .len(),
        1000
    );
    println!(
        "steady state: {steady_calls} API calls for {steady_recordings} new recordings = {:.1} per 1,000 ({by_endpoint:?})",
        steady_calls as f64 * 1000.0 / steady_recordings as f64
    );
}

#[tokio::test]
async fn the_daemon_writes_the_index_after_its_first_poll() {
    let s = recent_sim().await;
    let r = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        settle: Duration::ZERO,
        max_polls: Some(3),
        index_prefix: Some("index/".into()),
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
    let report = archiver::verify_chain(r.sink.as_ref(), "index/", Some(&parts), 4)
        .await
        .unwrap();
    assert!(report.clean(), "{:?}", report.problems);
    assert_eq!(report.verified, total.archived);
}
