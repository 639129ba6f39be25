//! A one-shot backfill shared by instances on a real PostgreSQL ledger (`archive
//! --scale-out`): three instances list the interval once and share its chunks; every
//! recording is archived once, each instance ends clean on its own, and the API calls of all
//! three stay within 10% of what one instance spends on the same interval. A listing held by
//! an instance that died is taken over when its lease ends.

use std::sync::Arc;
use std::time::Duration;

use archiver::{
    ArchiverConfig, Ledger, RecordStatus, SharedBackfill, Summary, archive, archive_shared,
};
use chrono::{DateTime, Utc};
use e2e::{Server, fresh_postgres_database, fresh_sink};
use futures::StreamExt;
use genesys_media::DiscoveryQuery;
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use sink::ObjectSink;
use test_support::sim_client;

const RECORDINGS: usize = 600;

/// As in the daemon's scale-out test: one status call per batch job in both setups.
const FIRST_POLL: Duration = Duration::from_millis(300);

async fn org(start: DateTime<Utc>, recordings: usize) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings,
        start,
        span: Duration::from_secs(3600),
        // Slow bodies make the store side the bound, as in a real backfill.
        faults: (0..recordings)
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

async fn archived(ledger: &Ledger) -> usize {
    ledger
        .entries(Some(RecordStatus::Archived))
        .await
        .unwrap()
        .len()
}

fn shared(from: DateTime<Utc>, to: DateTime<Utc>) -> SharedBackfill {
    SharedBackfill {
        check_every: Duration::from_millis(100),
        retry_after: Duration::from_millis(100),
        ..SharedBackfill::for_interval(from, to, &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_a_backfill_for_the_calls_of_one() {
    let start = Utc::now() - chrono::Duration::hours(3);
    let (from, to) = (start, start + chrono::Duration::hours(2));

    // One instance, as without --scale-out.
    let single = org(start, RECORDINGS).await;
    let url = fresh_postgres_database("backfill_single").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-single").await);
    let client = sim_client(&single, |c| c.poll_initial = FIRST_POLL);
    let one = archive(
        client.clone(),
        sink,
        client.discover(DiscoveryQuery::interval(from, to)),
        ArchiverConfig {
            ledger: Some(Ledger::open(&url).await.unwrap()),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(one.archived, RECORDINGS as u64, "{one:?}");
    let one_calls = single.stats().api_requests;

    // Three instances on one ledger, each with its own OAuth client and connection; the
    // third starts late and joins.
    let org3 = org(start, RECORDINGS).await;
    let url = fresh_postgres_database("backfill_three").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-three").await);
    let mut instances = Vec::new();
    for i in 0..3 {
        let client = sim_client(&org3, |c| c.poll_initial = FIRST_POLL);
        let (url, sink) = (url.clone(), sink.clone());
        instances.push(tokio::spawn(async move {
            if i == 2 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let cfg = ArchiverConfig {
                ledger: Some(Ledger::open(&url).await.unwrap()),
                instance_id: format!("instance-{i}"),
                ..ArchiverConfig::default()
            };
            let (s, outcome) = archive_shared(
                client,
                sink,
                DiscoveryQuery::interval(from, to),
                cfg,
                Arc::new(archiver::NoEvents),
                &shared(from, to),
            )
            .await;
            outcome.unwrap();
            s
        }));
    }
    let mut summaries: Vec<Summary> = Vec::new();
    for i in instances {
        let s = tokio::time::timeout(Duration::from_secs(120), i)
            .await
            .expect("every instance ends on its own")
            .unwrap();
        summaries.push(s);
    }
    for s in &summaries {
        assert!(s.success(), "each instance ends clean: {s:?}");
        assert_eq!(s.shared_backlog, 0, "{s:?}");
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
    assert_eq!(org3.stats().media_requests, RECORDINGS as u64);
    let watch = Ledger::open(&url).await.unwrap();
    assert_eq!(archived(&watch).await, RECORDINGS);
    let objects: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(objects.len(), RECORDINGS);
    let three_calls = org3.stats().api_requests;
    println!(
        "one instance: {one_calls} API calls ({:?}); three instances: {three_calls} ({:?}); archived per instance {per_instance:?}",
        single.stats().by_route,
        org3.stats().by_route
    );
    assert!(
        three_calls * 10 <= one_calls * 11,
        "three instances spent {three_calls} API calls, one {one_calls}"
    );

    // A rerun of the finished backfill lists the interval again and finds nothing new to
    // resolve: analytics pages only, no batch job, no download.
    let before = org3.stats();
    let (again, outcome) = archive_shared(
        sim_client(&org3, |c| c.poll_initial = FIRST_POLL),
        sink.clone(),
        DiscoveryQuery::interval(from, to),
        ArchiverConfig {
            ledger: Some(watch.clone()),
            instance_id: "rerun".into(),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
        &shared(from, to),
    )
    .await;
    outcome.unwrap();
    assert!(again.success(), "{again:?}");
    assert_eq!(again.archived, 0, "{again:?}");
    assert!(again.known_conversations > 0, "listed again: {again:?}");
    assert_eq!(org3.stats().media_requests, before.media_requests);
}

/// An instance that took the listing lease and died: the others wait for its lease to end,
/// then one lists and everything is archived. Nothing is counted done before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_held_by_a_dead_instance_is_taken_over() {
    let start = Utc::now() - chrono::Duration::hours(3);
    let (from, to) = (start, start + chrono::Duration::hours(2));
    let sim = org(start, 60).await;
    let url = fresh_postgres_database("backfill_dead").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-dead").await);
    let ledger = Ledger::open(&url).await.unwrap();
    let backfill = shared(from, to);
    let lease = Duration::from_secs(2);
    assert!(
        ledger
            .take_listing(&backfill.name, "dead", lease, Duration::ZERO)
            .await
            .unwrap()
    );
    let began = std::time::Instant::now();
    let (s, outcome) = archive_shared(
        sim_client(&sim, |c| c.poll_initial = FIRST_POLL),
        sink,
        DiscoveryQuery::interval(from, to),
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            instance_id: "alive".into(),
            lease: Duration::from_secs(5),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
        &backfill,
    )
    .await;
    outcome.unwrap();
    assert!(began.elapsed() >= lease, "waited for the dead lease");
    assert!(s.success(), "{s:?}");
    assert_eq!(s.archived, 60, "{s:?}");
    assert_eq!(archived(&ledger).await, 60);
}

/// Runs two instances of one backfill at once; their summaries.
async fn two_instances(
    sim: &SimHandle,
    url: &str,
    sink: &Arc<dyn ObjectSink>,
    backfill: &SharedBackfill,
) -> Vec<Summary> {
    let (from, to) = (
        sim.config().start,
        sim.config().start + chrono::Duration::hours(2),
    );
    let mut instances = Vec::new();
    for i in 0..2 {
        let client = sim_client(sim, |c| c.poll_initial = FIRST_POLL);
        let (url, sink, backfill) = (url.to_string(), sink.clone(), backfill.clone());
        instances.push(tokio::spawn(async move {
            let cfg = ArchiverConfig {
                ledger: Some(Ledger::open(&url).await.unwrap()),
                instance_id: format!("instance-{i}"),
                ..ArchiverConfig::default()
            };
            let (s, outcome) = archive_shared(
                client,
                sink,
                DiscoveryQuery::interval(from, to),
                cfg,
                Arc::new(archiver::NoEvents),
                &backfill,
            )
            .await;
            outcome.unwrap();
            s
        }));
    }
    let mut out = Vec::new();
    for i in instances {
        out.push(
            tokio::time::timeout(Duration::from_secs(60), i)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

/// A run that left something unarchived (a conversation still in progress) fails on every
/// instance, the one that met it and the one that did not; running the same backfill again
/// lists the interval again (a new run of it) and archives it, and then both exit clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rerun_after_an_unclean_run_lists_again_and_every_instance_reports_the_gap() {
    let start = Utc::now() - chrono::Duration::hours(3);
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 40,
        start,
        span: Duration::from_secs(3600),
        hold_open: 1,
        hold_open_for: Duration::from_secs(8),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let opened = std::time::Instant::now();
    let url = fresh_postgres_database("backfill_rerun").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-rerun").await);
    let backfill = shared(start, start + chrono::Duration::hours(2));
    let first = two_instances(&sim, &url, &sink, &backfill).await;
    assert!(
        opened.elapsed() < Duration::from_secs(8),
        "the first run ended while the conversation was open"
    );
    for s in &first {
        assert!(!s.success(), "no instance is clean: {s:?}");
    }
    assert!(first.iter().any(|s| s.pending > 0), "{first:?}");
    assert!(
        first.iter().all(|s| s.pending > 0
            || s.shared_problems
                .as_deref()
                .is_some_and(|p| p.contains("pending"))),
        "the instance that did not meet it reports it too: {first:?}"
    );
    let archived_first: u64 = first.iter().map(|s| s.archived).sum();
    assert!(archived_first < 40, "{first:?}");

    tokio::time::sleep(Duration::from_secs(9).saturating_sub(opened.elapsed())).await;
    let second = two_instances(&sim, &url, &sink, &backfill).await;
    for s in &second {
        assert!(s.success(), "{s:?}");
    }
    let archived_second: u64 = second.iter().map(|s| s.archived).sum();
    assert_eq!(
        archived_first + archived_second,
        40,
        "{first:?}\n{second:?}"
    );
    let objects: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(objects.len(), 40);
}

/// A conversation waiting in a chunk of another listing (an older backfill, a daemon) is
/// listed again into this backfill's chunks, not skipped as if it were done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conversation_queued_by_another_listing_is_not_skipped() {
    let start = Utc::now() - chrono::Duration::hours(3);
    let cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 20,
        start,
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    };
    let data = genesys_sim::Dataset::generate(&cfg);
    let sim = Simulator::start(cfg).await.unwrap();
    let url = fresh_postgres_database("backfill_other").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-other").await);
    let ledger = Ledger::open(&url).await.unwrap();
    let other = genesys_media::models::AnalyticsConversation {
        conversation_id: data.recordings[0].conversation_id.clone(),
        ..Default::default()
    };
    ledger
        .add_chunk("an older backfill", &[other])
        .await
        .unwrap();
    let (from, to) = (start, start + chrono::Duration::hours(2));
    let (s, outcome) = archive_shared(
        sim_client(&sim, |c| c.poll_initial = FIRST_POLL),
        sink,
        DiscoveryQuery::interval(from, to),
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
        &shared(from, to),
    )
    .await;
    outcome.unwrap();
    assert!(s.success(), "{s:?}");
    assert_eq!(s.archived, 20, "{s:?}");
}

/// A run of the backfill lasts while any instance is present in it (each holds a lease of
/// its own while it works, also between its listing and its first chunk): a start then joins
/// that run and lists nothing; once every instance is gone, a start begins a new run and
/// lists the interval again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_joins_the_run_while_an_instance_is_present() {
    let start = Utc::now() - chrono::Duration::hours(3);
    let (from, to) = (start, start + chrono::Duration::hours(2));
    let sim = org(start, 10).await;
    let url = fresh_postgres_database("backfill_join").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "backfill-join").await);
    let ledger = Ledger::open(&url).await.unwrap();
    let backfill = shared(from, to);
    let run = |id: &'static str| {
        let (sim, sink, ledger, backfill) = (&sim, sink.clone(), ledger.clone(), backfill.clone());
        async move {
            let (s, outcome) = archive_shared(
                sim_client(sim, |c| c.poll_initial = FIRST_POLL),
                sink,
                DiscoveryQuery::interval(from, to),
                ArchiverConfig {
                    ledger: Some(ledger),
                    instance_id: id.into(),
                    ..ArchiverConfig::default()
                },
                Arc::new(archiver::NoEvents),
                &backfill,
            )
            .await;
            outcome.unwrap();
            s
        }
    };
    let first = run("a").await;
    assert!(first.success() && first.archived == 10, "{first:?}");
    let calls = sim.stats().api_requests;
    let present = format!("{}.worker.b", backfill.name);
    assert!(
        ledger
            .take_listing(&present, "b", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap()
    );
    let joined = run("c").await;
    assert!(joined.success(), "{joined:?}");
    assert_eq!(
        sim.stats().api_requests,
        calls,
        "joined b's run: nothing listed again"
    );
    ledger.end_listing(&present, "b", false).await.unwrap();
    let again = run("d").await;
    assert!(again.success(), "{again:?}");
    assert!(sim.stats().api_requests > calls, "a new run lists again");
    assert!(again.known_conversations > 0, "{again:?}");
}

/// `archive --scale-out` through the binary: two processes started together on one
/// PostgreSQL ledger share the interval and both exit 0; each recording is downloaded once.
/// A SQLite ledger is refused, naming what to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_archive_binary_shares_a_backfill() {
    let n = 150;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = fresh_postgres_database("backfill_cli").await;
    let sink = fresh_sink(Server::S3sFs, "backfill-cli").await;
    let bucket = sink.config().bucket.clone();
    let (from, to) = e2e::sim_window(&s);
    let command = |state: &str| {
        let mut c = e2e::archiver_command(s.base_url(), &bucket);
        c.args(["archive", "--scale-out", "--from", from, "--to", to])
            .args([
                "--tag-mode",
                "disabled",
                "--allow-loopback-media",
                "--state",
                state,
            ]);
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("state.db");
    let refused = e2e::output_of(command(sqlite.to_str().unwrap())).await;
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(
        text.contains("--scale-out") && text.contains("PostgreSQL"),
        "{text}"
    );
    assert!(!sqlite.exists(), "no ledger created for a refused run");

    let mut relative = e2e::archiver_command(s.base_url(), &bucket);
    relative
        .args(["archive", "--scale-out", "--from", "7d", "--to", "now"])
        .args(["--state", &url]);
    let refused = e2e::output_of(relative).await;
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("--from \"7d\" is relative"), "{text}");

    let (a, b) = tokio::join!(e2e::output_of(command(&url)), e2e::output_of(command(&url)));
    for out in [&a, &b] {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{text}");
    }
    let objects: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(objects.len(), n);
    assert_eq!(s.stats().media_requests, n as u64, "none downloaded twice");
}
