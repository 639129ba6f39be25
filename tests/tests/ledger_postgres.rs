//! The shared PostgreSQL ledger on a real server: claims, leases and their expiry, migrations,
//! and two archiver instances on one ledger archiving a set with no duplicate download.
//!
//! Longer than ~800 lines on purpose: every file under `tests/tests` is a test binary of its
//! own, linked against the whole workspace (one more link for the 2-core CI each); these
//! tests of the ledger itself stay in one binary rather than two.

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Claim, Ledger, RecordStatus, archive};
use e2e::{Server, fresh_postgres_database, fresh_sink};
use futures::StreamExt;
use genesys_media::{DiscoveredRecording, DiscoveryQuery};
use genesys_sim::{Fault, FaultSpec, SimConfig, Simulator};
use sink::ObjectSink;
use test_support::{bare_recording, sim_client};

fn rec(id: &str) -> DiscoveredRecording {
    bare_recording(&format!("conv-{id}"), id)
}

#[tokio::test]
async fn claims_respect_live_leases_and_take_over_expired_ones() {
    let url = fresh_postgres_database("claims").await;
    let a = Ledger::open(&url).await.unwrap();
    let b = Ledger::open(&url).await.unwrap();
    assert_eq!(a.schema_version().await.unwrap(), 8);
    assert!(
        !a.location().contains("password"),
        "location is printable: {}",
        a.location()
    );
    let long = Duration::from_secs(60);
    assert_eq!(
        a.claim(&rec("r1"), "k1", "a", long).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        b.claim(&rec("r1"), "k1", "b", long).await.unwrap(),
        Claim::Busy { owner: "a".into() },
        "a live lease of another instance is respected"
    );
    assert!(a.renew("r1", "a", long).await.unwrap());
    assert!(!b.renew("r1", "b", long).await.unwrap(), "b holds no lease");
    a.archived("r1", "a", "k1", 10, "md5", 1).await.unwrap();
    assert_eq!(
        b.claim(&rec("r1"), "k1", "b", long).await.unwrap(),
        Claim::Archived { key: "k1".into() }
    );

    // A dead instance's lease expires and another takes the recording over.
    let short = Duration::from_millis(300);
    assert_eq!(
        a.claim(&rec("r2"), "k2", "a", short).await.unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        b.claim(&rec("r2"), "k2", "b", long).await.unwrap(),
        Claim::Busy { .. }
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.claim(&rec("r2"), "k2", "b", long).await.unwrap(),
        Claim::Resumed
    );
    assert!(
        !a.renew("r2", "a", long).await.unwrap(),
        "the old owner learns it lost the lease"
    );
    // Fenced: the old owner's late outcome is refused; the new owner's claim stands.
    let stale = a
        .archived("r2", "a", "k2", 1, "stale", 1)
        .await
        .unwrap_err();
    assert!(stale.is_lease_lost(), "{stale}");
    assert!(
        a.failed("r2", "a", "x", false, 1)
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    let row = b.entry("r2").await.unwrap().unwrap();
    assert_eq!(row.lease_owner.as_deref(), Some("b"));
    assert_eq!(row.md5, None);

    // Quarantine, release, checkpoints, and a third instance re-running migrations.
    b.failed("r2", "b", "md5 mismatch twice", true, 2)
        .await
        .unwrap();
    assert!(matches!(
        a.claim(&rec("r2"), "k2", "a", long).await.unwrap(),
        Claim::Quarantined { .. }
    ));
    let c = Ledger::open(&url).await.unwrap();
    assert_eq!(c.schema_version().await.unwrap(), 8);
    assert_eq!(c.release_quarantined(&[]).await.unwrap().len(), 1);
    assert_eq!(
        c.claim(&rec("r2"), "k2", "c", long).await.unwrap(),
        Claim::Resumed,
        "a released recording is written again, not adopted from what its failure left"
    );
    c.set_checkpoint("discovery", "2026-11-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        a.checkpoint("discovery").await.unwrap().as_deref(),
        Some("2026-11-01T00:00:00.000Z")
    );
    let rows = a.entries(None).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].status, RecordStatus::Archived);
    assert_eq!(rows[1].lease_owner.as_deref(), Some("c"));
}

#[tokio::test]
async fn many_concurrent_claims_of_one_recording_have_one_winner() {
    let url = fresh_postgres_database("race").await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            let l = Ledger::open(&url).await.unwrap();
            l.claim(
                &rec("contended"),
                "k",
                &format!("i{i}"),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
        }));
    }
    let mut claimed = 0;
    for h in handles {
        if h.await.unwrap() == Claim::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1, "exactly one instance wins the claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_and_outcomes_share_transactions_and_a_failing_one_fails_alone() {
    let url = fresh_postgres_database("group").await;
    let l = Arc::new(Ledger::open(&url).await.unwrap());
    // The test server runs with fsync off, so a commit takes no time to wait behind. Hold a
    // lock on the table from another connection instead: the first write blocks on it, the
    // rest queue behind the ledger's connection, as they do behind a slow WAL flush.
    let (blocker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let block = || blocker.batch_execute("BEGIN; LOCK TABLE recordings IN EXCLUSIVE MODE");
    block().await.unwrap();
    let mut claims = Vec::new();
    for i in 0..64 {
        let l = l.clone();
        claims.push(tokio::spawn(async move {
            // A NUL byte is not valid in PostgreSQL text: this claim's statement fails.
            let id = if i == 13 {
                "bad\0id".to_string()
            } else {
                format!("r{i}")
            };
            (
                i,
                l.claim(&rec(&id), &format!("k/{i}"), "w", Duration::from_secs(60))
                    .await,
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    let mut claimed = Vec::new();
    for h in claims {
        match h.await.unwrap() {
            (13, Err(e)) => assert!(e.to_string().contains("0x00"), "{e}"),
            (13, other) => panic!("the bad claim: {other:?}"),
            (i, Ok(Claim::Claimed)) => claimed.push(i),
            (i, other) => panic!("claim {i}: {other:?}"),
        }
    }
    block().await.unwrap();
    let outcomes: Vec<_> = claimed
        .into_iter()
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move {
                let (id, key) = (format!("r{i}"), format!("k/{i}"));
                l.archived(&id, "w", &key, 1, "00", 1).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.batch_execute("COMMIT").await.unwrap();
    for h in outcomes {
        h.await.unwrap().expect("outcome");
    }
    let archived = l.entries(Some(RecordStatus::Archived)).await.unwrap();
    assert_eq!(
        archived.len(),
        63,
        "every other claim and outcome committed"
    );
    let (commits, writes) = l.commit_counts().expect("counted");
    assert_eq!(writes, 127, "64 claims (one failing alone) and 63 outcomes");
    assert!(
        commits <= writes / 4,
        "{commits} transactions for {writes} writes: shared"
    );
}

#[tokio::test]
async fn two_instances_on_one_postgres_ledger_archive_a_set_without_duplicates() {
    let n = 60;
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        // Some slow bodies keep uploads in flight while the other instance looks at them.
        faults: (0..n)
            .step_by(7)
            .map(|i| FaultSpec {
                recording: i,
                fault: Fault::Slow(Duration::from_millis(40)),
                times: None,
            })
            .collect(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = fresh_postgres_database("shared").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "shared").await);
    let run = |instance: &'static str| {
        let client = sim_client(&sim, |c| c.poll_initial = Duration::from_millis(100));
        let (start, end) = (sim.config().start, sim.config().end());
        let sink = sink.clone();
        let url = url.clone();
        async move {
            let cfg = ArchiverConfig {
                ledger: Some(Ledger::open(&url).await.unwrap()),
                instance_id: instance.into(),
                verify_source_etag: true,
                ..ArchiverConfig::default()
            };
            archive(
                client.clone(),
                sink,
                client.discover(DiscoveryQuery::interval(start, end)),
                cfg,
                Arc::new(archiver::NoEvents),
            )
            .await
        }
    };
    let (a, b) = tokio::join!(run("instance-a"), run("instance-b"));
    // Each accounted for every recording: archived, found archived, or held by the other
    // (which is not clean for the one that met it: that work was the other's to finish).
    for s in [&a, &b] {
        assert_eq!(
            s.failed + s.quarantined + s.interrupted + s.pending,
            0,
            "{s:?}"
        );
        assert_eq!(
            s.archived + s.skipped + s.leased_elsewhere,
            n as u64,
            "{s:?}"
        );
        assert_eq!(s.success(), s.leased_elsewhere == 0, "{s:?}");
    }
    assert_eq!(
        a.archived + b.archived,
        n as u64,
        "every recording archived once between them: a {a:?} b {b:?}"
    );
    assert!(
        a.archived > 0 && b.archived > 0,
        "both instances did work: a {} b {}",
        a.archived,
        b.archived
    );
    assert_eq!(
        sim.stats().media_requests,
        n as u64,
        "no recording was downloaded twice"
    );
    let listed: Vec<_> = sink.list("recordings/").collect().await;
    assert_eq!(listed.len(), n, "one object per recording");
    let ledger = Ledger::open(&url).await.unwrap();
    let rows = ledger.entries(Some(RecordStatus::Archived)).await.unwrap();
    assert_eq!(rows.len(), n);
    for r in &rows {
        let sr = sim.dataset().recording(&r.recording_id).unwrap();
        assert_eq!(r.size, Some(sr.size));
        assert_eq!(
            r.md5.as_deref(),
            Some(hex::encode(sim.expected_md5(sr.index)).as_str())
        );
    }
}

/// Uploads recorded in the shared ledger: one instance's sweep sees another live instance's
/// upload as taken (never abandoned), and a dead instance's once its lease expired.
#[tokio::test]
async fn only_uploads_of_writers_without_a_live_lease_are_abandoned() {
    let url = fresh_postgres_database("uploads").await;
    let a = Ledger::open(&url).await.unwrap();
    let b = Ledger::open(&url).await.unwrap();
    let up = |id: &str| sink::StartedUpload {
        key: format!("k/{id}"),
        upload_id: id.into(),
    };
    a.claim(&rec("r1"), "k1", "a", Duration::from_secs(60))
        .await
        .unwrap();
    a.upload_started("r1", "a", &up("u1")).await.unwrap();
    b.claim(&rec("r2"), "k2", "b", Duration::from_millis(300))
        .await
        .unwrap();
    b.upload_started("r2", "b", &up("u2")).await.unwrap();
    assert_eq!(a.abandoned_uploads().await.unwrap(), []);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        a.abandoned_uploads().await.unwrap(),
        [up("u2")],
        "b's lease expired: its upload is abandoned; a's is not"
    );
    a.uploads_ended(&["u2".into()]).await.unwrap();
    assert_eq!(b.abandoned_uploads().await.unwrap(), []);
}

/// TLS to the ledger per libpq's `sslmode` against the local PostgreSQL, whose certificate a
/// self-signed CA issued for `localhost` only: each mode connects (or refuses) as libpq does,
/// and the server confirms which connections are encrypted (`pg_stat_ssl`).
#[tokio::test]
async fn tls_to_the_ledger_honours_sslmode() {
    let url = fresh_postgres_database("tls").await;
    let ca = std::env::var("E2E_POSTGRES_CA").expect("E2E_POSTGRES_CA (scripts/test.sh)");
    let other = std::env::var("E2E_POSTGRES_OTHER_CA").expect("E2E_POSTGRES_OTHER_CA");
    let by_name = url.replace("127.0.0.1", "localhost");
    let admin = e2e::postgres_url();
    let (probe, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // (URL, encrypted when connected; None: the connection must be refused, naming why)
    let cases: Vec<(String, Option<bool>, &str)> = vec![
        (format!("{url}?sslmode=disable"), Some(false), ""),
        (url.clone(), Some(true), ""),
        (format!("{url}?sslmode=prefer"), Some(true), ""),
        (format!("{url}?sslmode=require"), Some(true), ""),
        (
            format!("{url}?sslmode=verify-ca&sslrootcert={ca}"),
            Some(true),
            "",
        ),
        (
            format!("{by_name}?sslmode=verify-full&sslrootcert={ca}"),
            Some(true),
            "",
        ),
        (
            format!("{url}?sslmode=verify-full&sslrootcert={ca}"),
            None,
            "not valid for name",
        ),
        (
            format!("{url}?sslmode=verify-ca&sslrootcert={other}"),
            None,
            "invalid peer certificate",
        ),
        // libpq: `require` with a root certificate checks the chain like verify-ca.
        (
            format!("{url}?sslmode=require&sslrootcert={other}"),
            None,
            "invalid peer certificate",
        ),
        (
            format!("{url}?sslmode=verify-ca&sslrootcert=/nonexistent.pem"),
            None,
            "/nonexistent.pem",
        ),
        (
            format!("{url}?sslmode=verify_full"),
            None,
            "sslmode=verify_full",
        ),
    ];
    for (i, (spec, encrypted, why)) in cases.into_iter().enumerate() {
        let app = format!("tls-case-{i}");
        let sep = if spec.contains('?') { '&' } else { '?' };
        let spec = format!("{spec}{sep}application_name={app}");
        match (Ledger::open(&spec).await, encrypted) {
            (Ok(ledger), Some(want)) => {
                ledger.checkpoint("probe").await.unwrap();
                let rows = probe
                    .query(
                        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                         WHERE a.application_name = $1",
                        &[&app],
                    )
                    .await
                    .unwrap();
                let ssl: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
                assert_eq!(ssl, [want], "{spec}: encrypted as the mode says");
            }
            (Err(e), None) => {
                let m = e.to_string();
                assert!(m.contains(why), "{spec}: the error names why: {m}");
            }
            (Ok(_), None) => panic!("{spec}: must be refused"),
            (Err(e), Some(_)) => panic!("{spec}: must connect: {e}"),
        }
    }
}

/// An induced lease takeover between two instances on one PostgreSQL ledger: instance A is
/// uploading a recording (a slow body that fails half-way) when its lease expires (as if A
/// froze) and instance B claims the recording, stores it and records it. A's failing upload
/// must not delete B's object, A must not retry over it, and A's outcome must not overwrite
/// B's in the ledger.
#[tokio::test]
async fn a_taken_over_recording_is_neither_deleted_nor_rewritten_by_its_old_owner() {
    let size = 12 * 65_536;
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 1,
        size_range: (size, size + 1),
        faults: vec![FaultSpec {
            recording: 0,
            fault: Fault::SlowReset(Duration::from_millis(200)),
            times: Some(1),
        }],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = fresh_postgres_database("takeover").await;
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "takeover").await);
    let client = sim_client(&sim, |c| c.poll_initial = Duration::from_millis(50));
    let cfg = ArchiverConfig {
        ledger: Some(Ledger::open(&url).await.unwrap()),
        instance_id: "instance-a".into(),
        // Renewed every 2 s: A's upload fails (at about 1.2 s) before a renewal notices.
        lease: Duration::from_secs(6),
        ..ArchiverConfig::default()
    };
    let (start, end) = (sim.config().start, sim.config().end());
    let a = {
        let (client, sink) = (client.clone(), sink.clone());
        tokio::spawn(async move {
            archive(
                client.clone(),
                sink,
                client.discover(DiscoveryQuery::interval(start, end)),
                cfg,
                Arc::new(archiver::NoEvents),
            )
            .await
        })
    };
    let b = Ledger::open(&url).await.unwrap();
    let rid = sim.dataset().recordings[0].id.clone();
    let row = loop {
        if let Some(r) = b.entry(&rid).await.unwrap()
            && r.lease_owner.as_deref() == Some("instance-a")
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // A's lease runs out (A froze), B takes the recording over, stores it and records it.
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.execute(
        "UPDATE recordings SET lease_until = 0 WHERE recording_id = $1",
        &[&rid],
    )
    .await
    .unwrap();
    let claimed = b
        .claim(
            &bare_recording(&row.conversation_id, &rid),
            &row.key,
            "instance-b",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(
        matches!(claimed, Claim::Claimed | Claim::Resumed),
        "{claimed:?}"
    );
    let theirs = sink::testkit::pattern(1000, 9);
    let stored = sink
        .put(
            &row.key,
            sink::testkit::chunked(theirs.clone(), 100),
            sink::PutOptions {
                content_length: Some(1000),
                ..sink::PutOptions::default()
            },
        )
        .await
        .unwrap();
    b.archived(&rid, "instance-b", &row.key, 1000, &stored.md5.to_hex(), 1)
        .await
        .unwrap();

    let a = a.await.unwrap();
    assert_eq!(
        (a.archived, a.failed, a.leased_elsewhere),
        (0, 0, 1),
        "A stops as soon as it sees the recording is B's: {a:?}"
    );
    let now_there = sink.head(&row.key).await.unwrap();
    assert!(now_there.is_some(), "A deleted B's object");
    assert_eq!(
        sink::Md5Digest::of(&sink::testkit::read_all(sink.as_ref(), &row.key).await),
        sink::Md5Digest::of(&theirs),
        "B's object is not rewritten by A"
    );
    assert_eq!(
        sim.stats().media_requests,
        1,
        "A did not download again after losing the lease"
    );
    let row = b.entry(&rid).await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Archived);
    assert_eq!(row.md5.as_deref(), Some(stored.md5.to_hex().as_str()));
}

#[tokio::test]
async fn facts_find_and_index_parts_work_the_same_on_postgres() {
    let url = fresh_postgres_database("custody").await;
    let a = Ledger::open(&url).await.unwrap();
    let b = Ledger::open(&url).await.unwrap();
    let lease = Duration::from_secs(60);
    for (i, agent) in ["u1", "u2", "u1"].iter().enumerate() {
        let mut r = rec(&format!("f{i}"));
        r.start_time = Some(
            chrono::DateTime::parse_from_rfc3339(&format!("2026-11-0{}T10:00:00Z", i + 1))
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        r.facts = Arc::new(genesys_media::ConversationFacts {
            direction: Some("inbound".into()),
            queue_ids: vec!["q1".into()],
            user_ids: vec![agent.to_string()],
            ani: vec![format!("tel:+1555000{i}")],
            ..Default::default()
        });
        assert_eq!(
            a.claim(&r, &format!("k{i}"), "a", lease).await.unwrap(),
            Claim::Claimed
        );
        a.archived_object(
            &format!("f{i}"),
            "a",
            &archiver::StoredObject {
                key: format!("k{i}"),
                size: 10,
                md5: "m".into(),
                sha256: Some(format!("{i:064}")),
            },
            1,
        )
        .await
        .unwrap();
    }
    let ids = |rows: Vec<archiver::LedgerEntry>| {
        rows.into_iter().map(|r| r.recording_id).collect::<Vec<_>>()
    };
    let q = |agent: Option<&str>, number: Option<&str>, from: Option<&str>| archiver::FindQuery {
        agent: agent.map(str::to_string),
        number: number.map(str::to_string),
        from: from.map(str::to_string),
        ..Default::default()
    };
    assert_eq!(
        ids(b.find(&q(Some("u1"), None, None)).await.unwrap()),
        ["f0", "f2"]
    );
    assert_eq!(
        ids(b
            .find(&q(Some("u1"), None, Some("2026-11-02T00:00:00.000Z")))
            .await
            .unwrap()),
        ["f2"]
    );
    assert_eq!(
        ids(b.find(&q(None, Some("+15550001"), None)).await.unwrap()),
        ["f1"]
    );
    let row = b.entry("f1").await.unwrap().unwrap();
    assert_eq!(row.sha256.as_deref(), Some(format!("{:064}", 1).as_str()));
    assert_eq!(row.facts.user_ids, ["u2"]);
    // Two instances open part 1 at once: one gets the rows, the other steps back.
    let part = |key: &str| archiver::IndexPart {
        seq: 1,
        key: key.into(),
        previous: None,
        sha256: None,
        entries: 0,
    };
    let (ra, rb) = tokio::join!(
        a.open_index_part(part("index/a/1.jsonl"), 100),
        b.open_index_part(part("index/b/1.jsonl"), 100)
    );
    let mut got = [ra.unwrap(), rb.unwrap()];
    got.sort();
    assert_eq!(got, [None, Some(3)]);
    let rows = a.index_part_entries(1).await.unwrap();
    assert_eq!(rows.len(), 3);
    a.close_index_part(1, "abc").await.unwrap();
    let parts = b.index_parts().await.unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].sha256.as_deref(), Some("abc"));
    assert_eq!(parts[0].entries, 3);
    // A part found in the store is recorded once (a rebuilt ledger taking up the chain).
    assert!(!b.insert_index_part(part("index/b/1.jsonl")).await.unwrap());
    // Nothing waits for part 2.
    let next = archiver::IndexPart {
        seq: 2,
        ..part("index/a/2.jsonl")
    };
    assert_eq!(a.open_index_part(next, 100).await.unwrap(), Some(0));
    assert_eq!(b.index_parts().await.unwrap().len(), 1);
}

/// An instance killed while holding a recording's lease (its row stays `pending` until the
/// lease ends). Before, a poll finding it "leased by another instance" counted it as
/// accounted: exit 0, the checkpoint moved past it, and nothing ever revisited a pending row,
/// so it was never archived. Now it is pending: the run is not clean, the checkpoint holds at
/// its start, and once the lease ended a later poll archives it.
#[tokio::test]
async fn a_recording_a_killed_instance_held_is_archived_after_its_lease() {
    let url = fresh_postgres_database("dead_owner").await;
    let sim = Simulator::start(SimConfig {
        recordings: 6,
        start: chrono::Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ledger = Ledger::open(&url).await.unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "deadowner").await);
    // The killed instance's claim, as it left it.
    let held = test_support::sim_recording(&sim, 3);
    let lease = Duration::from_secs(5);
    assert_eq!(
        ledger
            .claim(&held, "left/by/dead", "dead", lease)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let claimed = tokio::time::Instant::now();
    let cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        instance_id: "live".into(),
        ..ArchiverConfig::default()
    };
    let poll = archiver::PollSettings {
        start: sim.config().start,
        settle: Duration::ZERO,
        max_polls: Some(1),
        ..archiver::PollSettings::default()
    };
    let run = || {
        archiver::run_continuous(
            sim_client(&sim, |c| c.poll_initial = Duration::from_millis(50)),
            sink.clone(),
            DiscoveryQuery::interval,
            cfg.clone(),
            poll.clone(),
            Arc::new(archiver::NoEvents),
        )
    };
    let first = run().await.unwrap();
    assert_eq!(
        (first.archived, first.leased_elsewhere),
        (5, 1),
        "{first:?}"
    );
    assert!(
        !first.success(),
        "a recording another instance holds is not done"
    );
    let checkpoint = ledger.checkpoint("discovery").await.unwrap().unwrap();
    let held_start = held.start_time.unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&checkpoint).unwrap() <= held_start,
        "the checkpoint {checkpoint} moved past the held recording ({held_start})"
    );

    tokio::time::sleep_until(claimed + lease + Duration::from_millis(200)).await;
    let second = run().await.unwrap();
    assert_eq!(second.archived, 1, "{second:?}");
    let row = ledger.entry(&held.ledger_id()).await.unwrap().unwrap();
    assert_eq!(row.status, RecordStatus::Archived);
}

/// A shared ledger from before the late window is upgraded with the rechecks its rows would
/// have been given: a conversation resolved inside the default 48 h window is looked at again
/// once it has passed; one that ended long ago, an unfinished one or a malformed end are safe.
#[tokio::test]
async fn conversations_resolved_before_the_late_window_get_their_recheck() {
    use chrono::{Duration as Span, SecondsFormat, Utc};
    let url = fresh_postgres_database("late_upgrade").await;
    drop(Ledger::open(&url).await.unwrap());
    let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let now = Utc::now();
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    for (id, end, resolved, complete) in [
        ("recent", Some(at(now - Span::hours(1))), now, true),
        ("no-end", None, now - Span::hours(2), true),
        (
            "garbled",
            Some("yesterday".to_string()),
            now - Span::hours(3),
            true,
        ),
        (
            "old",
            Some(at(now - Span::days(5))),
            now - Span::days(5) + Span::hours(1),
            true,
        ),
        (
            "backfilled",
            Some(at(now - Span::days(9))),
            now - Span::hours(1),
            true,
        ),
        ("unfinished", Some(at(now - Span::hours(1))), now, false),
    ] {
        db.execute(
            "INSERT INTO conversations (conversation_id, end_time, files, complete, resolved_at)
             VALUES ($1, $2, '[]', $3, $4::text::timestamptz)",
            &[&id, &end, &complete, &at(resolved)],
        )
        .await
        .unwrap();
    }
    db.batch_execute("DROP TABLE releases; UPDATE archiver_schema SET version = 6")
        .await
        .unwrap();
    let l = Ledger::open(&url).await.unwrap();
    assert_eq!(l.schema_version().await.unwrap(), 8);
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
        due(now + Span::hours(44)).await.is_empty(),
        "not before 48 h"
    );
    assert_eq!(
        due(now + Span::hours(49)).await,
        ["garbled", "no-end", "recent"]
    );
}

/// Releases on the shared ledger: proven and confirmed once, never taken again; an undone
/// release is not taken again either; a refused one is forgotten; the conversation's
/// settlement is read from the same rows as on SQLite.
#[tokio::test]
async fn releases_are_recorded_once_on_postgres() {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 6,
        // Ended four to six days ago: past the late window a release never enters.
        start: chrono::Utc::now() - chrono::Duration::days(6),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = fresh_postgres_database("releases").await;
    let ledger = Ledger::open(&url).await.unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(fresh_sink(Server::S3sFs, "releases").await);
    let client = sim_client(&sim, |c| c.poll_initial = Duration::from_millis(50));
    let late = archiver::LateWindow {
        window: Duration::ZERO,
        ..archiver::LateWindow::default()
    };
    let summary = archive(
        client.clone(),
        sink.clone(),
        client.discover_known(
            DiscoveryQuery::interval(sim.config().start, sim.config().end()),
            Some(ledger.known_conversations_with(late)),
        ),
        ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert!(summary.success(), "{summary:?}");
    archiver::write_index(&ledger, sink.as_ref(), "index/", chrono::Utc::now(), None)
        .await
        .unwrap();
    let policy = archiver::ReleasePolicy {
        older_than: Duration::ZERO,
        execute: true,
        per_minute: 6000,
        ..archiver::ReleasePolicy::default()
    };
    let run = archiver::release(&client, &ledger, sink.as_ref(), &policy)
        .await
        .unwrap();
    assert!(run.clean(), "{run:?}");
    assert_eq!(run.released, 6, "{run:?}");
    let rows = ledger.releases().await.unwrap();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| r.state == archiver::ReleaseState::Released
                && r.released_at.is_some()
                && r.index_seq == 1
                && r.sha256.len() == 64)
    );
    let again = archiver::release(&client, &ledger, sink.as_ref(), &policy)
        .await
        .unwrap();
    assert_eq!((again.considered, again.put_calls), (0, 0), "{again:?}");

    // Written into the index, the releases come back in a ledger rebuilt from the store.
    archiver::write_index(&ledger, sink.as_ref(), "index/", chrono::Utc::now(), None)
        .await
        .unwrap();
    let rebuilt = Ledger::open(&fresh_postgres_database("releases_rebuilt").await)
        .await
        .unwrap();
    archiver::rebuild_ledger(&rebuilt, sink.as_ref(), "recordings/", "index/")
        .await
        .unwrap();
    let back = rebuilt.releases().await.unwrap();
    assert_eq!(back.len(), 6, "{back:?}");
    assert!(
        back.iter()
            .all(|r| r.state == archiver::ReleaseState::Released
                && r.released_at.is_some()
                && r.sha256.len() == 64)
    );

    let undo = archiver::undo_releases(
        &client,
        &ledger,
        chrono::Utc::now() - chrono::Duration::hours(1),
        Duration::from_secs(365 * 24 * 3600),
        6000,
        "test",
    )
    .await
    .unwrap();
    assert_eq!(undo.undone, 6, "{undo:?}");
    assert!(
        ledger
            .releases()
            .await
            .unwrap()
            .iter()
            .all(|r| r.state == archiver::ReleaseState::Undone && r.undone_at.is_some())
    );
    let after = archiver::release(&client, &ledger, sink.as_ref(), &policy)
        .await
        .unwrap();
    assert_eq!(
        after.considered, 0,
        "an undone release is not taken again: {after:?}"
    );

    // An intended release the source refused is recorded refused with its message (no date
    // was set) and may be proven again; a released one is never overwritten by a new proof,
    // refused or withdrawn.
    let mut r = ledger.releases().await.unwrap()[0].clone();
    r.recording_id = "other".into();
    r.state = archiver::ReleaseState::Intended;
    let date = r.delete_date.clone();
    assert!(ledger.release_proven(r.clone()).await.unwrap());
    assert!(
        !ledger
            .release_refused("other", "2000-01-01T00:00:00.000Z", "x")
            .await
            .unwrap(),
        "only the date this run asked"
    );
    assert!(
        ledger
            .release_refused("other", &date, "404: gone")
            .await
            .unwrap()
    );
    let other = |rows: Vec<archiver::ReleaseRecord>| {
        rows.into_iter()
            .find(|x| x.recording_id == "other")
            .unwrap()
    };
    let refused = other(ledger.releases().await.unwrap());
    assert_eq!(refused.state, archiver::ReleaseState::Refused);
    assert_eq!(refused.last_error.as_deref(), Some("404: gone"));
    assert!(
        ledger.release_proven(r.clone()).await.unwrap(),
        "proven again"
    );
    assert_eq!(
        other(ledger.releases().await.unwrap()).state,
        archiver::ReleaseState::Intended
    );
    assert!(ledger.release_confirmed("other", &date).await.unwrap());
    assert!(!ledger.release_proven(r).await.unwrap(), "released: kept");
    assert!(!ledger.release_refused("other", &date, "x").await.unwrap());
    assert!(!ledger.release_withdrawn("other", &date).await.unwrap());
}
