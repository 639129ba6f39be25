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
