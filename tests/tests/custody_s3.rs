//! The chain-of-custody index on real S3 servers: parts written next to the recordings,
//! proven by `verify_chain`, a rewritten object caught, and on Ceph with Object Lock the parts
//! retained like the recordings.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, archive};
use e2e::{Server, fresh_sink};
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use sink::{ObjectLock, ObjectSink, PutOptions, S3Sink, S3SinkConfig, full_body};
use test_support::sim_client;

async fn archive_and_index(sink: Arc<dyn ObjectSink>) -> (Ledger, archiver::Summary) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 12,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(100));
    let ledger = Ledger::in_memory().unwrap();
    let summary = archive(
        client.clone(),
        sink.clone(),
        client.discover(DiscoveryQuery::interval(s.config().start, s.config().end())),
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert!(summary.success(), "{summary:?}");
    let parts = archiver::write_index(&ledger, sink.as_ref(), "index/", chrono::Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].entries, summary.archived);
    (ledger, summary)
}

#[tokio::test]
async fn the_index_proves_the_archive_on_both_servers_and_catches_a_rewrite() {
    for server in Server::ALL {
        let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(server, "custody").await);
        let (ledger, summary) = archive_and_index(sink.clone()).await;
        let anchor = ledger.index_parts().await.unwrap();
        let head = sink
            .head(&anchor[0].key)
            .await
            .unwrap()
            .expect("part stored");
        assert_eq!(head.content_type.as_deref(), Some("application/x-ndjson"));
        let report = archiver::verify_chain(sink.as_ref(), "index/", Some(&ledger), &[], &[], 4)
            .await
            .unwrap();
        assert!(report.clean(), "{server:?}: {:?}", report.problems);
        assert_eq!(report.verified, summary.archived, "{server:?}");
        // Someone with write access replaces a recording (same size, other bytes).
        let victim = ledger
            .index_part_entries(1)
            .await
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        let size = victim.size.unwrap() as usize;
        sink.put(
            &victim.key,
            full_body(vec![b'x'; size]),
            PutOptions::default(),
        )
        .await
        .unwrap();
        let report = archiver::verify_chain(sink.as_ref(), "index/", Some(&ledger), &[], &[], 4)
            .await
            .unwrap();
        assert_eq!(
            report.problems.len(),
            1,
            "{server:?}: {:?}",
            report.problems
        );
        assert!(
            report.problems[0].contains(&victim.key)
                && report.problems[0].contains("altered since it was archived"),
            "{server:?}: {:?}",
            report.problems
        );
    }
}

#[tokio::test]
async fn with_object_lock_the_index_parts_are_retained_too() {
    let (client, bucket) = e2e::object_lock_bucket("custody-lock").await;
    let mut cfg = S3SinkConfig::new(bucket.clone());
    cfg.object_lock = Some(ObjectLock {
        mode: "GOVERNANCE".into(),
        retain_for: Duration::from_secs(3600),
    });
    let sink: Arc<dyn ObjectSink> = Arc::new(S3Sink::new(client.clone(), cfg));
    let (ledger, _) = archive_and_index(sink).await;
    let part = &ledger.index_parts().await.unwrap()[0];
    let r = client
        .get_object_retention()
        .bucket(&bucket)
        .key(&part.key)
        .send()
        .await
        .expect("retention of the index part");
    assert_eq!(
        r.retention().and_then(|r| r.mode()).map(|m| m.as_str()),
        Some("GOVERNANCE")
    );
}
