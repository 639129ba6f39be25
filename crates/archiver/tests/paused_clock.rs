//! The retry table's waits, measured on a paused tokio clock: `Retry-After` is honoured to the
//! second and 5xx backoff grows, while the test itself takes almost no real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::{ArchiverConfig, Event, archive};
use genesys_media::{DiscoveryQuery, GenesysClient};
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::sim_client;

async fn sim(faults: Vec<FaultSpec>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 3,
        faults,
        // The simulator measures batch readiness on the real clock; on a paused clock the
        // client's polls would run out before it is ready.
        batch_ready_after: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |_| {})
}

#[derive(Default)]
struct Waits(Mutex<Vec<(String, Duration)>>);

impl archiver::EventHandler for Waits {
    fn handle(&self, e: &Event) {
        if let Event::Retrying {
            recording_id, wait, ..
        } = e
        {
            self.0.lock().unwrap().push((recording_id.clone(), *wait));
        }
    }
}

async fn run(
    s: &SimHandle,
) -> (
    archiver::Summary,
    Vec<(String, Duration)>,
    Duration,
    Duration,
) {
    let c = client(s);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let waits = Arc::new(Waits::default());
    let cfg = ArchiverConfig {
        verify_source_etag: true,
        workers: archiver::Workers::Fixed(1),
        ..ArchiverConfig::default()
    };
    let real = std::time::Instant::now();
    let virt = tokio::time::Instant::now();
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(c.clone(), sink, c.discover(q), cfg, waits.clone()).await;
    let w = waits.0.lock().unwrap().clone();
    (summary, w, virt.elapsed(), real.elapsed())
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out_exactly_on_a_paused_clock() {
    let s = sim(vec![FaultSpec {
        recording: 1,
        fault: Fault::RateLimited,
        times: Some(3),
    }])
    .await;
    let (summary, waits, virt, real) = run(&s).await;
    assert_eq!(summary.archived, 3, "{summary:?}");
    let rid = &s.dataset().recordings[1].id;
    let mine: Vec<Duration> = waits
        .iter()
        .filter(|(r, _)| r == rid)
        .map(|(_, w)| *w)
        .collect();
    assert_eq!(
        mine,
        vec![Duration::from_secs(1); 3],
        "three 429s, each waited for its Retry-After of 1 s"
    );
    assert!(virt >= Duration::from_secs(3), "virtual time {virt:?}");
    assert!(
        real < Duration::from_secs(3),
        "real time {real:?}: no real sleeping"
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_with_growing_jittered_waits() {
    let s = sim(vec![FaultSpec {
        recording: 0,
        fault: Fault::ServerError,
        times: Some(4),
    }])
    .await;
    let (summary, waits, virt, real) = run(&s).await;
    assert_eq!(summary.archived, 3, "{summary:?}");
    let w: Vec<Duration> = waits.iter().map(|(_, w)| *w).collect();
    assert_eq!(w.len(), 4, "four 503s, four waits: {w:?}");
    // Full jitter under a doubling ceiling: attempt k waits at most base * 2^(k-1).
    let base = ArchiverConfig::default().retry.base_delay;
    for (k, d) in w.iter().enumerate() {
        assert!(*d <= base * 2u32.pow(k as u32), "wait {k}: {d:?}");
    }
    let total: Duration = w.iter().sum();
    assert!(virt >= total, "virtual {virt:?} covers the waits {total:?}");
    assert!(real < Duration::from_secs(5), "real time {real:?}");
}

#[tokio::test(start_paused = true)]
async fn a_persistent_429_gives_up_once_the_time_budget_is_spent() {
    let s = sim(vec![FaultSpec {
        recording: 2,
        fault: Fault::RateLimited,
        times: None,
    }])
    .await;
    let (summary, waits, virt, real) = run(&s).await;
    assert_eq!((summary.archived, summary.failed), (2, 1), "{summary:?}");
    let policy = ArchiverConfig::default().retry;
    assert!(
        waits.len() as u32 <= policy.max_attempts,
        "bounded attempts: {}",
        waits.len()
    );
    assert!(
        virt <= policy.max_elapsed + Duration::from_secs(60),
        "gave up within the budget: {virt:?}"
    );
    assert!(real < Duration::from_secs(10), "real time {real:?}");
}

/// A transfer that runs far longer than the retry budget and then breaks is still retried:
/// the budget counts the waits between attempts, not the transfer time.
#[tokio::test(start_paused = true)]
async fn a_long_transfer_that_fails_once_is_retried() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1,
        // 16 blocks of 64 KiB: the reset comes after 8 blocks at 60 s each, 480 s in.
        size_range: (1 << 20, 1 << 20),
        faults: vec![FaultSpec {
            recording: 0,
            fault: Fault::SlowReset(Duration::from_secs(60)),
            times: Some(1),
        }],
        batch_ready_after: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (summary, waits, virt, _) = run(&s).await;
    let budget = ArchiverConfig::default().retry.max_elapsed;
    assert!(
        virt > budget,
        "the first transfer took {virt:?}, past the {budget:?} budget"
    );
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(waits.len(), 1, "one retry: {waits:?}");
}
