//! `verify_chain` against a live archive: an archiver writes a part while the check runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, archive};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use sink::{LocalDirSink, ObjectSink, PutOptions};
use test_support::{HookedSink, sim_client};

/// A directory store whose first listing of the index first lets the archiver write its next
/// part, as a daemon would between the check's reading of the ledger and its listing.
/// `written` says whether it did.
fn writes_during_listing(
    inner: Arc<dyn ObjectSink>,
    ledger: Ledger,
) -> (HookedSink, Arc<AtomicBool>) {
    let written = Arc::new(AtomicBool::new(false));
    let mut live = HookedSink::new(inner.clone());
    let flag = written.clone();
    live.before_list = Some(Arc::new(move |prefix: String| {
        let (inner, ledger, flag) = (inner.clone(), ledger.clone(), flag.clone());
        Box::pin(async move {
            if prefix.starts_with("index/") && !flag.swap(true, Ordering::SeqCst) {
                let parts =
                    archiver::write_index(&ledger, inner.as_ref(), "index/", Utc::now(), None)
                        .await
                        .unwrap();
                assert_eq!(parts.len(), 1, "a part is written during the listing");
            }
        })
    }));
    (live, written)
}

/// Part 2 is written after the check started and before it listed the store: it is the
/// ledger's own part, not one "the ledger never wrote". Before, the ledger's parts were read
/// before the listing and the live archive failed its check.
#[tokio::test]
async fn a_part_written_while_the_chain_is_verified_is_not_a_foreign_part() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 30,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(50));
    let (start, end) = (s.config().start, s.config().end());
    let mid = start + (end - start) / 2;
    for (from, to) in [(start, mid), (mid, end)] {
        let summary = archive(
            client.clone(),
            inner.clone(),
            client.discover(DiscoveryQuery::interval(from, to)),
            ArchiverConfig {
                ledger: Some(ledger.clone()),
                ..ArchiverConfig::default()
            },
            Arc::new(archiver::NoEvents),
        )
        .await;
        assert!(summary.success(), "{summary:?}");
        if to == mid {
            archiver::write_index(&ledger, inner.as_ref(), "index/", Utc::now(), None)
                .await
                .unwrap();
        }
    }
    assert_eq!(ledger.index_parts().await.unwrap().len(), 1);
    let (live, written) = writes_during_listing(inner, ledger.clone());
    let r = archiver::verify_chain(&live, "index/", Some(&ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(written.load(Ordering::SeqCst));
    assert_eq!(r.parts, 2);
    assert!(r.clean(), "{:?}", r.problems);
    // A part the ledger really never wrote is still one.
    let foreign = "index/9999-foreign.jsonl";
    let bytes = archiver_index_bytes(&live, 3).await;
    live.put(
        foreign,
        sink::full_body(bytes.clone()),
        PutOptions {
            content_length: Some(bytes.len() as u64),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    let r = archiver::verify_chain(&live, "index/", Some(&ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains(foreign) && p.contains("never wrote")),
        "{:?}",
        r.problems
    );
}

/// An empty part numbered `seq` that continues the chain (a forger's append).
async fn archiver_index_bytes(sink: &dyn ObjectSink, seq: u64) -> Vec<u8> {
    let r = archiver::verify_chain(sink, "index/", None, &[], &[], 4)
        .await
        .unwrap();
    let (_, sha) = r.head.expect("a head");
    let (_, key, _) = r.part_digests.last().expect("a part").clone();
    let header = archiver::PartHeader {
        kind: "index".into(),
        version: 1,
        seq,
        previous: Some(sha),
        previous_key: Some(key),
        entries: 0,
        releases: 0,
    };
    let mut line = serde_json::to_vec(&header).unwrap();
    line.push(b'\n');
    line
}
