//! Adopt only what is verified: an object already under a recording's key is recorded as
//! archived only when nothing contradicts it; what a failed attempt left behind (a bucket that
//! denies deletes keeps it) is written over, never adopted.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, KeyTemplate, Ledger, RecordStatus, archive};
use genesys_media::{DiscoveryQuery, GenesysClient, SourceMode};
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink, PutOptions, full_body};
use test_support::{sim_client, sim_recording};

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(s: &SimHandle, source: SourceMode) -> GenesysClient {
    sim_client(s, |c| {
        c.poll_initial = Duration::from_millis(100);
        c.source = source;
    })
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(b))
}

/// Puts `bytes` under recording `index`'s key, as a failed attempt (or another tool) would
/// leave them; returns the key.
async fn plant(s: &SimHandle, sink: &dyn ObjectSink, index: usize, bytes: &'static [u8]) -> String {
    let key = KeyTemplate::default()
        .render(&sim_recording(s, index), None)
        .unwrap();
    sink.put(&key, full_body(bytes), PutOptions::default())
        .await
        .unwrap();
    key
}

async fn run(
    s: &SimHandle,
    source: SourceMode,
    sink: Arc<dyn ObjectSink>,
    ledger: &Ledger,
) -> archiver::Summary {
    let c = client(s, source);
    let cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        ..ArchiverConfig::default()
    };
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await
}

#[tokio::test]
async fn what_a_failed_attempt_left_is_written_over_not_adopted() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    // An earlier attempt failed its checks and could not delete what it wrote.
    let rec = sim_recording(&s, 0);
    let key = plant(&s, sink.as_ref(), 0, b"bytes that failed verification").await;
    ledger
        .claim(&rec, &key, "earlier", Duration::from_secs(60))
        .await
        .unwrap();
    ledger
        .failed(&rec.recording_id, "earlier", "md5 mismatch", false, 2)
        .await
        .unwrap();

    let summary = run(&s, SourceMode::Batch, sink, &ledger).await;
    assert_eq!((summary.archived, summary.skipped), (3, 0), "{summary:?}");
    let stored = std::fs::read(dir.path().join(&key)).unwrap();
    assert_eq!(
        md5_hex(&stored),
        hex::encode(s.expected_md5(0)),
        "the right bytes now"
    );
    let row = ledger.entry(&rec.recording_id).await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Archived);
    assert_eq!(
        row.md5.as_deref(),
        Some(hex::encode(s.expected_md5(0)).as_str())
    );
}

#[tokio::test]
async fn an_object_the_source_contradicts_is_written_over() {
    // The compat listing vouches for each recording's MD5: an object with other bytes under
    // the key is not adopted, even with no ledger row at all.
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let key = plant(&s, sink.as_ref(), 1, b"someone else's bytes").await;
    let summary = run(&s, SourceMode::CompatListing, sink, &ledger).await;
    assert_eq!((summary.archived, summary.skipped), (3, 0), "{summary:?}");
    let stored = std::fs::read(dir.path().join(&key)).unwrap();
    assert_eq!(md5_hex(&stored), hex::encode(s.expected_md5(1)));
}

#[tokio::test]
async fn an_object_that_matches_is_adopted_without_a_download() {
    let s = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    // The right bytes, written by an earlier run whose ledger was lost.
    let r = &s.dataset().recordings[2];
    let body: Vec<u8> = genesys_sim::ContentGen::new(r.body_kind(), r.body_seed, r.size)
        .flat_map(|b| b.to_vec())
        .collect();
    let key = KeyTemplate::default()
        .render(&sim_recording(&s, 2), None)
        .unwrap();
    sink.put(&key, full_body(body), PutOptions::default())
        .await
        .unwrap();
    let summary = run(&s, SourceMode::CompatListing, sink, &ledger).await;
    assert_eq!((summary.archived, summary.skipped), (2, 1), "{summary:?}");
    assert_eq!(
        s.stats().media_requests,
        2,
        "the adopted one was not downloaded"
    );
    let row = ledger.entry(&r.id).await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Archived);
    assert_eq!(
        row.md5.as_deref(),
        Some(hex::encode(s.expected_md5(2)).as_str())
    );
}
