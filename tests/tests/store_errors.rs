//! S3 error classes, against s3s-fs behind a proxy that answers scripted errors to the first
//! PUTs: a 409 conflict is retried and deletes nothing (the object under the key may be
//! another writer's), a 400 RequestTimeout (the store gave up on a stalled stream) is retried.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use archiver::{ArchiverConfig, archive};
use e2e::{Server, client_at, fresh_sink, scripted_proxy};
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use sink::{ObjectSink, S3Sink};

async fn run_behind(script: Vec<(u16, &'static str)>) -> (archiver::Summary, u64, u64) {
    run_behind_over(script, false).await
}

/// As [`run_behind`]; with `occupied`, another writer's object is under the recording's key
/// first and the archiver writes over keys (no HEAD, no create-only), so its failed first PUT
/// meets an object that is not its own.
async fn run_behind_over(
    script: Vec<(u16, &'static str)>,
    occupied: bool,
) -> (archiver::Summary, u64, u64) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let direct = fresh_sink(Server::S3sFs, "storeerr").await;
    let proxy = scripted_proxy(&Server::S3sFs.endpoint(), script).await;
    let sink: Arc<dyn ObjectSink> = Arc::new(S3Sink::new(
        client_at(&proxy.endpoint).await,
        direct.config().clone(),
    ));
    if occupied {
        let key = archiver::KeyTemplate::default()
            .render(&test_support::sim_recording(&s, 0), None)
            .unwrap();
        direct
            .put(
                &key,
                sink::full_body("another writer's object"),
                Default::default(),
            )
            .await
            .unwrap();
    }
    let c = test_support::sim_client(&s, |c| c.poll_initial = Duration::from_millis(100));
    let mut cfg = ArchiverConfig {
        verify_source_etag: true,
        skip_existing: !occupied,
        create_only: !occupied,
        ..ArchiverConfig::default()
    };
    cfg.retry.base_delay = Duration::from_millis(20);
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    let e2e_set = std::collections::HashSet::from([s.dataset().recordings[0].id.clone()]);
    if summary.archived == 1 {
        e2e::assert_store_holds(&s, &direct, &e2e_set).await;
    }
    (
        summary,
        proxy.stats.injected_scripted.load(Ordering::Relaxed),
        proxy.stats.deletes.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_409_conflict_is_retried_and_removes_nothing() {
    let (summary, injected, deletes) = run_behind(vec![(409, "ConditionalRequestConflict")]).await;
    assert_eq!(injected, 1);
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(
        deletes, 0,
        "a conflict must not delete what is under the key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_400_request_timeout_is_retried() {
    let (summary, injected, _) = run_behind(vec![(400, "RequestTimeout")]).await;
    assert_eq!(injected, 1);
    assert_eq!(summary.archived, 1, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_400s_are_not_retried() {
    let (summary, injected, _) = run_behind(vec![(400, "InvalidArgument")]).await;
    assert_eq!(injected, 1);
    assert_eq!((summary.archived, summary.failed), (0, 1), "{summary:?}");
}

/// A write that fails leaves another writer's object alone: the cleanup removes only an
/// object carrying this write's own mark (before, it deleted whatever was under the key).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_write_does_not_delete_another_writers_object() {
    let (summary, injected, deletes) = run_behind_over(vec![(503, "SlowDown")], true).await;
    assert_eq!(injected, 1);
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(deletes, 0, "the object under the key was not this write's");
}
