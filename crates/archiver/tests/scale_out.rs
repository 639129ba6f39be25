//! Shared work (`PollSettings::scale_out`) against the simulator: chunks in the ledger are
//! durable, taken over from a stopped instance, and kept (never dropped) when they cannot be
//! resolved. Three instances on a real PostgreSQL ledger: `tests/tests/scale_out_postgres.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, PollSettings, RecordStatus, ScaleOut, run_continuous};
use chrono::Utc;
use futures::StreamExt;
use genesys_media::{DiscoveryQuery, GenesysClient, Listed};
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::{HookedSink, sim_client};

const RECORDINGS: usize = 250;

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: RECORDINGS,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |c| c.poll_initial = Duration::from_millis(50))
}

fn poll(s: &SimHandle, interval: Duration) -> PollSettings {
    PollSettings {
        start: s.config().start,
        interval,
        max_polls: Some(1),
        scale_out: Some(ScaleOut {
            chunk_check: Duration::from_millis(20),
        }),
        ..PollSettings::default()
    }
}

/// One `run_continuous` of instance `instance` (one poll, then the chunks that are due).
async fn run_instance(
    s: &SimHandle,
    sink: &Arc<dyn ObjectSink>,
    ledger: &Ledger,
    instance: &str,
) -> archiver::Summary {
    run_continuous(
        client(s),
        sink.clone(),
        DiscoveryQuery::interval,
        config(ledger, instance),
        poll(s, Duration::from_millis(100)),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap()
}

fn config(ledger: &Ledger, instance: &str) -> ArchiverConfig {
    ArchiverConfig {
        ledger: Some(ledger.clone()),
        instance_id: instance.into(),
        ..ArchiverConfig::default()
    }
}

/// Lists the simulator's window into the ledger as chunks, the way the listing instance does.
async fn list_into(s: &SimHandle, ledger: &Ledger, name: &str) -> usize {
    let c = client(s);
    let q = DiscoveryQuery::interval(s.config().start, Utc::now());
    let mut listed = std::pin::pin!(c.list_known(q, None));
    let mut chunks = 0;
    while let Some(item) = listed.next().await {
        if let Listed::Conversations(convs) = item.unwrap() {
            assert!(convs.len() <= 100);
            ledger.add_chunk(name, &convs).await.unwrap();
            chunks += 1;
        }
    }
    chunks
}

async fn archived(ledger: &Ledger) -> usize {
    ledger
        .entries(Some(RecordStatus::Archived))
        .await
        .unwrap()
        .len()
}

/// An instance stopped while holding a chunk: nobody else takes it while its lease lives (the
/// listing skips its conversations as queued, without a batch job), and another instance
/// takes it over once the lease expired. Every recording archived once.
#[tokio::test]
async fn a_stopped_instances_chunk_is_taken_over_when_its_lease_expires() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    assert!(chunks >= 2, "{chunks} chunks");
    // The stopped instance's claim (a lease long enough to outlast the first run even on a
    // slow machine).
    let lease = Duration::from_secs(6);
    let claimed = tokio::time::Instant::now();
    let held = ledger
        .claim_chunk(&name, "stopped", lease)
        .await
        .unwrap()
        .expect("a chunk");
    let backlog = ledger.chunk_backlog(&name).await.unwrap();
    assert_eq!(backlog.chunks as usize, chunks);

    let before = s.stats().api_requests;
    let first = run_instance(&s, &sink, &ledger, "b").await;
    let left = ledger.chunk_backlog(&name).await.unwrap();
    assert_eq!(left.chunks, 1, "only the held chunk is left: {left:?}");
    assert_eq!(left.conversations as usize, held.conversations.len());
    assert!(
        first.known_conversations >= held.conversations.len() as u64,
        "the listing skipped the queued conversations: {first:?}"
    );
    let jobs = s
        .stats()
        .by_route
        .iter()
        .filter(|(k, _)| k.starts_with("POST") && k.contains("batchrequests"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(
        jobs as usize,
        chunks - 1,
        "one batch job per chunk worked, none for the listing (calls {} since start)",
        s.stats().api_requests - before
    );

    assert!(
        claimed.elapsed() < lease,
        "the first run outlasted the lease"
    );
    tokio::time::sleep_until(claimed + lease + Duration::from_millis(100)).await;
    let second = run_instance(&s, &sink, &ledger, "b").await;
    assert_eq!(ledger.chunk_backlog(&name).await.unwrap().chunks, 0);
    assert_eq!(archived(&ledger).await, RECORDINGS);
    assert_eq!(first.archived + second.archived, RECORDINGS as u64);
    assert_eq!(
        s.stats().media_requests,
        RECORDINGS as u64,
        "no recording downloaded twice"
    );
}

/// Resolving fails (the platform is down): every chunk is kept with the error, counted as an
/// attempt, and archived on a later poll once the platform is back. Nothing is dropped.
#[tokio::test]
async fn chunks_that_cannot_be_resolved_are_kept_and_tried_again() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    s.set_outage(true);
    let c = sim_client(&s, |c| {
        c.poll_initial = Duration::from_millis(50);
        c.retry.max_attempts = 2;
        c.retry.base_delay = Duration::from_millis(10);
        c.retry.max_delay = Duration::from_millis(50);
    });
    let down = run_continuous(
        c.clone(),
        sink.clone(),
        DiscoveryQuery::interval,
        config(&ledger, "a"),
        poll(&s, Duration::from_millis(200)),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(down.archived, 0);
    let kept = ledger.chunk_backlog(&name).await.unwrap();
    assert_eq!(kept.chunks as usize, chunks, "{kept:?}");
    assert!(
        kept.last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "the reason is kept: {kept:?}"
    );
    assert!(kept.earliest_start.is_some());

    s.set_outage(false);
    // Due again after the backoff (one poll interval for a first failure).
    tokio::time::sleep(Duration::from_millis(250)).await;
    let up = run_continuous(
        c,
        sink,
        DiscoveryQuery::interval,
        config(&ledger, "a"),
        poll(&s, Duration::from_millis(200)),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(ledger.chunk_backlog(&name).await.unwrap().chunks, 0);
    assert_eq!(up.archived, RECORDINGS as u64, "{up:?}");
    assert_eq!(archived(&ledger).await, RECORDINGS);
}

/// One listing per window: while one instance holds the listing lease nobody else lists; after
/// a completed listing the window is not listed again before the gap has passed.
#[tokio::test]
async fn the_listing_lease_admits_one_lister() {
    let l = Ledger::in_memory().unwrap();
    let lease = Duration::from_secs(60);
    let gap = Duration::from_millis(300);
    assert!(l.take_listing("w", "a", lease, gap).await.unwrap());
    assert!(!l.take_listing("w", "b", lease, gap).await.unwrap());
    assert!(
        l.take_listing("w", "a", lease, gap).await.unwrap(),
        "renewed by its holder"
    );
    assert!(
        l.take_listing("other", "b", lease, gap).await.unwrap(),
        "names are independent"
    );
    l.end_listing("w", "a", true).await.unwrap();
    assert!(
        !l.take_listing("w", "b", lease, gap).await.unwrap(),
        "listed just now"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(l.take_listing("w", "b", lease, gap).await.unwrap());
    // A listing that did not complete leaves the window to be listed at once.
    l.end_listing("w", "b", false).await.unwrap();
    assert!(l.take_listing("w", "a", lease, gap).await.unwrap());
    // An expired lease is taken over.
    let l2 = Ledger::in_memory().unwrap();
    assert!(
        l2.take_listing("w", "a", Duration::from_millis(100), gap)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(l2.take_listing("w", "b", lease, gap).await.unwrap());
}

/// A stale chunk holder (its lease expired; another instance took the chunk over and finished
/// it) that then keeps the chunk for later writes nothing: before, its members were inserted
/// anyway, pointing at a chunk nobody works, and their conversations looked queued forever
/// (never listed again, never archived).
#[tokio::test]
async fn a_stale_holder_keeping_a_finished_chunk_leaves_nothing_queued() {
    let s = sim().await;
    let ledger = Ledger::in_memory().unwrap();
    assert!(list_into(&s, &ledger, "w").await >= 1);
    let short = Duration::from_millis(50);
    let a = ledger.claim_chunk("w", "a", short).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The SQLite ledger is one process's: any lease but the caller's is from a dead run.
    let b = ledger
        .claim_chunk("w", "b", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.id, b.id, "the oldest chunk, taken over");
    // The stale holder cannot finish it either: the new holder's view of it counts.
    assert!(!ledger.finish_chunk(a.id, "a").await.unwrap());
    assert_eq!(ledger.chunk_backlog("w").await.unwrap().leased, 1);
    let members: Vec<String> = a
        .conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect();
    assert_eq!(
        ledger
            .listing_memory("w", archiver::LateWindow::default())
            .settled(&members)
            .await
            .len(),
        members.len(),
        "a refused finish keeps the chunk's conversations queued"
    );
    assert!(ledger.finish_chunk(b.id, "b").await.unwrap());
    ledger
        .retry_chunk(
            a.id,
            "a",
            &a.conversations,
            Some("503".into()),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let ids: Vec<String> = a
        .conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect();
    let queued = ledger
        .listing_memory("w", archiver::LateWindow::default())
        .settled(&ids)
        .await;
    assert!(
        queued.is_empty(),
        "{} conversations look queued in no chunk",
        queued.len()
    );
}

/// Instances of a rolling deploy stopped mid-work. The lister stopped while the listing waits
/// (here on a 429's `Retry-After`): before, it ended the listing as complete and moved the
/// checkpoint past a window it never listed. A worker stopped while its chunk's batch job
/// runs: before, it waited for the job, then finished (removed) the chunk without archiving a
/// recording of it. Now the window stays unlisted (any instance lists it at once) and the
/// chunk stays in the ledger.
#[tokio::test]
async fn instances_stopped_mid_listing_or_mid_chunk_leave_the_work_in_the_ledger() {
    let slow = |cfg: SimConfig| async move {
        Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            recordings: RECORDINGS,
            start: Utc::now() - chrono::Duration::hours(2),
            span: Duration::from_secs(3600),
            ..cfg
        })
        .await
        .unwrap()
    };
    let stopped_after = |cfg: ArchiverConfig, after: Duration| {
        let shutdown = archiver::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            stop.cancel();
        });
        ArchiverConfig {
            shutdown,
            drain_timeout: Duration::from_millis(100),
            ..cfg
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let name = PollSettings::default().checkpoint;
    // Polls a minute apart: a completed listing would keep others from listing for 45 s.
    let interval = Duration::from_secs(60);

    // The lister: its first details query is throttled for 4 s; stopped after 1 s.
    let s = slow(SimConfig {
        throttle_first_api_calls: 1,
        retry_after_secs: 4,
        ..SimConfig::default()
    })
    .await;
    let ledger = Ledger::in_memory().unwrap();
    let cut = run_continuous(
        client(&s),
        sink.clone(),
        DiscoveryQuery::interval,
        stopped_after(config(&ledger, "lister"), Duration::from_secs(1)),
        poll(&s, interval),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert!(
        cut.source_incomplete && cut.unreconciled_polls == 1,
        "{cut:?}"
    );
    assert_eq!(ledger.checkpoint(&name).await.unwrap(), None);
    assert!(
        ledger
            .take_listing(&name, "next", Duration::from_secs(60), interval * 3 / 4)
            .await
            .unwrap(),
        "the window counts as listed"
    );

    // A worker: the chunks' batch jobs take 8 s; stopped after 1.5 s.
    let s = slow(SimConfig {
        batch_ready_after: Duration::from_secs(8),
        ..SimConfig::default()
    })
    .await;
    let ledger = Ledger::in_memory().unwrap();
    let chunks = list_into(&s, &ledger, &name).await;
    let cut = run_continuous(
        client(&s),
        sink,
        DiscoveryQuery::interval,
        stopped_after(config(&ledger, "worker"), Duration::from_millis(1500)),
        poll(&s, interval),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(cut.archived, 0);
    assert!(cut.source_incomplete && !cut.success(), "{cut:?}");
    let kept = ledger.chunk_backlog(&name).await.unwrap();
    assert_eq!(
        kept.chunks as usize, chunks,
        "a chunk was finished unworked"
    );
    assert_eq!(archived(&ledger).await, 0);
}

fn status_polls(s: &SimHandle) -> u64 {
    s.stats()
        .by_route
        .get("GET /api/v2/recording/batchrequests/{id}")
        .copied()
        .unwrap_or(0)
}

fn batch_jobs(s: &SimHandle) -> u64 {
    s.stats()
        .by_route
        .get("POST /api/v2/recording/batchrequests")
        .copied()
        .unwrap_or(0)
}

/// A simulator whose batch jobs are ready at once, and a directory store whose writes take
/// 50 ms each (a store far away); `jobs_seen` notes, for each write in order, how many batch
/// jobs the simulator had been given when it began.
struct SlowStore {
    sim: Arc<SimHandle>,
    sink: Arc<dyn ObjectSink>,
    jobs_seen: Arc<Mutex<Vec<u64>>>,
    _dir: tempfile::TempDir,
}

async fn slow_store() -> SlowStore {
    let sim = Arc::new(
        Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            recordings: RECORDINGS,
            start: Utc::now() - chrono::Duration::hours(2),
            span: Duration::from_secs(3600),
            batch_ready_after: Duration::ZERO,
            ..SimConfig::default()
        })
        .await
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let jobs_seen = Arc::new(Mutex::new(Vec::new()));
    let mut store = HookedSink::new(Arc::new(LocalDirSink::new(dir.path())));
    let (s, seen) = (sim.clone(), jobs_seen.clone());
    store.before_put = Some(Arc::new(move |_key: String| {
        seen.lock().unwrap().push(batch_jobs(&s));
        Box::pin(tokio::time::sleep(Duration::from_millis(50)))
    }));
    SlowStore {
        sim,
        sink: Arc::new(store),
        jobs_seen,
        _dir: dir,
    }
}

/// The next chunk's batch job runs while the current chunk's recordings are archived, so the
/// workers never wait out a batch job between chunks. Before, a chunk was claimed and
/// resolved only once the previous one was done: the second job came after the first chunk's
/// last write (100 or more writes), and each instance of a backfill across a real network sat
/// idle for a batch job per chunk.
#[tokio::test]
async fn the_next_chunk_is_resolved_while_the_current_one_archives() {
    let store = slow_store().await;
    let (s, sink) = (store.sim.clone(), store.sink.clone());
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    assert!(chunks >= 3, "{chunks} chunks");
    let summary = run_instance(&s, &sink, &ledger, "a").await;
    assert!(summary.success(), "{summary:?}");
    assert_eq!(archived(&ledger).await, RECORDINGS);
    assert_eq!(ledger.chunk_backlog(&name).await.unwrap().chunks, 0);
    assert_eq!(s.stats().media_requests, RECORDINGS as u64);
    assert_eq!(batch_jobs(&s), chunks as u64, "one batch job per chunk");
    let seen = store.jobs_seen.lock().unwrap().clone();
    let before_second = seen.iter().take_while(|&&jobs| jobs < 2).count();
    // The first chunk holds 100 conversations, so at least 100 recordings.
    assert!(
        before_second < 60,
        "the second chunk's batch job came after {before_second} writes of the first chunk"
    );
}

/// An instance stopped while it archives a chunk and holds the next one resolved ahead: both
/// chunks stay in the ledger (nothing finished unworked), the run is not clean, and the next
/// instance archives the rest, every recording once.
#[tokio::test]
async fn a_chunk_resolved_ahead_is_kept_when_the_instance_stops() {
    let store = slow_store().await;
    let (s, sink) = (store.sim.clone(), store.sink.clone());
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    let shutdown = archiver::CancellationToken::new();
    let stop = shutdown.clone();
    let watched = s.clone();
    tokio::spawn(async move {
        // Stopped once the second chunk's job was done (its results read: the chunk is held
        // ahead) while the first chunk's recordings are still being written.
        while status_polls(&watched) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
    });
    let cut = run_continuous(
        client(&s),
        sink.clone(),
        DiscoveryQuery::interval,
        ArchiverConfig {
            shutdown,
            drain_timeout: Duration::from_millis(100),
            ..config(&ledger, "stopped")
        },
        poll(&s, Duration::from_secs(60)),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert!(!cut.success(), "{cut:?}");
    assert!(cut.archived < RECORDINGS as u64, "{cut:?}");
    // Every conversation with a recording not archived is still in a chunk.
    let done: HashSet<String> = ledger
        .entries(Some(RecordStatus::Archived))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.recording_id)
        .collect();
    let open: HashSet<&str> = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| !done.contains(&r.id))
        .map(|r| r.conversation_id.as_str())
        .collect();
    let kept = ledger.chunk_backlog(&name).await.unwrap();
    assert!(
        kept.conversations as usize >= open.len() && kept.chunks >= 2,
        "{} conversations wait for a recording but the ledger keeps {kept:?} of {chunks} chunks",
        open.len()
    );
    let rest = run_instance(&s, &sink, &ledger, "next").await;
    assert!(rest.success(), "{rest:?}");
    assert_eq!(archived(&ledger).await, RECORDINGS);
    assert_eq!(ledger.chunk_backlog(&name).await.unwrap().chunks, 0);
}

/// Two instances with a short lease (800 ms) on a slow store: a chunk held ahead while the
/// current one is archived keeps its lease, so the other instance never takes it over and
/// resolves it again. Every chunk gets one batch job and every recording one download.
#[tokio::test]
async fn a_chunk_held_ahead_keeps_its_lease() {
    let store = slow_store().await;
    let (s, sink) = (store.sim.clone(), store.sink.clone());
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    let short = |instance: &str| ArchiverConfig {
        lease: Duration::from_millis(800),
        ..config(&ledger, instance)
    };
    let run = |cfg: ArchiverConfig| {
        run_continuous(
            client(&s),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg,
            poll(&s, Duration::from_millis(100)),
            Arc::new(archiver::NoEvents),
        )
    };
    let (a, b) = tokio::join!(run(short("a")), run(short("b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.archived + b.archived, RECORDINGS as u64, "{a:?} {b:?}");
    assert_eq!(archived(&ledger).await, RECORDINGS);
    assert_eq!(batch_jobs(&s), chunks as u64, "a chunk was resolved twice");
    assert_eq!(s.stats().media_requests, RECORDINGS as u64);
    assert_eq!(ledger.chunk_backlog(&name).await.unwrap().chunks, 0);
}

/// A chunk held ahead longer than a media URL may be trusted (`url_max_age`, here 300 ms)
/// gets its URLs refreshed before they are used: their age counts from the chunk's batch job,
/// not from when the archiver took the recordings.
#[tokio::test]
async fn urls_of_a_chunk_held_ahead_age_from_its_batch_job() {
    let store = slow_store().await;
    let (s, sink) = (store.sim.clone(), store.sink.clone());
    let ledger = Ledger::in_memory().unwrap();
    let name = PollSettings::default().checkpoint;
    let chunks = list_into(&s, &ledger, &name).await;
    let summary = run_continuous(
        client(&s),
        sink,
        DiscoveryQuery::interval,
        ArchiverConfig {
            url_max_age: Duration::from_millis(300),
            ..config(&ledger, "a")
        },
        poll(&s, Duration::from_millis(100)),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert!(summary.success(), "{summary:?}");
    assert_eq!(archived(&ledger).await, RECORDINGS);
    // Each chunk after the first waited about a chunk's work (over a second) ahead.
    assert!(
        batch_jobs(&s) > chunks as u64,
        "no refresh job: {} batch jobs for {chunks} chunks",
        batch_jobs(&s)
    );
}
