//! No silent gaps: what discovery lists but cannot archive yet is counted, reported and keeps
//! the run from looking clean; every file of a recording gets a key of its own; the ledger
//! holds the key each object was written under; the poll loop comes back for what was pending
//! and rides out a login outage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::{
    ArchiverConfig, Ledger, PollSettings, RecordStatus, ReportKind, archive, run_continuous,
};
use chrono::Utc;
use genesys_media::{DiscoveryQuery, GenesysClient, SourceMode};
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle};
use sink::{LocalDirSink, ObjectSink};
use test_support::{sim_client, start_sim as sim};

fn client(s: &SimHandle, source: SourceMode) -> GenesysClient {
    sim_client(s, |c| {
        c.poll_initial = Duration::from_millis(100);
        c.source = source;
    })
}

fn cfg(ledger: &Ledger) -> ArchiverConfig {
    ArchiverConfig {
        ledger: Some(ledger.clone()),
        verify_source_etag: true,
        ..ArchiverConfig::default()
    }
}

fn whole(s: &SimHandle) -> DiscoveryQuery {
    DiscoveryQuery::interval(s.config().start, s.config().end())
}

/// A fresh directory store and in-memory ledger.
struct Target {
    dir: tempfile::TempDir,
    sink: Arc<dyn ObjectSink>,
    ledger: Ledger,
}

fn target() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    Target {
        dir,
        sink,
        ledger: Ledger::in_memory().unwrap(),
    }
}

/// Archives the simulator's whole interval into `t`.
async fn archive_whole(c: &GenesysClient, s: &SimHandle, t: &Target) -> archiver::Summary {
    archive(
        c.clone(),
        t.sink.clone(),
        c.discover(whole(s)),
        cfg(&t.ledger),
        Arc::new(archiver::NoEvents),
    )
    .await
}

fn md5_file(path: &std::path::Path) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn pending_conversations_are_reported_and_keep_the_run_unclean() {
    let s = sim(SimConfig {
        recordings: 20,
        hold_open: 2,
        ..SimConfig::default()
    })
    .await;
    let open: HashSet<String> = s.open_conversations().into_iter().collect();
    let open_recordings = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| open.contains(&r.conversation_id))
        .count() as u64;
    let c = client(&s, SourceMode::Batch);
    let t = target();
    let run = archive_whole(&c, &s, &t).await;
    assert_eq!(run.pending, 2, "{run:?}");
    assert_eq!(run.archived, 20 - open_recordings);
    assert!(!run.success(), "pending work is not a clean run");
    let rec = run.reconcile();
    assert!(
        !rec.clean && rec.pending == 2 && rec.unaccounted == 0,
        "{rec:?}"
    );
    let reported: HashSet<String> = run
        .failures
        .iter()
        .filter(|f| f.kind == ReportKind::Pending)
        .map(|f| f.conversation_id.clone())
        .collect();
    assert_eq!(reported, open);
    assert!(run.line().contains("2 pending"), "{}", run.line());
    let earliest = s
        .dataset()
        .conversations
        .iter()
        .filter(|c| open.contains(&c.id))
        .map(|c| c.start)
        .min();
    assert_eq!(run.pending_since, earliest);

    s.close_all_conversations();
    let rerun = archive_whole(&c, &s, &t).await;
    assert_eq!(rerun.archived, open_recordings, "{rerun:?}");
    assert!(rerun.success(), "{rerun:?}");
    assert!(rerun.reconcile().clean);
}

#[tokio::test]
async fn every_file_is_stored_under_its_own_key_in_both_source_modes() {
    for (source, labels) in [
        (SourceMode::Batch, ["part1", "part2"]),
        (
            SourceMode::PerRecording {
                format_id: "WAV".into(),
            },
            ["ch0", "ch1"],
        ),
    ] {
        let s = sim(SimConfig {
            recordings: 6,
            transcode_polls: 0,
            faults: vec![FaultSpec {
                recording: 2,
                fault: Fault::TwoFiles,
                times: None,
            }],
            ..SimConfig::default()
        })
        .await;
        let c = client(&s, source.clone());
        let t = target();
        let run = archive_whole(&c, &s, &t).await;
        assert!(run.success(), "{source:?}: {run:?}");
        assert_eq!(
            run.archived, 7,
            "{source:?}: six recordings, one with two files"
        );
        let rid = &s.dataset().recordings[2].id;
        let mut md5s = HashSet::new();
        for (part, label) in labels.iter().enumerate() {
            let row = t
                .ledger
                .entry(&format!("{rid}~{label}"))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{source:?}: no ledger row for file {label}"));
            assert_eq!(row.status, RecordStatus::Archived);
            assert!(row.key.contains(&format!("{rid}-{label}.")), "{}", row.key);
            let md5 = md5_file(&t.dir.path().join(&row.key));
            assert_eq!(md5, hex::encode(s.expected_part_md5(2, part as u32)));
            assert_eq!(row.md5.as_deref(), Some(md5.as_str()));
            md5s.insert(md5);
        }
        assert_eq!(md5s.len(), 2);
    }
}

/// In per-recording mode the media's content type decides the extension: the ledger must hold
/// the key the object was written under, so that verify and the manifest find it.
#[tokio::test]
async fn the_ledger_holds_the_key_each_object_was_written_under() {
    for format in ["WAV", "MP3", "OGG_OPUS"] {
        let s = sim(SimConfig {
            recordings: 12,
            transcode_polls: 0,
            ..SimConfig::default()
        })
        .await;
        let c = client(
            &s,
            SourceMode::PerRecording {
                format_id: format.into(),
            },
        );
        let t = target();
        let run = archive_whole(&c, &s, &t).await;
        assert!(run.success(), "{run:?}");
        let rows = t
            .ledger
            .entries(Some(RecordStatus::Archived))
            .await
            .unwrap();
        assert_eq!(rows.len(), 12);
        for row in rows {
            let path = t.dir.path().join(&row.key);
            assert!(
                path.exists(),
                "{format}: no object under the ledger's key {}",
                row.key
            );
            assert_eq!(Some(md5_file(&path)), row.md5);
        }
    }
}

/// The daemon's checkpoint does not pass a conversation that is still going on: the next
/// poll reads it again and archives it once it has ended.
#[tokio::test]
async fn the_checkpoint_waits_for_conversations_in_progress() {
    let now = Utc::now();
    let s = sim(SimConfig {
        recordings: 16,
        start: now - chrono::Duration::hours(3),
        span: Duration::from_secs(3600),
        hold_open: 1,
        ..SimConfig::default()
    })
    .await;
    let open = s.open_conversations();
    let open_start = s.dataset().conversation(&open[0]).unwrap().start;
    let c = client(&s, SourceMode::Batch);
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(10),
        overlap: Duration::ZERO,
        settle: Duration::ZERO,
        max_polls: Some(1),
        ..PollSettings::default()
    };
    let first = run_continuous(
        c.clone(),
        sink.clone(),
        DiscoveryQuery::interval,
        cfg(&ledger),
        poll.clone(),
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(first.pending, 1, "{first:?}");
    let cp = ledger.checkpoint("discovery").await.unwrap().unwrap();
    let cp = chrono::DateTime::parse_from_rfc3339(&cp)
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        cp <= open_start && open_start - cp < chrono::Duration::milliseconds(1),
        "the checkpoint {cp} waits at the open conversation's start {open_start}"
    );

    s.close_all_conversations();
    let second = run_continuous(
        c,
        sink,
        DiscoveryQuery::interval,
        cfg(&ledger),
        poll,
        Arc::new(archiver::NoEvents),
    )
    .await
    .unwrap();
    assert_eq!(second.pending, 0, "{second:?}");
    let archived = ledger.entries(Some(RecordStatus::Archived)).await.unwrap();
    assert_eq!(archived.len(), 16, "the late conversation's recordings too");
    let cp = ledger.checkpoint("discovery").await.unwrap().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&cp).unwrap() > s.config().end(),
        "{cp}"
    );
}

/// A login host that is down for a while: the poll fails (not fatal, not a configuration
/// error), the checkpoint stays, and the next poll after the outage archives everything.
#[tokio::test]
async fn the_poll_loop_rides_out_a_login_outage() {
    let now = Utc::now();
    let s = Arc::new(
        sim(SimConfig {
            recordings: 10,
            start: now - chrono::Duration::hours(3),
            span: Duration::from_secs(3600),
            ..SimConfig::default()
        })
        .await,
    );
    s.set_login_outage(true);
    let c = sim_client(&s, |c| {
        c.poll_initial = Duration::from_millis(100);
        c.retry.base_delay = Duration::from_millis(10);
        c.retry.max_elapsed = Duration::from_millis(300);
    });
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let polls = Arc::new(Mutex::new(Vec::new()));
    let (seen, sim2) = (polls.clone(), s.clone());
    let events = Arc::new(move |e: &archiver::Event| {
        if let archiver::Event::Polled {
            checkpoint_advanced,
            archived,
            discovery_error,
            ..
        } = e
        {
            seen.lock()
                .unwrap()
                .push((*checkpoint_advanced, *archived, discovery_error.is_some()));
            sim2.set_login_outage(false);
        }
    });
    let poll = PollSettings {
        start: s.config().start,
        interval: Duration::from_millis(50),
        settle: Duration::ZERO,
        max_polls: Some(2),
        ..PollSettings::default()
    };
    let total = run_continuous(
        c.clone(),
        sink,
        DiscoveryQuery::interval,
        cfg(&ledger),
        poll,
        events,
    )
    .await
    .expect("a login outage is not fatal");
    assert_eq!(
        polls.lock().unwrap().clone(),
        vec![(false, 0, true), (true, 10, false)],
        "{total:?}"
    );
    assert!(c.metrics().snapshot().token_failures > 0);
}

/// The per-recording source spends a call per recording; on a rerun, a conversation that is
/// not settled (one of its recordings is in quarantine) is resolved again, but its archived
/// recording is not requested again: the ledger holds it.
#[tokio::test]
async fn the_per_recording_source_does_not_request_what_the_ledger_holds() {
    let base = SimConfig {
        recordings: 40,
        transcode_polls: 0,
        ..SimConfig::default()
    };
    // A conversation with two recordings; the second is corrupt for good.
    let data = genesys_sim::Dataset::generate(&base);
    let (first, second) = data
        .recordings
        .iter()
        .enumerate()
        .find_map(|(i, r)| {
            let next = data.recordings.get(i + 1)?;
            (next.conversation_id == r.conversation_id).then_some((i, i + 1))
        })
        .expect("the seed has a conversation with two recordings");
    let s = sim(SimConfig {
        faults: vec![FaultSpec {
            recording: second,
            fault: Fault::Corrupt,
            times: None,
        }],
        ..base
    })
    .await;
    let per_recording = SourceMode::PerRecording {
        format_id: "WAV".into(),
    };
    let c = client(&s, per_recording);
    let t = target();
    let archive_known = || {
        archive(
            c.clone(),
            t.sink.clone(),
            c.discover_known(whole(&s), Some(t.ledger.known_conversations())),
            cfg(&t.ledger),
            Arc::new(archiver::NoEvents),
        )
    };
    let run = archive_known().await;
    assert_eq!((run.archived, run.failed), (39, 1), "{run:?}");
    let gets = |s: &SimHandle| {
        s.stats()
            .by_route
            .iter()
            .filter(|(k, _)| k.starts_with("GET") && k.ends_with("/recordings/{id}"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let before = gets(&s);
    let rerun = archive_known().await;
    assert_eq!(rerun.quarantined, 1, "{rerun:?}");
    assert_eq!(
        rerun.known_conversations as usize,
        data.conversations.len() - 1,
        "every other conversation is settled"
    );
    assert_eq!(
        gets(&s) - before,
        1,
        "only the quarantined recording's media is requested, not recording {first}'s"
    );
}

/// A run with a media-type filter must not settle what it left out: a later run with a wider
/// filter (same ledger) still finds and archives the other media types.
#[tokio::test]
async fn a_narrower_media_filter_does_not_settle_the_other_media() {
    let s = sim(SimConfig {
        recordings: 40,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, SourceMode::Batch);
    let t = target();
    let run = |media: Vec<String>| {
        let mut q = whole(&s);
        q.media_types = media;
        archive(
            c.clone(),
            t.sink.clone(),
            c.discover_known(q, Some(t.ledger.known_conversations())),
            cfg(&t.ledger),
            Arc::new(archiver::NoEvents),
        )
    };
    let audio = s
        .dataset()
        .recordings
        .iter()
        .filter(|r| r.media == "audio")
        .count() as u64;
    assert!(audio < 40, "the seed has other media too");
    let first = run(vec!["audio".into()]).await;
    assert_eq!(first.archived, audio, "{first:?}");
    let second = run(vec![]).await;
    assert_eq!(second.archived, 40 - audio, "{second:?}");
    assert!(second.success(), "{second:?}");
}

/// The summary's "up to N recordings at once" counts recordings that were in progress, not
/// the worker limit: three recordings are never "up to 8 at once". Before, it reported the
/// limit's peak (8 at the start, more once the limit grew).
#[tokio::test]
async fn the_peak_of_recordings_at_once_is_what_was_in_progress() {
    let s = sim(SimConfig {
        recordings: 3,
        ..SimConfig::default()
    })
    .await;
    let c = client(&s, SourceMode::Batch);
    let t = target();
    let summary = archive_whole(&c, &s, &t).await;
    assert_eq!(summary.archived, 3, "{summary:?}");
    assert!(
        (1..=3).contains(&summary.workers_peak),
        "{} recordings at once out of 3",
        summary.workers_peak
    );
}
