//! The pipeline against the simulator and a local-directory sink: every fault kind of the
//! simulator is handled as the retry table says, and a second run skips everything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::{ArchiverConfig, Event, archive};
use genesys_media::{DiscoveryQuery, GenesysClient};
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::{sim_client, sim_recording};

async fn sim(n: usize, faults: Vec<FaultSpec>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |c| c.poll_initial = Duration::from_millis(250))
}

fn cfg() -> ArchiverConfig {
    let mut c = ArchiverConfig {
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    c.retry.base_delay = Duration::from_millis(10);
    c.retry.max_delay = Duration::from_millis(100);
    c.retry.max_elapsed = Duration::from_secs(20);
    c
}

fn spec(recording: usize, fault: Fault, times: Option<u32>) -> FaultSpec {
    FaultSpec {
        recording,
        fault,
        times,
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl archiver::EventHandler for Recorder {
    fn handle(&self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

#[tokio::test]
async fn every_fault_kind_is_handled_and_reruns_skip() {
    let faults = vec![
        spec(0, Fault::ExpiredUrl, Some(1)),
        spec(1, Fault::RateLimited, Some(2)),
        spec(2, Fault::ServerError, Some(2)),
        spec(3, Fault::Reset, Some(1)),
        spec(4, Fault::Truncated, Some(1)),
        spec(5, Fault::Corrupt, Some(1)),
        spec(6, Fault::Corrupt, None),
        spec(7, Fault::Slow(Duration::from_millis(5)), None),
        spec(8, Fault::Archived, None),
        spec(9, Fault::ExpiredUrl, None),
    ];
    let s = sim(40, faults).await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalDirSink::new(dir.path()));
    let sink: Arc<dyn ObjectSink> = local.clone();
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let events = Arc::new(Recorder::default());
    let summary = archive(
        c.clone(),
        sink.clone(),
        c.discover(q.clone()),
        cfg(),
        events.clone(),
    )
    .await;
    println!("{}", summary.line());
    for f in &summary.failures {
        println!("  {} {}", f.recording_id, f.reason);
    }
    assert_eq!(summary.found, 40);
    assert_eq!(summary.unavailable, 1, "the archived recording is reported");
    assert_eq!(
        summary.failed, 2,
        "persistent corruption and a URL that stays expired fail"
    );
    assert_eq!(summary.archived, 37);
    let ds = s.dataset();
    let corrupt = summary
        .failures
        .iter()
        .find(|f| f.recording_id == ds.recordings[6].id)
        .expect("corrupt one reported");
    assert!(corrupt.reason.contains("integrity"), "{}", corrupt.reason);
    let expired = summary
        .failures
        .iter()
        .find(|f| f.recording_id == ds.recordings[9].id)
        .expect("expired one reported");
    assert!(expired.reason.contains("refused"), "{}", expired.reason);
    assert!(
        !expired.reason.contains("X-Signature"),
        "no presigned query string in reasons"
    );

    // Everything stored is byte-exact, under the documented key, with tags.
    let tmpl = archiver::KeyTemplate::default();
    for (i, r) in ds.recordings.iter().enumerate() {
        let rec = sim_recording(&s, i);
        let key = tmpl.render(&rec, None).unwrap();
        let head = sink.head(&key).await.unwrap();
        if [6, 8, 9].contains(&i) {
            assert!(head.is_none(), "recording {i} must leave nothing behind");
            continue;
        }
        let head = head.unwrap_or_else(|| panic!("recording {i} stored under {key}"));
        assert_eq!(head.size, r.size);
        assert_eq!(
            head.etag.as_deref(),
            Some(hex(&s.expected_md5(i)).as_str()),
            "recording {i} bytes are exact"
        );
        let tags = sink.tags(&key).await.unwrap().unwrap();
        assert_eq!(tags["recording_id"], r.id);
        assert_eq!(tags["conversation_id"], r.conversation_id);
        for t in ["start_time", "end_time", "media_type"] {
            assert!(!tags[t].is_empty(), "{t} tag set");
        }
    }
    let ev = events.0.lock().unwrap().clone();
    let retried = |id: &str| {
        ev.iter()
            .filter(|e| matches!(e, Event::Retrying { recording_id, .. } if recording_id == id))
            .count()
    };
    for i in [0, 1, 2, 3, 4, 5] {
        assert!(
            retried(&ds.recordings[i].id) >= 1,
            "recording {i} was retried"
        );
    }
    assert_eq!(
        retried(&ds.recordings[6].id),
        1,
        "integrity failures are retried exactly once"
    );

    // A second run downloads nothing new.
    let media_before = s.stats().media_requests;
    let again = archive(
        c.clone(),
        sink.clone(),
        c.discover(q),
        cfg(),
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(again.archived, 0);
    assert_eq!(again.skipped, 37);
    assert_eq!(
        s.stats().media_requests - media_before,
        2 + 4,
        "only the two failed ones are tried again (corrupt: 2 attempts; expired: 1 + 3 refreshes)"
    );
}

#[tokio::test]
async fn other_4xx_is_not_retried_and_5xx_gives_up_within_the_budget() {
    let s = sim(3, vec![spec(0, Fault::ServerError, None)]).await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let mut config = cfg();
    config.retry.max_attempts = 4;
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let t = std::time::Instant::now();
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        config,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(summary.failed, 1);
    assert!(
        summary.failures[0]
            .reason
            .contains("gave up after 4 attempts"),
        "{}",
        summary.failures[0].reason
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(summary.archived, 2);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn old_urls_are_refreshed_before_use() {
    let s = sim(4, vec![]).await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let mut config = cfg();
    config.url_max_age = Duration::ZERO;
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        config,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(summary.archived, 4);
    let submits = s
        .stats()
        .by_route
        .get("POST /api/v2/recording/batchrequests")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        submits,
        1 + 1,
        "one discovery batch plus one refresh job for the four old URLs together"
    );
    assert_eq!(s.stats().media_requests, 4, "no 403 was needed");
}

#[tokio::test]
async fn the_ledger_records_outcomes_and_skips_archived_recordings_without_asking_the_store() {
    let s = sim(
        10,
        vec![
            spec(2, Fault::Corrupt, None),
            spec(3, Fault::ExpiredUrl, None),
            spec(4, Fault::Archived, None),
        ],
    )
    .await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path().join("store")));
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let mut config = cfg();
    config.ledger = Some(archiver::Ledger::open(db.to_str().unwrap()).await.unwrap());
    let first = archive(
        c.clone(),
        sink.clone(),
        c.discover(q.clone()),
        config,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!((first.archived, first.failed, first.unavailable), (7, 2, 1));
    let ledger = archiver::Ledger::open(db.to_str().unwrap()).await.unwrap();
    use archiver::RecordStatus::*;
    let rows = ledger.entries(None).await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.status == Archived).count(), 7);
    let corrupt = rows
        .iter()
        .find(|r| r.recording_id == s.dataset().recordings[2].id)
        .unwrap();
    assert_eq!(
        corrupt.status, Quarantined,
        "persistent integrity failures are quarantined"
    );
    assert_eq!(corrupt.attempts, 2);
    assert!(
        corrupt
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("md5")
    );
    let expired = rows
        .iter()
        .find(|r| r.recording_id == s.dataset().recordings[3].id)
        .unwrap();
    assert_eq!(expired.status, Failed);
    for r in rows.iter().filter(|r| r.status == Archived) {
        let sr = s.dataset().recording(&r.recording_id).unwrap();
        assert_eq!(r.size, Some(sr.size));
        assert_eq!(
            r.md5.as_deref(),
            Some(hex(&s.expected_md5(sr.index)).as_str())
        );
    }

    // Second run against an empty store: the ledger alone decides that the seven are done.
    let empty: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path().join("elsewhere")));
    let mut config = cfg();
    config.ledger = Some(ledger);
    let media_before = s.stats().media_requests;
    let second = archive(
        c.clone(),
        empty,
        c.discover(q),
        config,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(second.skipped, 7);
    assert_eq!(
        (second.quarantined, second.failed),
        (1, 1),
        "the quarantined recording waits for an operator; the failed one is retried"
    );
    assert_eq!(
        s.stats().media_requests - media_before,
        4,
        "only the failed recording is downloaded again (1 + 3 URL refreshes)"
    );
}

/// An expiry storm: a third of the URLs are refused (403) on first use. Workers do not wait
/// for refreshes; the refused recordings are refreshed together, one batch job for all of
/// them (at most 100 per job), and then every recording is archived.
#[tokio::test]
async fn expired_urls_are_refreshed_together_in_one_batch_job() {
    let n = 60;
    let faults = (0..n)
        .step_by(3)
        .map(|i| spec(i, Fault::ExpiredUrl, Some(1)))
        .collect();
    let s = sim(n, faults).await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg(),
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(summary.archived, n as u64, "{summary:?}");
    assert!(summary.success(), "{summary:?}");
    let submits = s
        .stats()
        .by_route
        .get("POST /api/v2/recording/batchrequests")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        submits,
        1 + 1,
        "one discovery batch job plus one refresh job for the 20 refused URLs (was one each)"
    );
    assert_eq!(s.stats().media_requests, (n + n / 3) as u64);
}

/// One recording's batch results: the first file with a URL, the second with `errorMsg` while
/// the recording is `AVAILABLE`. Before, the failed result was dropped once any result had a
/// URL: one object stored, the conversation settled, exit 0 (a silent gap). Now the recording
/// waits, reported pending, and the run is not clean.
#[tokio::test]
async fn a_recording_whose_second_file_failed_is_pending_not_settled() {
    let s = sim(5, vec![spec(2, Fault::SecondFileFailed, None)]).await;
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg(),
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!((summary.archived, summary.pending), (4, 1), "{summary:?}");
    let report = &summary.failures[0];
    assert_eq!(report.recording_id, s.dataset().recordings[2].id);
    assert!(report.reason.contains("no URL"), "{}", report.reason);
    assert!(!summary.success());
}

/// A batch request answered `Completed` with `resultCount` and `expectedResultCount` counting
/// a result its `results` leave out: before, the counts were trusted and the missing
/// recording never archived, exit 0. Now the job is polled again until the results are there.
#[tokio::test]
async fn batch_results_lagging_their_counts_are_polled_again() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 6,
        results_lag_polls: 1,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = client(&s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg(),
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!((summary.found, summary.archived), (6, 6), "{summary:?}");
    assert!(summary.success());
}
