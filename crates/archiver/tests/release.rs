//! Release at the source: a recording's delete date is set at Genesys Cloud only when its
//! copy is proven (archived, its conversation settled for good, listed in a written index
//! part, the object in the store with its size and digests, locked when asked, not under
//! deletion protection). Each safety test breaks one of those and checks that nothing of it
//! is released, where the release would happen if that check were missing.

use std::sync::Arc;
use std::time::Duration;

use archiver::{
    ArchiverConfig, Ledger, ReleasePolicy, ReleaseRecord, ReleaseReport, ReleaseState, archive,
    release, write_index,
};
use genesys_media::{DiscoveryQuery, GenesysClient};
use genesys_sim::{FaultSpec, SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::sim_client;

struct Org {
    sim: SimHandle,
    client: GenesysClient,
    ledger: Ledger,
    sink: Arc<dyn ObjectSink>,
    dir: tempfile::TempDir,
}

/// An org of `n` recordings archived (late window off unless `late_window`) and indexed.
async fn org(
    n: usize,
    tweak: impl FnOnce(&mut SimConfig),
    late_window: Duration,
    index: bool,
) -> Org {
    // Conversations that ended four to six days ago: past the late window a release never
    // enters, whatever the ledger's window.
    let mut cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        start: chrono::Utc::now() - chrono::Duration::days(6),
        ..SimConfig::default()
    };
    tweak(&mut cfg);
    let sim = Simulator::start(cfg).await.unwrap();
    let client = sim_client(&sim, |c| c.poll_initial = Duration::from_millis(50));
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let start = sim.config().start;
    let late = archiver::LateWindow {
        window: late_window,
        ..archiver::LateWindow::default()
    };
    let _ = archive(
        client.clone(),
        sink.clone(),
        client.discover_known(
            DiscoveryQuery::interval(
                start - chrono::Duration::hours(1),
                start + chrono::Duration::days(3),
            ),
            Some(ledger.known_conversations_with(late)),
        ),
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            late_window,
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
    )
    .await;
    if index {
        write_index(&ledger, sink.as_ref(), "index/", chrono::Utc::now(), None)
            .await
            .unwrap();
    }
    Org {
        sim,
        client,
        ledger,
        sink,
        dir,
    }
}

fn policy(execute: bool) -> ReleasePolicy {
    ReleasePolicy {
        older_than: Duration::ZERO,
        execute,
        per_minute: 6000,
        ..ReleasePolicy::default()
    }
}

impl Org {
    async fn release(&self, p: &ReleasePolicy) -> ReleaseReport {
        release(&self.client, &self.ledger, self.sink.as_ref(), p)
            .await
            .unwrap()
    }

    /// Recording indexes whose delete date is set at the source.
    fn released_at_source(&self) -> Vec<usize> {
        (0..self.sim.dataset().recordings.len())
            .filter(|&i| self.sim.delete_date(i).is_some())
            .collect()
    }

    fn index_of(&self, recording_id: &str) -> usize {
        self.sim
            .dataset()
            .recordings
            .iter()
            .position(|r| r.id == recording_id)
            .unwrap()
    }

    async fn key_of(&self, index: usize) -> String {
        let id = &self.sim.dataset().recordings[index].id;
        self.ledger.archived_key(id).await.unwrap().unwrap()
    }
}

/// A dry run reports and sets nothing; `execute` sets every proven recording's delete date
/// once, records it, and a rerun spends no PUT; once the date passes the source deletes them.
#[tokio::test]
async fn proven_recordings_are_released_once_and_a_dry_run_changes_nothing() {
    let o = org(12, |_| {}, Duration::ZERO, true).await;
    let dry = o.release(&policy(false)).await;
    assert_eq!(dry.considered, 12, "{dry:?}");
    assert_eq!(dry.eligible, 12, "{dry:?}");
    assert_eq!((dry.released, dry.put_calls), (0, 0));
    assert!(dry.protection_calls >= 1);
    assert!(o.released_at_source().is_empty());
    assert!(o.ledger.releases().await.unwrap().is_empty());
    let before = o.sim.stats().by_route.clone();

    let run = o.release(&policy(true)).await;
    assert!(run.clean(), "{run:?}");
    assert_eq!(run.released, 12);
    assert_eq!(run.put_calls, 12);
    assert_eq!(o.released_at_source().len(), 12);
    let rows = o.ledger.releases().await.unwrap();
    assert_eq!(rows.len(), 12);
    assert!(
        rows.iter()
            .all(|r| r.state == ReleaseState::Released && r.released_at.is_some())
    );
    // Every row considered is either eligible or held under one reason.
    for r in [&dry, &run] {
        assert_eq!(
            r.considered,
            r.eligible + r.held.values().sum::<u64>(),
            "{r:?}"
        );
    }
    let after = o.sim.stats();
    assert_eq!(after.restorations, 0, "only deleteDate is sent");
    let puts: u64 = after
        .by_route
        .iter()
        .filter(|(k, _)| k.starts_with("PUT"))
        .map(|(_, v)| v)
        .sum::<u64>()
        - before
            .iter()
            .filter(|(k, _)| k.starts_with("PUT"))
            .map(|(_, v)| v)
            .sum::<u64>();
    assert_eq!(puts, 12);

    let again = o.release(&policy(true)).await;
    assert_eq!(
        (again.considered, again.put_calls, again.protection_calls),
        (0, 0, 0)
    );

    // The index lists the releases after them: an auditor with only the store sees them.
    let parts = write_index(
        &o.ledger,
        o.sink.as_ref(),
        "index/",
        chrono::Utc::now(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let text = std::fs::read_to_string(o.dir.path().join(&parts[0].key)).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["releases"], 12, "{text}");
    assert_eq!(header["entries"], 0);
    let lines: Vec<archiver::ReleaseLine> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l.state == "released" && l.object_part == 1)
    );
    let chain = archiver::verify_chain(o.sink.as_ref(), "index/", Some(&o.ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(chain.clean(), "{chain:?}");
    assert_eq!((chain.parts, chain.releases), (2, 12));
    // The first part, written before any release, has no `releases` field.
    let first = o.ledger.index_parts().await.unwrap()[0].key.clone();
    let first = std::fs::read_to_string(o.dir.path().join(first)).unwrap();
    assert!(
        !first.lines().next().unwrap().contains("releases"),
        "{first}"
    );

    // A ledger lost and rebuilt from the store knows the releases again: nothing is
    // released twice, and `verify` keeps watching their copies.
    let rebuilt = Ledger::in_memory().unwrap();
    archiver::rebuild_ledger(&rebuilt, o.sink.as_ref(), "recordings/", "index/")
        .await
        .unwrap();
    let back = rebuilt.releases().await.unwrap();
    assert_eq!(back.len(), 12, "{back:?}");
    let kept: std::collections::BTreeMap<_, _> = rows
        .iter()
        .map(|r| (r.recording_id.clone(), r.delete_date.clone()))
        .collect();
    assert!(
        back.iter().all(|r| r.state == ReleaseState::Released
            && kept.get(&r.recording_id) == Some(&r.delete_date))
    );
    let rerun = release(&o.client, &rebuilt, o.sink.as_ref(), &policy(true))
        .await
        .unwrap();
    assert_eq!(rerun.put_calls, 0, "{rerun:?}");

    assert!((0..12).all(|i| !o.sim.is_deleted(i)));
    o.sim
        .pass_retention_time(Duration::from_secs(8 * 24 * 3600));
    assert!((0..12).all(|i| o.sim.is_deleted(i)));
}

/// A removed object, an altered one (with `rehash`) and one whose index part was altered are
/// each held; the others are released.
#[tokio::test]
async fn a_missing_altered_or_unindexed_copy_is_never_released() {
    let o = org(10, |_| {}, Duration::ZERO, true).await;
    let (gone, altered) = (o.key_of(1).await, o.key_of(2).await);
    std::fs::remove_file(o.dir.path().join(&gone)).unwrap();
    let path = o.dir.path().join(&altered);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let run = o
        .release(&ReleasePolicy {
            rehash: true,
            ..policy(true)
        })
        .await;
    assert_eq!(run.held.get("object-missing"), Some(&1), "{run:?}");
    assert_eq!(run.held.get("object-differs"), Some(&1), "{run:?}");
    assert_eq!(
        run.considered,
        run.eligible + run.held.values().sum::<u64>()
    );
    let released = o.released_at_source();
    assert!(!released.contains(&1) && !released.contains(&2));
    assert_eq!(released.len(), 8);

    // Not indexed: nothing of a ledger without parts is released.
    let o = org(4, |_| {}, Duration::ZERO, false).await;
    let run = o.release(&policy(true)).await;
    assert_eq!(run.held.get("not-indexed"), Some(&4), "{run:?}");
    assert!(o.released_at_source().is_empty());

    // An index part altered in the store: its bytes are not the ones the ledger recorded.
    let o = org(4, |_| {}, Duration::ZERO, true).await;
    let part = o.ledger.index_parts().await.unwrap()[0].key.clone();
    let p = o.dir.path().join(part);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"object\"", "\"object\" ");
    std::fs::write(&p, text).unwrap();
    let run = o.release(&policy(true)).await;
    assert_eq!(run.held.get("index-disagrees"), Some(&4), "{run:?}");
    assert!(o.released_at_source().is_empty());
}

/// Deletion protection, a required Object Lock the store lacks, a conversation whose late
/// window is open, a recording too recent and a failed one each hold.
#[tokio::test]
async fn protected_unlocked_recent_or_unsettled_recordings_are_held() {
    let o = org(6, |_| {}, Duration::ZERO, true).await;
    let conv = o.sim.dataset().recordings[0].conversation_id.clone();
    let in_conv = o
        .sim
        .dataset()
        .recordings
        .iter()
        .filter(|r| r.conversation_id == conv)
        .count() as u64;
    o.sim.protect_conversations([conv]);
    let run = o
        .release(&ReleasePolicy {
            require_lock_for: Some(Duration::from_secs(30 * 24 * 3600)),
            ..policy(true)
        })
        .await;
    assert_eq!(run.held.get("not-locked"), Some(&(6 - in_conv)), "{run:?}");
    assert_eq!(
        run.held.get("deletion-protected"),
        Some(&in_conv),
        "{run:?}"
    );
    assert!(o.released_at_source().is_empty());
    let run = o.release(&policy(true)).await;
    assert_eq!(
        run.held.get("deletion-protected"),
        Some(&in_conv),
        "{run:?}"
    );
    assert!(!o.released_at_source().contains(&0));
    assert_eq!(o.released_at_source().len() as u64, 6 - in_conv);

    // The default late window: conversations that ended in the last 48 h keep a recheck.
    let o = org(
        8,
        |c| c.start = SimConfig::default().start,
        archiver::DEFAULT_LATE_WINDOW,
        true,
    )
    .await;
    let run = o.release(&policy(true)).await;
    let open = run.held.get("late-window-open").copied().unwrap_or(0);
    assert!(open > 0, "{run:?}");
    assert_eq!(run.released + open, 8, "{run:?}");
    // With the late window off in the ledger, a release still never enters the default 48 h.
    let o = org(
        8,
        |c| c.start = SimConfig::default().start,
        Duration::ZERO,
        true,
    )
    .await;
    let run = o.release(&policy(true)).await;
    let recent = run.held.get("too-recent").copied().unwrap_or(0);
    assert!(recent > 0, "{run:?}");
    assert_eq!(run.released + recent, 8, "{run:?}");

    // Too recent for --older-than.
    let o = org(4, |_| {}, Duration::ZERO, true).await;
    let run = o
        .release(&ReleasePolicy {
            older_than: Duration::from_secs(30 * 24 * 3600),
            ..policy(true)
        })
        .await;
    assert_eq!(run.held.get("too-recent"), Some(&4), "{run:?}");
    assert!(o.released_at_source().is_empty());

    // A recording that failed: neither it nor another file of its conversation is released.
    let o = org(
        6,
        |c| c.faults = vec!["3=expired".parse::<FaultSpec>().unwrap()],
        Duration::ZERO,
        true,
    )
    .await;
    let conv = o.sim.dataset().recordings[3].conversation_id.clone();
    let run = o.release(&policy(true)).await;
    assert!(
        run.held.keys().any(|k| k.starts_with("not-archived")),
        "{run:?}"
    );
    for i in o.released_at_source() {
        assert_ne!(o.sim.dataset().recordings[i].conversation_id, conv);
    }
    assert!(!o.released_at_source().contains(&3));
}

/// Two files of one recording are released together, with one PUT; a recording is held
/// whole when one of its files is.
#[tokio::test]
async fn a_recording_of_two_files_is_released_whole() {
    let o = org(
        3,
        |c| c.faults = vec!["0=twofiles".parse::<FaultSpec>().unwrap()],
        Duration::ZERO,
        true,
    )
    .await;
    let id = o.sim.dataset().recordings[0].id.clone();
    let files: Vec<_> = o
        .ledger
        .entries(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.recording_id.starts_with(&format!("{id}~")))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    std::fs::remove_file(o.dir.path().join(&files[1].key)).unwrap();
    let run = o.release(&policy(true)).await;
    assert_eq!(run.held.get("object-missing"), Some(&1), "{run:?}");
    assert_eq!(run.held.get("other-file-held"), Some(&1), "{run:?}");
    assert!(!o.released_at_source().contains(&0));
    assert_eq!(o.released_at_source().len(), 2);
}

/// Without `editRetention` the source refuses: reported, nothing recorded as released. A
/// 409 is retried. A release recorded as intended (a crash after the proof) is sent again and
/// confirmed.
#[tokio::test]
async fn refusals_conflicts_and_interrupted_releases() {
    let o = org(
        3,
        |c| c.missing_permissions = vec!["recording:recording:editRetention".into()],
        Duration::ZERO,
        true,
    )
    .await;
    let run = o.release(&policy(true)).await;
    assert_eq!(run.refused.len(), 3, "{run:?}");
    assert!(!run.clean());
    assert!(run.refused[0].contains("editRetention"), "{run:?}");
    assert_eq!(run.released, 0);
    let rows = o.ledger.releases().await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.state == ReleaseState::Refused
        && r.last_error.as_deref().is_some_and(|e| e.contains("403"))));
    // Refused once: not sent again by later runs unless asked.
    let again = o.release(&policy(true)).await;
    assert_eq!((again.considered, again.put_calls), (0, 0), "{again:?}");
    let retry = o
        .release(&ReleasePolicy {
            retry_refused: true,
            ..policy(true)
        })
        .await;
    assert_eq!((retry.put_calls, retry.refused.len()), (3, 3), "{retry:?}");

    let o = org(3, |c| c.retention_conflicts = 2, Duration::ZERO, true).await;
    let run = o.release(&policy(true)).await;
    assert!(run.clean(), "{run:?}");
    assert_eq!(run.released, 3);

    // Interrupted: a proof recorded, the PUT perhaps made, the confirmation never written.
    let o = org(2, |_| {}, Duration::ZERO, true).await;
    let dry = o.release(&policy(false)).await;
    assert_eq!(dry.eligible, 2);
    let id = o.sim.dataset().recordings[0].id.clone();
    let e = o.ledger.entry(&id).await.unwrap().unwrap();
    let part = o.ledger.index_parts().await.unwrap()[0].clone();
    o.ledger
        .release_proven(ReleaseRecord {
            recording_id: id.clone(),
            conversation_id: e.conversation_id.clone(),
            key: e.key.clone(),
            size: e.size.unwrap(),
            md5: e.md5.clone().unwrap(),
            sha256: e.sha256.clone().unwrap(),
            index_seq: 1,
            index_sha256: part.sha256.clone().unwrap(),
            delete_date: "2099-01-01T00:00:00.000Z".into(),
            state: ReleaseState::Intended,
            proven_at: String::new(),
            released_at: None,
            undone_at: None,
            last_error: None,
        })
        .await
        .unwrap();
    o.client
        .set_delete_date(
            &e.conversation_id,
            &id,
            chrono::Utc::now() + chrono::Duration::days(3),
        )
        .await
        .unwrap();
    let run = o.release(&policy(true)).await;
    assert!(run.clean(), "{run:?}");
    assert_eq!(run.released, 2);
    let rows = o.ledger.releases().await.unwrap();
    assert!(
        rows.iter().all(|r| r.state == ReleaseState::Released),
        "{rows:?}"
    );
    let i = o.index_of(&id);
    let set = o.sim.delete_date(i).unwrap();
    assert!(
        set > chrono::Utc::now() + chrono::Duration::days(6),
        "sent again with the new date"
    );
}

/// Without `rehash`, an object whose store reports no digest vouching for its bytes is held
/// (only re-reading proves it); a limit bounds the PUTs; a lock that would end with the grace
/// is refused.
#[tokio::test]
async fn no_digest_without_rehash_limits_and_lock_policy() {
    let o = org(4, |_| {}, Duration::ZERO, true).await;
    let key = o.key_of(1).await;
    std::fs::remove_file(o.dir.path().join(format!("{key}.meta.json"))).unwrap();
    let run = o.release(&policy(false)).await;
    assert_eq!(run.held.get("no-store-digest"), Some(&1), "{run:?}");
    assert_eq!(run.eligible, 3);
    let run = o
        .release(&ReleasePolicy {
            rehash: true,
            ..policy(false)
        })
        .await;
    assert_eq!(
        run.eligible, 4,
        "re-read, the bytes prove themselves: {run:?}"
    );

    let run = o
        .release(&ReleasePolicy {
            limit: Some(2),
            ..policy(true)
        })
        .await;
    assert_eq!((run.put_calls, run.released), (2, 2), "{run:?}");
    assert!(run.limited);
    assert_eq!(o.released_at_source().len(), 2);

    let err = release(
        &o.client,
        &o.ledger,
        o.sink.as_ref(),
        &ReleasePolicy {
            require_lock_for: Some(ReleasePolicy::default().grace),
            ..policy(true)
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("outlast the grace"), "{err}");
}

/// A release an earlier run recorded (its PUT perhaps made) whose copy is gone now is reported
/// at risk, never sent again; refused now, it stays recorded (the earlier date may stand).
#[tokio::test]
async fn an_earlier_release_whose_proof_fails_now_is_at_risk_and_kept() {
    let o = org(
        3,
        |c| c.missing_permissions = vec!["recording:recording:editRetention".into()],
        Duration::ZERO,
        true,
    )
    .await;
    let part = o.ledger.index_parts().await.unwrap()[0].clone();
    for i in [0, 1] {
        let id = o.sim.dataset().recordings[i].id.clone();
        let e = o.ledger.entry(&id).await.unwrap().unwrap();
        assert!(
            o.ledger
                .release_proven(ReleaseRecord {
                    recording_id: id.clone(),
                    conversation_id: e.conversation_id.clone(),
                    key: e.key.clone(),
                    size: e.size.unwrap(),
                    md5: e.md5.clone().unwrap(),
                    sha256: e.sha256.clone().unwrap(),
                    index_seq: part.seq,
                    index_sha256: part.sha256.clone().unwrap(),
                    delete_date: "2030-01-01T00:00:00.000Z".into(),
                    state: ReleaseState::Intended,
                    proven_at: String::new(),
                    released_at: None,
                    undone_at: None,
                    last_error: None,
                })
                .await
                .unwrap()
        );
    }
    let gone = o.key_of(0).await;
    std::fs::remove_file(o.dir.path().join(&gone)).unwrap();
    let run = o.release(&policy(true)).await;
    assert!(!run.clean());
    assert_eq!(run.at_risk.len(), 1, "{run:?}");
    assert!(run.at_risk[0].contains(&o.sim.dataset().recordings[0].id));
    assert!(run.at_risk[0].contains("object-missing"), "{run:?}");
    // Recording 1 was proven and refused now: kept as intended, with its first date.
    assert!(
        run.unconfirmed
            .iter()
            .any(|u| u.contains(&o.sim.dataset().recordings[1].id) && u.contains("may stand")),
        "{run:?}"
    );
    // Recording 2, never sent before, refused: reported and recorded refused.
    assert_eq!(run.refused.len(), 1, "{run:?}");
    let rows = o.ledger.releases().await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let intended: Vec<_> = rows
        .iter()
        .filter(|r| r.state == ReleaseState::Intended)
        .collect();
    assert_eq!(intended.len(), 2, "{rows:?}");
    assert!(
        intended
            .iter()
            .all(|r| r.delete_date == "2030-01-01T00:00:00.000Z"),
        "the first date is kept while unconfirmed: {rows:?}"
    );
}

/// Undo pushes the delete dates out and keeps watching; it never brings a deletion closer,
/// and a recording taken back is not released again.
#[tokio::test]
async fn undo_pushes_dates_out_never_closer() {
    let o = org(3, |_| {}, Duration::ZERO, true).await;
    let run = o.release(&policy(true)).await;
    assert_eq!(run.released, 3, "{run:?}");
    write_index(
        &o.ledger,
        o.sink.as_ref(),
        "index/",
        chrono::Utc::now(),
        None,
    )
    .await
    .unwrap();
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let undo = |keep: u64| {
        archiver::undo_releases(
            &o.client,
            &o.ledger,
            since,
            Duration::from_secs(keep),
            6000,
            "test",
        )
    };
    let closer = undo(2 * 24 * 3600).await.unwrap();
    assert_eq!((closer.undone, closer.put_calls), (0, 0), "{closer:?}");
    assert_eq!(closer.failed.len(), 3);
    let err = undo(3600).await.unwrap_err();
    assert!(err.to_string().contains("25 hours"), "{err}");
    let done = undo(365 * 24 * 3600).await.unwrap();
    assert_eq!(done.undone, 3, "{done:?}");
    let far = chrono::Utc::now() + chrono::Duration::days(300);
    assert!((0..3).all(|i| o.sim.delete_date(i).unwrap() > far));
    let rows = o.ledger.releases().await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.state == ReleaseState::Undone && r.delete_date.as_str() > "2027-01-01"),
        "{rows:?}"
    );
    let again = o.release(&policy(true)).await;
    assert_eq!((again.considered, again.put_calls), (0, 0), "{again:?}");
    // Released then taken back: the index lists both, in two parts, and the chain checks.
    write_index(
        &o.ledger,
        o.sink.as_ref(),
        "index/",
        chrono::Utc::now(),
        None,
    )
    .await
    .unwrap();
    let chain = archiver::verify_chain(o.sink.as_ref(), "index/", Some(&o.ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(chain.clean(), "{chain:?}");
    assert_eq!(
        chain.releases, 6,
        "three released, then three undone: {chain:?}"
    );
}
