//! Finding recordings by what analytics said about them, and the chain-of-custody index:
//! parts listing every object with its size, MD5 and SHA-256, each carrying the digest of the
//! one before, and the check that walks them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, FindQuery, IndexEntry, IndexPart, Ledger, PartHeader, archive};
use chrono::{DateTime, Utc};
use genesys_media::DiscoveryQuery;
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sha2::Digest as _;
use sink::{LocalDirSink, ObjectSink};
use test_support::sim_client;

async fn sim(n: usize) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn run(
    s: &SimHandle,
    sink: Arc<dyn ObjectSink>,
    ledger: &Ledger,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep_phone_numbers: bool,
) -> archiver::Summary {
    let client = sim_client(s, |c| c.poll_initial = Duration::from_millis(50));
    let cfg = ArchiverConfig {
        ledger: Some(ledger.clone()),
        keep_phone_numbers,
        ..ArchiverConfig::default()
    };
    let summary = archive(
        client.clone(),
        sink,
        client.discover(DiscoveryQuery::interval(from, to)),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert!(summary.success(), "{summary:?}");
    summary
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(b).into()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn parts_on_disk(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let index = root.join("index");
    for day in std::fs::read_dir(&index).unwrap() {
        let day = day.unwrap().path();
        for f in std::fs::read_dir(&day).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(".jsonl") {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((key, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn parse(bytes: &[u8]) -> (PartHeader, Vec<IndexEntry>) {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut lines = text.lines();
    let header = serde_json::from_str(lines.next().unwrap()).unwrap();
    (
        header,
        lines.map(|l| serde_json::from_str(l).unwrap()).collect(),
    )
}

#[tokio::test]
async fn find_answers_by_agent_queue_conversation_and_time_from_what_analytics_said() {
    let s = sim(60).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let summary = run(&s, sink.clone(), &ledger, start, end, false).await;
    let data = s.dataset();
    // What the simulator's analytics says: the agent, queue and numbers of each conversation.
    let by_agent = |agent: &str| -> BTreeSet<String> {
        data.conversations
            .iter()
            .filter(|c| c.user_id == agent)
            .flat_map(|c| c.recordings.iter().map(|&i| data.recordings[i].id.clone()))
            .filter(|id| summary.failures.iter().all(|f| &f.recording_id != id))
            .collect()
    };
    let busiest = data
        .conversations
        .iter()
        .filter(|c| !c.recordings.is_empty())
        .fold(BTreeMap::<&str, usize>::new(), |mut m, c| {
            *m.entry(c.user_id.as_str()).or_default() += c.recordings.len();
            m
        })
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .unwrap()
        .0
        .to_string();
    let found = |q: FindQuery| {
        let ledger = ledger.clone();
        async move {
            ledger
                .find(&q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.recording_id)
                .collect::<BTreeSet<_>>()
        }
    };
    let expected = by_agent(&busiest);
    assert!(expected.len() >= 2, "{expected:?}");
    assert_eq!(
        found(FindQuery {
            agent: Some(busiest.clone()),
            ..FindQuery::default()
        })
        .await,
        expected
    );
    // A queue, a wrap-up code, a conversation, a time window.
    let c = data
        .conversations
        .iter()
        .find(|c| c.recordings.len() == 2)
        .or_else(|| data.conversations.iter().find(|c| !c.recordings.is_empty()))
        .unwrap();
    let of_c: BTreeSet<String> = c
        .recordings
        .iter()
        .map(|&i| data.recordings[i].id.clone())
        .collect();
    assert_eq!(
        found(FindQuery {
            conversation: Some(c.id.clone()),
            ..FindQuery::default()
        })
        .await,
        of_c
    );
    let with_queue = found(FindQuery {
        queue: Some(c.queue_id.clone()),
        wrap_up_code: Some(c.wrap_up_code.clone()),
        ..FindQuery::default()
    })
    .await;
    assert!(with_queue.is_superset(&of_c));
    let expected_q: BTreeSet<String> = data
        .conversations
        .iter()
        .filter(|x| x.queue_id == c.queue_id && x.wrap_up_code == c.wrap_up_code)
        .flat_map(|x| x.recordings.iter().map(|&i| data.recordings[i].id.clone()))
        .filter(|id| summary.failures.iter().all(|f| &f.recording_id != id))
        .collect();
    assert_eq!(with_queue, expected_q);
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let window = found(FindQuery {
        agent: Some(busiest.clone()),
        from: Some(t(c.start)),
        to: Some(t(c.start + chrono::Duration::hours(6))),
        ..FindQuery::default()
    })
    .await;
    let expected_w: BTreeSet<String> = data
        .conversations
        .iter()
        .filter(|x| x.user_id == busiest && x.start >= c.start)
        .filter(|x| x.start < c.start + chrono::Duration::hours(6))
        .flat_map(|x| x.recordings.iter().map(|&i| data.recordings[i].id.clone()))
        .collect();
    assert_eq!(window, expected_w);
    // Phone numbers were not asked for: not in the ledger, not in the metadata.
    assert!(
        found(FindQuery {
            number: Some(c.ani.clone()),
            ..FindQuery::default()
        })
        .await
        .is_empty()
    );
    let entry = ledger
        .entry(&data.recordings[c.recordings[0]].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.facts.user_ids, std::slice::from_ref(&c.user_id));
    assert!(entry.facts.ani.is_empty());
    let head = sink.head(&entry.key).await.unwrap().unwrap();
    assert_eq!(head.metadata.get("user-ids"), Some(&c.user_id));
    assert_eq!(head.metadata.get("queue-ids"), Some(&c.queue_id));
    assert_eq!(head.metadata.get("wrap-up-codes"), Some(&c.wrap_up_code));
    assert_eq!(head.metadata.get("direction"), Some(&c.direction));
    assert!(!head.metadata.contains_key("ani"), "{:?}", head.metadata);
}

#[tokio::test]
async fn phone_numbers_are_kept_only_when_asked_and_found_with_or_without_tel() {
    let s = sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    run(
        &s,
        sink.clone(),
        &ledger,
        s.config().start,
        s.config().end(),
        true,
    )
    .await;
    let data = s.dataset();
    let c = data
        .conversations
        .iter()
        .find(|c| c.session_media == "voice" && !c.recordings.is_empty())
        .unwrap();
    for number in [c.ani.clone(), c.ani.trim_start_matches("tel:").to_string()] {
        let rows = ledger
            .find(&FindQuery {
                number: Some(number.clone()),
                ..FindQuery::default()
            })
            .await
            .unwrap();
        assert!(
            rows.iter()
                .any(|r| r.recording_id == data.recordings[c.recordings[0]].id),
            "{number}: {rows:?}"
        );
    }
    let entry = ledger
        .entry(&data.recordings[c.recordings[0]].id)
        .await
        .unwrap()
        .unwrap();
    let head = sink.head(&entry.key).await.unwrap().unwrap();
    assert_eq!(head.metadata.get("ani"), Some(&c.ani));
    assert_eq!(head.metadata.get("dnis"), Some(&c.dnis));
}

#[tokio::test]
async fn the_index_is_a_chain_that_proves_every_object_and_catches_every_change() {
    let s = sim(40).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(root));
    let ledger = Ledger::in_memory().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let mid = start + (end - start) / 2;
    let prefix = archiver::DEFAULT_INDEX_PREFIX;
    // Two runs, a part after each.
    let first = run(&s, sink.clone(), &ledger, start, mid, false).await;
    let parts = archiver::write_index(&ledger, sink.as_ref(), prefix, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].entries, first.archived);
    // Nothing new: no part.
    assert!(
        archiver::write_index(&ledger, sink.as_ref(), prefix, Utc::now(), None)
            .await
            .unwrap()
            .is_empty()
    );
    let second = run(&s, sink.clone(), &ledger, mid, end, false).await;
    let parts = archiver::write_index(&ledger, sink.as_ref(), prefix, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].seq, 2);
    assert_eq!(parts[0].entries, second.archived);

    // Read back as a stranger would: every object listed once with its true digests, and
    // part 2 carries part 1's SHA-256.
    let on_disk = parts_on_disk(root);
    assert_eq!(on_disk.len(), 2);
    let (h1, e1) = parse(&on_disk[0].1);
    let (h2, e2) = parse(&on_disk[1].1);
    assert_eq!((h1.seq, h1.previous.as_deref()), (1, None));
    assert_eq!(h2.seq, 2);
    assert_eq!(h2.previous, Some(sha256_hex(&on_disk[0].1)));
    assert_eq!(h2.previous_key.as_deref(), Some(on_disk[0].0.as_str()));
    assert_eq!(h1.entries as usize, e1.len());
    let all: Vec<&IndexEntry> = e1.iter().chain(&e2).collect();
    assert_eq!(all.len() as u64, first.archived + second.archived);
    let keys: BTreeSet<&str> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys.len(), all.len(), "each object once");
    for e in &all {
        let bytes = std::fs::read(root.join(&e.key)).unwrap();
        assert_eq!(e.size, Some(bytes.len() as u64));
        assert_eq!(
            e.sha256.as_deref(),
            Some(sha256_hex(&bytes).as_str()),
            "{}",
            e.key
        );
        assert!(!e.facts.user_ids.is_empty(), "{}", e.key);
    }
    let anchor = ledger.index_parts().await.unwrap();
    assert_eq!(
        anchor
            .iter()
            .map(|p| p.sha256.clone().unwrap())
            .collect::<Vec<_>>(),
        on_disk
            .iter()
            .map(|(_, b)| sha256_hex(b))
            .collect::<Vec<_>>()
    );
    let verify = || {
        let sink = sink.clone();
        let ledger = ledger.clone();
        async move {
            archiver::verify_chain(sink.as_ref(), prefix, Some(&ledger), &[], &[], 4)
                .await
                .unwrap()
        }
    };
    let clean = verify().await;
    assert!(clean.clean(), "{:?}", clean.problems);
    assert_eq!(clean.verified, first.archived + second.archived);
    assert_eq!(clean.head, Some((2, sha256_hex(&on_disk[1].1))));

    // An object altered in place.
    let victim = root.join(&e1[0].key);
    let original = std::fs::read(&victim).unwrap();
    let mut altered = original.clone();
    altered[60] ^= 1;
    std::fs::write(&victim, &altered).unwrap();
    let r = verify().await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        r.problems[0].contains("altered since it was archived"),
        "{:?}",
        r.problems
    );
    std::fs::write(&victim, &original).unwrap();
    // An object removed.
    std::fs::remove_file(root.join(&e2[0].key)).unwrap();
    let r = verify().await;
    assert!(
        r.problems.iter().any(|p| p.contains("gone from the store")),
        "{:?}",
        r.problems
    );
    // An entry dropped from part 1 (hiding a removal): part 1's digest no longer matches
    // what part 2 and the ledger recorded.
    let p1 = root.join(&on_disk[0].0);
    let text = String::from_utf8(on_disk[0].1.clone()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(1);
    std::fs::write(&p1, lines.join("\n") + "\n").unwrap();
    let r = verify().await;
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("carries previous digest")),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems.iter().any(|p| p.contains("the ledger recorded")),
        "{:?}",
        r.problems
    );
    std::fs::write(&p1, &on_disk[0].1).unwrap();
    // The last part removed: only the ledger's record shows it.
    std::fs::remove_file(root.join(&on_disk[1].0)).unwrap();
    let r = verify().await;
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("in the ledger but not in the store")),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn a_part_cut_short_is_written_again_with_the_same_rows() {
    let s = sim(12).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let summary = run(
        &s,
        sink.clone(),
        &ledger,
        s.config().start,
        s.config().end(),
        false,
    )
    .await;
    // A crash after the ledger assigned the rows to part 1 and before it was written.
    let opened = ledger
        .open_index_part(
            IndexPart {
                seq: 1,
                key: "index/2026-11-27/0000000001.jsonl".into(),
                previous: None,
                sha256: None,
                entries: 0,
            },
            archiver::MAX_PART_ENTRIES,
        )
        .await
        .unwrap();
    assert_eq!(opened, Some(summary.archived));
    // Another instance cannot open the same part.
    let again = IndexPart {
        seq: 1,
        key: "index/x/0000000001.jsonl".into(),
        previous: None,
        sha256: None,
        entries: 0,
    };
    assert_eq!(ledger.open_index_part(again, 10).await.unwrap(), None);
    let parts = archiver::write_index(&ledger, sink.as_ref(), "index/", Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].key, "index/2026-11-27/0000000001.jsonl");
    assert_eq!(parts[0].entries, summary.archived);
    let r = archiver::verify_chain(sink.as_ref(), "index/", None, &[], &[], 2)
        .await
        .unwrap();
    assert!(r.clean(), "{:?}", r.problems);
    assert_eq!(r.verified, summary.archived);
}

#[tokio::test]
async fn a_rebuilt_ledger_takes_up_the_chain_where_the_store_has_it() {
    let s = sim(8).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let (start, end) = (s.config().start, s.config().end());
    let first = Ledger::in_memory().unwrap();
    let summary = run(&s, sink.clone(), &first, start, end, false).await;
    archiver::write_index(&first, sink.as_ref(), "index/", Utc::now(), None)
        .await
        .unwrap();
    // The ledger is lost; a new one finds the objects in the store (adopted: no SHA-256 of
    // its own).
    let second = Ledger::in_memory().unwrap();
    let again = run(&s, sink.clone(), &second, start, end, false).await;
    assert_eq!(again.archived, 0, "{again:?}");
    // The chain goes on where the store has it (no second part 1), and the parts' entries
    // stand for the adopted rows: no part lists them again, least of all without digests.
    let parts = archiver::write_index(&second, sink.as_ref(), "index/", Utc::now(), None)
        .await
        .unwrap();
    assert!(parts.is_empty(), "nothing listed again: {parts:?}");
    let anchor = second.index_parts().await.unwrap();
    assert_eq!(anchor.len(), 1);
    // The rows have their digests back, from the index.
    let rows = second
        .entries(Some(archiver::RecordStatus::Archived))
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, summary.archived);
    assert!(
        rows.iter().all(|r| r.md5.is_some() && r.sha256.is_some()),
        "{rows:?}"
    );
    // And what analytics said: `find` answers by agent after the rebuild.
    let agent = s.dataset().conversations[0].user_id.clone();
    let by_agent = |l: Ledger| {
        let agent = agent.clone();
        async move {
            l.find(&FindQuery {
                agent: Some(agent),
                ..FindQuery::default()
            })
            .await
            .unwrap()
            .len()
        }
    };
    let expected = by_agent(first.clone()).await;
    assert!(expected > 0);
    assert_eq!(by_agent(second.clone()).await, expected);
    let r = archiver::verify_chain(sink.as_ref(), "index/", Some(&second), &[], &[], 4)
        .await
        .unwrap();
    assert!(r.clean(), "{:?}", r.problems);
    assert_eq!(r.parts, 1);
    assert_eq!(r.verified, summary.archived);
    assert_eq!(r.md5_only, 0);
    // A byte flipped in a recording after the rebuild: caught.
    let key = rows[0].key.clone();
    let path = dir.path().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let r = archiver::verify_chain(sink.as_ref(), "index/", Some(&second), &[], &[], 4)
        .await
        .unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains(&key) && p.contains("altered")),
        "{:?}",
        r.problems
    );
}

/// With the ledger intact, a part a bucket writer appends (listing a key again with the
/// digests of rewritten bytes) is reported twice over: the ledger never wrote that part, and
/// the key is listed again with other digests. Before, the later entry silently superseded
/// the checksummed one.
#[tokio::test]
async fn a_part_appended_by_a_bucket_writer_is_reported_with_the_ledger_intact() {
    let s = sim(8).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    run(
        &s,
        sink.clone(),
        &ledger,
        s.config().start,
        s.config().end(),
        false,
    )
    .await;
    archiver::write_index(&ledger, sink.as_ref(), "index/", Utc::now(), None)
        .await
        .unwrap();
    let on_disk = parts_on_disk(dir.path());
    let (header, entries) = parse(&on_disk[0].1);
    // Rewrite one recording and list it again in a forged part 2 with its new digests.
    let victim = entries[0].clone();
    let path = dir.path().join(&victim.key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let mut forged = victim.clone();
    forged.md5 = Some(hex::encode(md5_of(&bytes)));
    forged.sha256 = Some(sha256_hex(&bytes));
    let forged_header = PartHeader {
        seq: 2,
        previous: Some(sha256_hex(&on_disk[0].1)),
        previous_key: Some(on_disk[0].0.clone()),
        entries: 1,
        ..header
    };
    let text = format!(
        "{}\n{}\n",
        serde_json::to_string(&forged_header).unwrap(),
        serde_json::to_string(&forged).unwrap()
    );
    let forged_key = on_disk[0].0.replace("0000000001", "0000000002");
    std::fs::write(dir.path().join(&forged_key), text).unwrap();
    let r = archiver::verify_chain(sink.as_ref(), "index/", Some(&ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("the ledger never wrote it")),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains(&victim.key) && p.contains("listed again")),
        "{:?}",
        r.problems
    );
}

/// A part key that already holds someone else's bytes is never replaced, and never leaves the
/// index stuck: the part is written under the next free number, and `verify --chain` reports
/// the foreign part.
#[tokio::test]
async fn a_foreign_part_under_the_next_key_does_not_leave_the_index_stuck() {
    let s = sim(30).await;
    let dir = tempfile::tempdir().unwrap();
    let sink: Arc<dyn ObjectSink> = Arc::new(LocalDirSink::new(dir.path()));
    let ledger = Ledger::in_memory().unwrap();
    let (start, end) = (s.config().start, s.config().end());
    let mid = start + (end - start) / 2;
    run(&s, sink.clone(), &ledger, start, mid, false).await;
    let now = Utc::now();
    let first = archiver::write_index(&ledger, sink.as_ref(), "index/", now, None)
        .await
        .unwrap();
    assert_eq!(first[0].seq, 1);
    // Someone writes their own "part 2" where the next part would go.
    let planted = first[0].key.replace("0000000001", "0000000002");
    std::fs::write(dir.path().join(&planted), b"{\"type\":\"index\"}\n").unwrap();
    run(&s, sink.clone(), &ledger, mid, end, false).await;
    let second = archiver::write_index(&ledger, sink.as_ref(), "index/", now, None)
        .await
        .expect("not stuck");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].seq, 3, "{second:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&planted)).unwrap(),
        b"{\"type\":\"index\"}\n",
        "the foreign bytes are not replaced"
    );
    let r = archiver::verify_chain(sink.as_ref(), "index/", Some(&ledger), &[], &[], 4)
        .await
        .unwrap();
    assert!(!r.clean());
    assert!(
        r.problems.iter().any(|p| p.contains(&planted)),
        "{:?}",
        r.problems
    );
    // Every archived object is still listed once by the parts the ledger wrote.
    let anchor = ledger.index_parts().await.unwrap();
    let listed: u64 = anchor.iter().map(|p| p.entries).sum();
    let archived = ledger
        .entries(Some(archiver::RecordStatus::Archived))
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(listed, archived);
}
