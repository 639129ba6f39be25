//! Continuous mode's retries of failed rows: the backoff, quarantine after the bound, rows
//! the source gives no media for, and failures the ledger could not record.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger, PollSettings, run_continuous};
use chrono::Utc;
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, Simulator};
use sink::{LocalDirSink, ObjectSink};

mod common;
use common::{Rig, client, impatient, recent_sim, rig};

/// A recording that keeps failing (its media URL is always refused) is retried with backoff
/// and then given up into quarantine with the reason, where an operator sees it; before, it
/// stayed `failed` and, past the attempt bound, was neither retried nor reported.
#[tokio::test]
async fn failing_rows_are_retried_with_backoff_then_quarantined() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 4,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        faults: vec![genesys_sim::FaultSpec {
            recording: 0,
            fault: genesys_sim::Fault::ExpiredUrl,
            times: None,
        }],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let Rig {
        c,
        _dir,
        sink,
        ledger,
        cfg,
    } = rig(&s);
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(20),
        // Every poll reads the recording again (and claims it: a failed row is retried).
        overlap: Duration::from_secs(3 * 3600),
        sweep_every: 1,
        settle: Duration::ZERO,
        // Each try makes 4 attempts (1 + 3 URL refreshes): given up after the second.
        retry_failed_below_attempts: 6,
        max_polls: Some(4),
        ..PollSettings::default()
    };
    run_continuous(
        c.clone(),
        sink.clone(),
        DiscoveryQuery::interval,
        cfg.clone(),
        poll.clone(),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    let rid = &s.dataset().recordings[0].id;
    let row = ledger.entry(rid).await.unwrap().unwrap();
    assert_eq!(row.status, archiver::RecordStatus::Quarantined, "{row:?}");
    let reason = row.last_error.unwrap_or_default();
    assert!(reason.starts_with("gave up after"), "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    // Given up means no more spending on it: further polls do not download it again.
    let before = s.stats().media_requests;
    let more = PollSettings {
        max_polls: Some(5),
        ..poll
    };
    run_continuous(
        c,
        sink,
        DiscoveryQuery::interval,
        cfg,
        more,
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(s.stats().media_requests, before);
}

#[test]
fn retry_backoff_doubles_from_the_interval_and_is_capped() {
    let i = Duration::from_secs(300);
    assert_eq!(archiver::retry_backoff(i, 0), i);
    assert_eq!(archiver::retry_backoff(i, 1), i);
    assert_eq!(archiver::retry_backoff(i, 3), i * 4);
    assert_eq!(archiver::retry_backoff(i, 60), archiver::MAX_RETRY_BACKOFF);
}

/// A failed row retried by the poll loop whose media the source no longer gives: it goes
/// through a claim and is charged an attempt (before, nothing was written: the row was retried
/// every poll, one batch job each, never reaching quarantine), and counts as unavailable only
/// because its fileState says it is gone. A row whose refresh fails outright is a failure
/// (before: an exit-0 "unavailable").
#[tokio::test]
async fn retried_rows_the_source_gives_no_media_for_are_charged_an_attempt() {
    use genesys_sim::{Fault, FaultSpec};
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 4,
        faults: vec![FaultSpec {
            recording: 1,
            fault: Fault::Archived,
            times: None,
        }],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let Rig {
        c,
        sink,
        ledger,
        cfg,
        _dir,
    } = rig(&s);
    // Seeded as an earlier run left it: failed twice.
    let rec = test_support::sim_recording(&s, 1);
    let owner = cfg.instance_id.clone();
    ledger
        .claim(&rec, "k/1", &owner, Duration::from_secs(60))
        .await
        .unwrap();
    ledger
        .failed(&rec.ledger_id(), &owner, "503", false, 2)
        .await
        .unwrap();
    let rid = rec.ledger_id().into_owned();
    let entries = ledger
        .entries(Some(archiver::RecordStatus::Failed))
        .await
        .unwrap();
    let summary = archiver::archive_entries(
        c.clone(),
        sink.clone(),
        entries.clone(),
        cfg.clone(),
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!((summary.found, summary.unavailable), (1, 1), "{summary:?}");
    assert!(
        summary.failures[0].reason.contains("fileState ARCHIVED"),
        "{:?}",
        summary.failures
    );
    let after = ledger.entry(&rid).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.attempts),
        (archiver::RecordStatus::Failed, 3),
        "charged one attempt"
    );

    // The source failing outright: a failure (exit 1), charged too.
    s.set_outage(true);
    let summary = archiver::archive_entries(
        impatient(&c),
        sink,
        entries,
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    s.set_outage(false);
    assert_eq!((summary.failed, summary.unavailable), (1, 0), "{summary:?}");
    assert!(!summary.success());
    assert_eq!(ledger.entry(&rid).await.unwrap().unwrap().attempts, 4);
}

/// The ledger refuses the claims of a poll (a database error): before, each recording was
/// reported failed once with no row in the ledger, and the checkpoint moved past them, so no
/// later poll or retry ever saw them again. Now such a poll is not reconciled: its window is
/// read again, and archived once the ledger works.
#[tokio::test]
async fn failures_the_ledger_could_not_record_keep_the_window() {
    let s = recent_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let ledger = Ledger::open(db.to_str().unwrap()).await.unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path().join("store")));
    let cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        ..ArchiverConfig::default()
    };
    let poll = PollSettings {
        start: s.config().start,
        settle: Duration::ZERO,
        sweep_every: 6,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    // Another connection to the same file makes every new claim fail.
    let side = rusqlite::Connection::open(&db).unwrap();
    side.execute_batch(
        "CREATE TRIGGER refuse_claims BEFORE INSERT ON recordings
         BEGIN SELECT RAISE(ABORT, 'injected: the disk is full'); END;",
    )
    .unwrap();
    let run = || {
        run_continuous(
            client(&s),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll.clone(),
            Arc::new(archiver::NoEvents),
        )
    };
    let refused = run().await.unwrap();
    assert_eq!(refused.archived, 0);
    assert_eq!(refused.unrecorded, 24, "{refused:?}");
    assert_eq!(refused.unreconciled_polls, 1);
    assert_eq!(ledger.checkpoint("discovery").await.unwrap(), None);

    side.execute_batch("DROP TRIGGER refuse_claims").unwrap();
    let healed = run().await.unwrap();
    assert_eq!(healed.archived, 24, "{healed:?}");
    assert_eq!(healed.unreconciled_polls, 0);
}
