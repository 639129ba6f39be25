//! Scale-out on a real PostgreSQL ledger: three daemon instances list each window once and
//! share its chunks; every recording is archived once and the API calls of all three stay
//! within 10% of what one instance spends on the same window.

use std::sync::Arc;
use std::time::Duration;

use archiver::{
    ArchiverConfig, CancellationToken, Ledger, PollSettings, RecordStatus, ScaleOut, Summary,
    run_continuous,
};
use chrono::{DateTime, Utc};
use e2e::{Server, fresh_postgres_database, fresh_sink};
use futures::StreamExt;
use genesys_media::DiscoveryQuery;
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::ObjectSink;
use test_support::sim_client;

const RECORDINGS: usize = 600;

/// A batch job's first status poll comes after the simulator has it ready (200 ms): one
/// status call per job in both setups. (With an earlier first poll the count per job depends
/// on how busy the process was when it polled, which says nothing about scale-out.)
const FIRST_POLL: Duration = Duration::from_millis(300);

/// The same org each time: `start` fixes the dataset's times.
async fn org(start: DateTime<Utc>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: RECORDINGS,
        start,
        span: Duration::from_secs(3600),
        // Slow bodies make the store side the bound, as in a real backfill.
        faults: (0..RECORDINGS)
            .step_by(3)
            .map(|i| FaultSpec {
                recording: i,
                fault: Fault::Slow(Duration::from_millis(20)),
                times: None,
            })
            .collect(),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn poll(start: DateTime<Utc>, scale_out: Option<ScaleOut>) -> PollSettings {
    PollSettings {
        start,
        // One window: the test ends before a second poll is due.
        interval: Duration::from_secs(3600),
        scale_out,
        ..PollSettings::default()
    }
}

async fn archived(ledger: &Ledger) -> usize {
    ledger
        .entries(Some(RecordStatus::Archived))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_archive_every_recording_once_for_the_calls_of_one() {
    let start = Utc::now() - chrono::Duration::hours(2);

    // One instance, as before scale-out: it lists and resolves everything itself.
    let single = org(start).await;
    let url = fresh_postgres_database("scale_single").await;
    let ledger = Ledger::open(&url).await.unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "scale-single").await);
    let one = run_continuous(
        sim_client(&single, |c| c.poll_initial = FIRST_POLL),
        sink,
        DiscoveryQuery::interval,
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        PollSettings {
            max_polls: Some(1),
            ..poll(start, None)
        },
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(one.archived, RECORDINGS as u64, "{one:?}");
    let one_calls = single.stats().api_requests;

    // Three instances on one ledger, each with its own OAuth client and connection.
    let shared = org(start).await;
    let url = fresh_postgres_database("scale_three").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "scale-three").await);
    let shutdown = CancellationToken::new();
    let mut instances = Vec::new();
    for i in 0..3 {
        let client = sim_client(&shared, |c| c.poll_initial = FIRST_POLL);
        let (url, sink, shutdown) = (url.clone(), sink.clone(), shutdown.clone());
        instances.push(tokio::spawn(async move {
            let cfg = ArchiverConfig {
                ledger: Some(Ledger::open(&url).await.unwrap()),
                instance_id: format!("instance-{i}"),
                shutdown,
                ..ArchiverConfig::default()
            };
            let scale_out = ScaleOut {
                chunk_check: Duration::from_millis(50),
            };
            run_continuous(
                client,
                sink,
                DiscoveryQuery::interval,
                cfg,
                poll(start, Some(scale_out)),
                Arc::new(archiver::NoEvents),
            )
            .await
            .unwrap()
        }));
    }
    let watch = Ledger::open(&url).await.unwrap();
    let name = PollSettings::default().checkpoint;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let backlog = watch.chunk_backlog(&name).await.unwrap();
        let listed = watch.checkpoint(&name).await.unwrap().is_some();
        if listed && backlog.chunks == 0 && archived(&watch).await == RECORDINGS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done in time: {backlog:?}, {} archived",
            archived(&watch).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let mut summaries: Vec<Summary> = Vec::new();
    for i in instances {
        summaries.push(i.await.unwrap());
    }
    let per_instance: Vec<u64> = summaries.iter().map(|s| s.archived).collect();
    assert_eq!(
        per_instance.iter().sum::<u64>(),
        RECORDINGS as u64,
        "every recording archived once between them: {per_instance:?}"
    );
    assert!(
        per_instance.iter().filter(|n| **n > 0).count() >= 2,
        "the chunks were shared: {per_instance:?}"
    );
    assert_eq!(
        shared.stats().media_requests,
        RECORDINGS as u64,
        "no recording downloaded twice"
    );
    let objects: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(objects.len(), RECORDINGS);
    let three_calls = shared.stats().api_requests;
    println!(
        "one instance: {one_calls} API calls ({:?}); three instances: {three_calls} ({:?}); archived per instance {per_instance:?}",
        single.stats().by_route,
        shared.stats().by_route
    );
    assert!(
        three_calls * 10 <= one_calls * 11,
        "three instances spent {three_calls} API calls, one {one_calls}"
    );
}

fn conversation(id: &str, start: &str) -> genesys_media::models::AnalyticsConversation {
    genesys_media::models::AnalyticsConversation {
        conversation_id: id.into(),
        conversation_start: Some(start.into()),
        conversation_end: Some(start.into()),
        ..Default::default()
    }
}

/// The chunk store's rules on PostgreSQL (the server's clock): one claim at a time, a kept
/// chunk keeps only the conversations it is kept for and is due after its delay, a finished
/// chunk and its members are gone; one listing lease holder at a time.
#[tokio::test]
async fn chunks_and_the_listing_lease_follow_the_same_rules_on_postgres() {
    let url = fresh_postgres_database("chunks").await;
    let a = Ledger::open(&url).await.unwrap();
    let b = Ledger::open(&url).await.unwrap();
    assert_eq!(a.schema_version().await.unwrap(), 8);
    let lease = Duration::from_secs(60);
    let convs = vec![
        conversation("c1", "2026-11-01T10:00:00.000Z"),
        conversation("c2", "2026-11-01T09:00:00.000Z"),
    ];
    let id = a.add_chunk("w", &convs).await.unwrap();
    let backlog = b.chunk_backlog("w").await.unwrap();
    assert_eq!((backlog.chunks, backlog.conversations), (1, 2));
    assert_eq!(
        backlog.earliest_start.as_deref(),
        Some("2026-11-01T09:00:00.000Z")
    );
    let claimed = a.claim_chunk("w", "a", lease).await.unwrap().unwrap();
    assert_eq!((claimed.id, &claimed.conversations), (id, &convs));
    assert!(b.claim_chunk("w", "b", lease).await.unwrap().is_none());
    assert!(a.renew_chunk(id, "a", lease).await.unwrap());
    assert!(!b.renew_chunk(id, "b", lease).await.unwrap());
    // Kept for c2 only, after an error, due in 300 ms.
    a.retry_chunk(
        id,
        "a",
        &convs[1..],
        Some("503".into()),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let kept = b.chunk_backlog("w").await.unwrap();
    assert_eq!(kept.conversations, 1);
    assert_eq!(kept.last_error.as_deref(), Some("503"));
    assert!(
        b.claim_chunk("w", "b", lease).await.unwrap().is_none(),
        "not due yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = b.claim_chunk("w", "b", lease).await.unwrap().unwrap();
    assert_eq!(again.conversations, convs[1..].to_vec());
    assert_eq!(again.attempts, 1);
    assert!(b.finish_chunk(id, "b").await.unwrap());
    assert_eq!(a.chunk_backlog("w").await.unwrap().chunks, 0);
    // Members went with it: a new listing may queue c2 again.
    let id2 = a.add_chunk("w", &convs[1..]).await.unwrap();
    assert_eq!(a.chunk_backlog("w").await.unwrap().conversations, 1);
    // A stale holder (its lease expired, b took the chunk over and finished it) keeping the
    // chunk writes nothing: no member left pointing at a chunk nobody works.
    let short = Duration::from_millis(100);
    assert_eq!(
        a.claim_chunk("w", "a", short).await.unwrap().unwrap().id,
        id2
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.claim_chunk("w", "b", lease).await.unwrap().unwrap().id,
        id2
    );
    assert!(
        !a.finish_chunk(id2, "a").await.unwrap(),
        "a stale holder cannot finish a chunk taken over"
    );
    let members: Vec<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
    assert_eq!(
        a.listing_memory("w", archiver::LateWindow::default())
            .settled(&members[1..])
            .await
            .len(),
        members.len() - 1,
        "a refused finish keeps the chunk's conversations queued"
    );
    assert!(b.finish_chunk(id2, "b").await.unwrap());
    a.retry_chunk(id2, "a", &convs, Some("late".into()), Duration::ZERO)
        .await
        .unwrap();
    let ids: Vec<String> = convs.iter().map(|c| c.conversation_id.clone()).collect();
    assert!(
        a.listing_memory("w", archiver::LateWindow::default())
            .settled(&ids)
            .await
            .is_empty(),
        "a stale retry left conversations queued in no chunk"
    );
    assert_eq!(a.chunk_backlog("w").await.unwrap().chunks, 0);

    let gap = Duration::from_millis(300);
    assert!(a.take_listing("w", "a", lease, gap).await.unwrap());
    assert!(!b.take_listing("w", "b", lease, gap).await.unwrap());
    a.end_listing("w", "a", true).await.unwrap();
    assert!(
        !b.take_listing("w", "b", lease, gap).await.unwrap(),
        "within the gap"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.take_listing("w", "b", lease, gap).await.unwrap());
}

/// The binary: `daemon --once --scale-out` archives the window; a second instance started
/// right after finds the window listed a moment ago and no chunk waiting, and spends no API
/// call.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_binary_shares_a_postgres_ledger() {
    let n = 30;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = fresh_postgres_database("scale_cli").await;
    let sink = fresh_sink(Server::S3sFs, "scale-cli").await;
    let bucket = sink.config().bucket.clone();
    let run = || {
        let out = e2e::command_for(e2e::daemon_bin(), s.base_url(), &bucket)
            .args(["--once", "--scale-out", "--since", e2e::sim_window(&s).0])
            .args([
                "--settle",
                "0s",
                "--allow-loopback-media",
                "--tag-mode",
                "disabled",
            ])
            .args(["--state", &url])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = tokio::task::block_in_place(run);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("shared work: no chunk waits in the ledger"),
        "{stdout}"
    );
    let objects: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(objects.len(), n);
    let calls = s.stats().api_requests;
    let (code, stdout, stderr) = tokio::task::block_in_place(run);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        s.stats().api_requests,
        calls,
        "the second instance neither listed nor resolved: {stdout}"
    );
    assert_eq!(s.stats().media_requests, n as u64);
}
