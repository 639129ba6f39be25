//! Digests that travel with an S3 object (`--digests-up-front`): each recording is read once
//! for its MD5 and SHA-256 before it is written, so the object carries both in its own user
//! metadata. With its ledger lost and no index, `ledger rebuild` restores both from the
//! store alone, and `verify --rehash` proves every object and catches one whose bytes were
//! rewritten.

use e2e::{Server, archiver_command, fresh_sink, output_of as run, output_text as text};
use futures::StreamExt;
use sink::{ObjectSink, PutOptions};

#[tokio::test(flavor = "multi_thread")]
async fn digests_up_front_survive_a_lost_ledger_on_s3() {
    let n = 4;
    let s = test_support::start_sim(genesys_sim::SimConfig {
        recordings: n,
        ..genesys_sim::SimConfig::default()
    })
    .await;
    let store = fresh_sink(Server::S3sFs, "upfront").await;
    let bucket = store.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path()).args(args);
        c
    };
    let mut args = e2e::archive_whole(&s);
    args.extend(["--digests-up-front", "--no-index", "--tag-mode", "disabled"]);
    let out = run(cmd(&args)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Every object carries the MD5 and SHA-256 of its own bytes in its metadata.
    let keys: Vec<String> = store
        .list("recordings/")
        .map(|o| o.unwrap().key)
        .collect()
        .await;
    assert_eq!(keys.len(), n, "{keys:?}");
    for key in &keys {
        let meta = store.head(key).await.unwrap().unwrap();
        let bytes = test_support::object_bytes(&store, key).await;
        assert_eq!(
            meta.metadata.get("md5"),
            Some(&sink::Md5Digest::of(&bytes).to_hex()),
            "{key}: {:?}",
            meta.metadata
        );
        assert_eq!(
            meta.metadata.get("sha256"),
            Some(&hex::encode(integrity::sha256_of(&bytes))),
            "{key}: {:?}",
            meta.metadata
        );
    }
    // The ledger lost, no index: rebuilt from the objects alone, every object proven.
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["ledger", "rebuild"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("verified {n},")),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("unproven"), "{}", text(&out));
    // One object rewritten with a flipped byte and an `md5` that matches the new bytes, its
    // `sha256` left as it was; the ledger lost again: only the SHA-256 the rebuilt ledger took
    // from the metadata can tell, and it does.
    let key = &keys[0];
    let meta = store.head(key).await.unwrap().unwrap();
    let mut bytes = test_support::object_bytes(&store, key).await;
    bytes[100] ^= 0x01;
    let mut metadata = meta.metadata.clone();
    metadata.remove(sink::ATTEMPT_KEY);
    metadata.insert("md5".into(), sink::Md5Digest::of(&bytes).to_hex());
    store
        .put(
            key,
            sink::full_body(bytes.clone()),
            PutOptions {
                content_length: Some(bytes.len() as u64),
                metadata,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["ledger", "rebuild"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt 1"), "{}", text(&out));
}

/// Every file under `p` (recursively), sidecars and hidden files included.
fn all_files(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(all_files(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// The first read of a recording gives other bytes than the write's read (one corrupted
/// answer, no source ETag to catch it): the write is refused for its digests (Content-MD5 at
/// the store, the SHA-256 at the end of the stream), nothing of it is left, and the retry
/// stores the right bytes with their digests. On s3s-fs and into a directory.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_reads_other_bytes_than_the_first_read_is_refused_and_retried() {
    for target in ["s3", "dir"] {
        let s = test_support::start_sim(genesys_sim::SimConfig {
            recordings: 3,
            faults: vec![genesys_sim::FaultSpec {
                recording: 0,
                fault: genesys_sim::Fault::Corrupt,
                times: Some(1),
            }],
            ..genesys_sim::SimConfig::default()
        })
        .await;
        let store = fresh_sink(Server::S3sFs, "upfront-retry").await;
        let dir = tempfile::tempdir().unwrap();
        let mut c = archiver_command(s.base_url(), &store.config().bucket);
        c.current_dir(dir.path())
            .args(e2e::archive_whole(&s))
            .args(["--digests-up-front", "--no-index"]);
        match target {
            "s3" => c.args(["--tag-mode", "disabled"]),
            _ => c.env_remove("S3_BUCKET").args(["--out", "store"]),
        };
        let out = run(c).await;
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
        // The corrupted first read, the refused write, then a first read and a write.
        assert_eq!(s.stats().media_requests, 3 * 2 + 2, "{target}");
        let rec = &s.dataset().recordings[0];
        let right = hex::encode(s.expected_md5(0));
        if target == "s3" {
            let key = store
                .list("recordings/")
                .map(|o| o.unwrap().key)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .find(|k| k.contains(&rec.id))
                .unwrap();
            let bytes = test_support::object_bytes(&store, &key).await;
            assert_eq!(sink::Md5Digest::of(&bytes).to_hex(), right, "{target}");
            let meta = store.head(&key).await.unwrap().unwrap();
            assert_eq!(meta.metadata.get("md5"), Some(&right), "{target}");
        } else {
            let files = all_files(&dir.path().join("store/recordings"));
            assert_eq!(files.len(), 3 * 2, "objects and sidecars only: {files:?}");
            assert!(files.iter().all(|f| !f.starts_with('.')), "{files:?}");
        }
        let mut v = archiver_command(s.base_url(), &store.config().bucket);
        v.current_dir(dir.path()).args(["verify", "--rehash"]);
        if target == "dir" {
            v.env_remove("S3_BUCKET").args(["--out", "store"]);
        }
        let out = run(v).await;
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
    }
}
