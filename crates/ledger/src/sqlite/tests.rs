//! The SQLite backend through the `Ledger` facade: states, fencing, the process lock,
//! adoption and migrations.

use super::*;
use crate::Ledger;
use std::time::Duration;

fn rec(id: &str) -> genesys_media::DiscoveredRecording {
    test_support::bare_recording("c1", id)
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn rows_move_through_their_states_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let spec = path.to_str().unwrap();
    let l = Ledger::open(spec).await.unwrap();
    assert_eq!(l.schema_version().await.unwrap(), MIGRATIONS.len() as u32);
    assert_eq!(
        l.claim(&rec("r1"), "k1", "me", LEASE).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        l.archived_key("r1").await.unwrap(),
        None,
        "pending is not archived"
    );
    l.archived("r1", "me", "k1", 42, "abc", 1).await.unwrap();
    assert_eq!(
        l.claim(&rec("r1"), "k1", "me", LEASE).await.unwrap(),
        Claim::Archived { key: "k1".into() }
    );
    l.claim(&rec("r2"), "k2", "me", LEASE).await.unwrap();
    l.failed("r2", "me", "md5 mismatch", true, 2).await.unwrap();
    assert_eq!(
        l.claim(&rec("r2"), "k2", "me", LEASE).await.unwrap(),
        Claim::Quarantined {
            reason: "md5 mismatch".into()
        }
    );
    l.claim(&rec("r3"), "k3", "me", LEASE).await.unwrap();
    l.set_checkpoint("poll", "2026-11-01T00:00:00Z")
        .await
        .unwrap();
    drop(l);
    let l = Ledger::open(spec).await.unwrap();
    assert_eq!(l.archived_key("r1").await.unwrap().as_deref(), Some("k1"));
    let all = l.entries(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].size, Some(42));
    assert_eq!(all[0].media_type.as_deref(), Some("audio"));
    assert_eq!(all[1].status, RecordStatus::Quarantined);
    assert_eq!(all[1].attempts, 2);
    assert_eq!(all[2].status, RecordStatus::Pending);
    assert_eq!(all[2].lease_owner.as_deref(), Some("me"));
    // The pending row of the dead "me" is taken over by the next process at once, marked
    // as resumed so the object is written again.
    assert_eq!(
        l.claim(&rec("r3"), "k3", "next", LEASE).await.unwrap(),
        Claim::Resumed
    );
    assert_eq!(
        l.checkpoint("poll").await.unwrap().as_deref(),
        Some("2026-11-01T00:00:00Z")
    );
    let released = l.release_quarantined(&[]).await.unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(
        l.claim(&rec("r2"), "k2", "next", LEASE).await.unwrap(),
        Claim::Resumed,
        "a released recording is written again, not adopted from what its failure left"
    );
}

/// Ledger writes are fenced by the lease: once another owner has taken a recording over,
/// the old owner's outcome is refused and the new owner's row is left as it is.
#[tokio::test]
async fn a_stale_owner_cannot_write_the_outcome() {
    let l = Ledger::in_memory().unwrap();
    assert_eq!(
        l.claim(&rec("r1"), "k1", "old", LEASE).await.unwrap(),
        Claim::Claimed
    );
    // The old owner is gone as far as this (exclusive) ledger can tell: taken over.
    assert_eq!(
        l.claim(&rec("r1"), "k1", "new", LEASE).await.unwrap(),
        Claim::Resumed
    );
    for stale in [
        l.archived("r1", "old", "k1", 1, "bad", 1).await,
        l.failed("r1", "old", "its upload failed", true, 2).await,
    ] {
        let e = stale.unwrap_err();
        assert!(e.is_lease_lost(), "{e}");
    }
    let row = l.entry("r1").await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Pending);
    assert_eq!(row.lease_owner.as_deref(), Some("new"));
    l.archived("r1", "new", "k1", 42, "abc", 1).await.unwrap();
    let row = l.entry("r1").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.md5.as_deref()),
        (RecordStatus::Archived, Some("abc"))
    );
    // And once archived, no late writer changes it.
    assert!(
        l.failed("r1", "new", "late", false, 1)
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    // Giving up takes only a failed row.
    l.claim(&rec("r2"), "k2", "new", LEASE).await.unwrap();
    assert!(
        !l.give_up("r2", "x").await.unwrap(),
        "a pending row is not given up"
    );
    l.failed("r2", "new", "refused", false, 9).await.unwrap();
    assert!(l.give_up("r2", "gave up after 9 attempts").await.unwrap());
    let row = l.entry("r2").await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Quarantined);
    assert_eq!(row.last_error.as_deref(), Some("gave up after 9 attempts"));
}

#[tokio::test]
async fn a_second_process_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let spec = path.to_str().unwrap();
    let first = Ledger::open(spec).await.unwrap();
    let e = Ledger::open(spec).await.unwrap_err().to_string();
    assert!(e.contains("in use") && e.contains("state.db.lock"), "{e}");
    // Read-only operator commands still work.
    let shared = Ledger::open_shared(spec).await.unwrap();
    assert!(shared.entries(None).await.unwrap().is_empty());
    drop(first);
    Ledger::open(spec).await.unwrap();
}

#[tokio::test]
async fn adopting_a_stored_object_marks_it_archived_once() {
    let l = Ledger::in_memory().unwrap();
    let obj = AdoptedObject {
        recording_id: "r1".into(),
        conversation_id: "c1".into(),
        key: "k1".into(),
        size: Some(7),
        md5: None,
        sha256: None,
        media_type: None,
        start_time: None,
        end_time: None,
    };
    assert!(l.adopt(obj.clone()).await.unwrap());
    assert!(!l.adopt(obj).await.unwrap(), "already archived: unchanged");
    assert_eq!(l.archived_key("r1").await.unwrap().as_deref(), Some("k1"));
}

#[tokio::test]
async fn a_version_one_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO recordings (recording_id, conversation_id, object_key, status, size, md5, attempts)
             VALUES ('r1', 'c1', 'k1', 'archived', 5, 'abc', 1)",
            [],
        )
        .unwrap();
    }
    let l = Ledger::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(l.schema_version().await.unwrap(), MIGRATIONS.len() as u32);
    assert_eq!(l.archived_key("r1").await.unwrap().as_deref(), Some("k1"));
}

/// A ledger from before the late window (schema 5) is upgraded with the rechecks its rows
/// would have been given: a conversation resolved inside the default 48 h window is looked at
/// again once it has passed; one that ended long ago, or an unfinished one, is left alone.
#[tokio::test]
async fn conversations_resolved_before_the_late_window_get_their_recheck() {
    use chrono::{Duration as Span, SecondsFormat, Utc};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let now = Utc::now();
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    {
        let c = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..5] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 5).unwrap();
        let put = |id: &str, end: Option<String>, resolved: String, complete: bool| {
            c.execute(
                "INSERT INTO conversations (conversation_id, end_time, files, complete, resolved_at)
                 VALUES (?1, ?2, '[]', ?3, ?4)",
                params![id, end, complete, resolved],
            )
            .unwrap();
        };
        put("recent", Some(at(now - Span::hours(1))), at(now), true);
        put("no-end", None, at(now - Span::hours(2)), true);
        put(
            "old",
            Some(at(now - Span::days(5))),
            at(now - Span::days(5) + Span::hours(1)),
            true,
        );
        put(
            "backfilled",
            Some(at(now - Span::days(9))),
            at(now - Span::hours(1)),
            true,
        );
        put("unfinished", Some(at(now - Span::hours(1))), at(now), false);
    }
    let l = Ledger::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(l.schema_version().await.unwrap(), MIGRATIONS.len() as u32);
    let due = |t| {
        let l = l.clone();
        async move {
            let mut ids: Vec<String> = l
                .due_rechecks(t, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.conversation_id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert!(
        due(now).await.is_empty(),
        "not before the window has passed"
    );
    assert!(
        due(now + Span::hours(45)).await.is_empty(),
        "not before 48 h"
    );
    assert_eq!(due(now + Span::hours(49)).await, ["no-end", "recent"]);
    let settled = l
        .settled_conversations_at(&["recent".into(), "old".into()], now + Span::hours(49))
        .await
        .unwrap();
    assert!(
        !settled.contains("recent") && settled.contains("old"),
        "{settled:?}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = Ledger::open(path.to_str().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("newer") && e.contains("state.db"), "{e}");
}
