//! The signed chain of custody through the binary on s3s-fs and Ceph: `index keygen`,
//! `archive --index-signing-key`, and `verify --chain --public-key` with the ledger gone
//! (the store and the public key alone), which catches a removed newest part; `verify
//! --extra` fails on a planted object; a rebuilt ledger gets its digests and facts back from
//! the index, so `verify` and `find` work as before (and `find` into a closed pipe ends
//! quietly).

use std::process::Output;

use e2e::{Server, archiver_command, fresh_sink};
use genesys_sim::{SimConfig, Simulator};
use sink::{ObjectSink, PutOptions};

use e2e::{output_of as run, output_text as text};

async fn signed_chain_on(server: Server) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 12,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = fresh_sink(server, "signed").await;
    let bucket = sink.config().bucket.clone();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .args(args);
        c
    };
    // Keys: the secret one private, neither ever overwritten.
    let out = run(cmd(&[
        "index",
        "keygen",
        "--secret-key",
        "index.key",
        "--public-key",
        "index.pub",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("index.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(cmd(&[
        "index",
        "keygen",
        "--secret-key",
        "index.key",
        "--public-key",
        "other.pub",
    ]))
    .await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("never overwritten"),
        "{}",
        text(&again)
    );

    let out = run(cmd(&[
        e2e::archive_whole(&s),
        vec![
            "--verify-source-etag",
            "--tag-mode",
            "disabled",
            "--index-signing-key",
            "index.key",
            "--report",
            "run.json",
        ],
    ]
    .concat()))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run_report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(run_report["interrupted"], false, "{run_report}");
    let written_sha = run_report["index_parts"][0]["sha256"]
        .as_str()
        .expect("the part written, with its digest")
        .to_string();
    assert!(
        text(&out).contains("index: part 1 written"),
        "{}",
        text(&out)
    );

    // A planted object under the recordings' prefix: a finding, exit 1.
    let planted = b"not a recording".to_vec();
    sink.put(
        "recordings/planted.bin",
        sink::full_body(planted.clone()),
        PutOptions {
            content_length: Some(planted.len() as u64),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap();
    let out = run(cmd(&["verify", "--extra"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("extra: key recordings/planted.bin"),
        "{}",
        text(&out)
    );
    sink.delete("recordings/planted.bin").await.unwrap();

    // The ledger gone: the store and the public key prove the chain.
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["verify", "--chain", "--public-key", "index.pub"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("1 parts signed"), "{}", text(&out));
    assert!(text(&out).contains("part 1: index/"), "{}", text(&out));
    let json = run(cmd(&["verify", "--chain", "--json"])).await;
    assert_eq!(json.status.code(), Some(0), "{}", text(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["parts"][0]["seq"], 1, "{report}");
    assert!(
        report["not_proven"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "without a key it says what is not proven: {report}"
    );
    let part = report["parts"][0]["key"].as_str().unwrap().to_string();
    let sha = report["parts"][0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(
        sha, written_sha,
        "the run report's anchor is the part's digest"
    );
    let out = run(cmd(&[
        "verify",
        "--chain",
        "--expect-head",
        &format!("1:{sha}"),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The newest (only) part and its signature removed by a bucket writer.
    sink.delete(&part).await.unwrap();
    sink.delete(&format!("{part}.sig")).await.unwrap();
    let out = run(cmd(&["verify", "--chain", "--public-key", "index.pub"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("removed"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_chain_on_s3s_fs_is_proven_by_the_public_key_alone() {
    signed_chain_on(Server::S3sFs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_chain_on_ceph_is_proven_by_the_public_key_alone() {
    signed_chain_on(Server::Ceph).await;
}

/// The report's first case: a directory archive (batch mode: objects carry no MD5 of their
/// own), the ledger lost and rebuilt, one byte of a recording flipped. The rebuild takes the
/// digests back from the index, so `verify --rehash` finds the flip (exit 1), and the next run
/// lists nothing again (no entry without digests supersedes a checksummed one): `verify
/// --chain` finds it too.
#[tokio::test(flavor = "multi_thread")]
async fn a_bit_flip_after_a_lost_ledger_is_found_by_verify() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(args)
            .args(["--out", "store"]);
        c
    };
    let archive = || cmd(&[e2e::archive_whole(&s), vec!["--tag-mode", "disabled"]].concat());
    let out = run(archive()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let agent = s.dataset().conversations[0].user_id.clone();
    let find = || {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(["find", "--agent", &agent]);
        c
    };
    let before = run(find()).await;
    let count = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    assert!(!count(&before).starts_with("0 "), "{}", text(&before));
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["ledger", "rebuild"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("10 recording(s) matched to it, with their MD5 and SHA-256"),
        "{}",
        text(&out)
    );
    // What analytics said comes back from the index too: `find` answers as before.
    let after = run(find()).await;
    assert_eq!(count(&after), count(&before), "{}", text(&after));
    // One byte flipped in one recording.
    let mut victim = None;
    for e in walkdir(&dir.path().join("store/recordings")) {
        if !e.file_name().unwrap().to_string_lossy().starts_with('.') {
            victim = Some(e);
            break;
        }
    }
    let victim = victim.expect("a recording");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[64] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let out = run(cmd(&["verify", "--rehash"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt 1"), "{}", text(&out));
    // A normal run after the rebuild lists nothing again; the chain still catches the flip.
    let out = run(archive()).await;
    assert!(!text(&out).contains("index: part 2"), "{}", text(&out));
    let out = run(cmd(&["verify", "--chain"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("altered"), "{}", text(&out));
}

fn walkdir(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// `--index-anchor FILE`: the digest of every part written goes to a file outside the bucket;
/// `verify --chain --anchor FILE` then catches a removed part with neither key nor ledger.
#[tokio::test(flavor = "multi_thread")]
async fn an_anchor_file_outside_the_bucket_catches_a_removed_part() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 6,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), "unused");
        c.current_dir(dir.path())
            .env_remove("S3_BUCKET")
            .args(args)
            .args(["--out", "store"]);
        c
    };
    let out = run(cmd(&[
        e2e::archive_whole(&s),
        vec!["--tag-mode", "disabled", "--index-anchor", "anchors.jsonl"],
    ]
    .concat()))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let anchors = std::fs::read_to_string(dir.path().join("anchors.jsonl")).unwrap();
    assert_eq!(anchors.lines().count(), 1, "{anchors}");
    let line: serde_json::Value = serde_json::from_str(anchors.lines().next().unwrap()).unwrap();
    let key = line["key"].as_str().unwrap().to_string();
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["verify", "--chain", "--anchor", "anchors.jsonl"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_file(dir.path().join("store").join(&key)).unwrap();
    let out = run(cmd(&["verify", "--chain", "--anchor", "anchors.jsonl"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not in the store"), "{}", text(&out));
}

/// `find ... | head -1`: a reader that stops early closes the pipe; `find` ends quietly
/// (exit 0), never with a panic (exit 101).
#[tokio::test(flavor = "multi_thread")]
async fn find_into_a_closed_pipe_ends_quietly() {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 150,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = e2e::sim_window(&s);
    let mut archive = archiver_command(s.base_url(), "unused");
    archive
        .current_dir(dir.path())
        .env_remove("S3_BUCKET")
        .args(["archive", "--from", from, "--to", to])
        .args(["--allow-loopback-media", "--tag-mode", "disabled"])
        .args(["--out", "store", "--no-index"]);
    let out = run(archive).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // More than a pipe holds (JSON lines), into a pipe whose reader is gone at once.
    let mut find = archiver_command(s.base_url(), "unused");
    find.current_dir(dir.path())
        .args(["find", "--json", "--from", from, "--to", to])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = find.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status.0, Some(0), "{}", status.1);
    assert!(!status.1.contains("panicked"), "{}", status.1);
}

/// `--index-anchor s3://BUCKET/PREFIX`: the digest of every part written goes to another
/// bucket (one object each, create-only); `verify --chain --anchor s3://...` catches a
/// removed part with neither key nor ledger. On Ceph the anchor bucket has Object Lock with a
/// default retention, and the anchors are retained by it. An anchor in the archive's own
/// bucket is refused.
async fn an_anchor_in_another_bucket_catches_a_removed_part(server: Server) {
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 6,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sink = fresh_sink(server, "anchored").await;
    let bucket = sink.config().bucket.clone();
    let s3 = e2e::client(server).await;
    let anchor_bucket = if server == Server::Ceph {
        let (c, b) = e2e::object_lock_bucket("anchors").await;
        let rule = aws_sdk_s3::types::ObjectLockConfiguration::builder()
            .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
            .rule(
                aws_sdk_s3::types::ObjectLockRule::builder()
                    .default_retention(
                        aws_sdk_s3::types::DefaultRetention::builder()
                            .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Governance)
                            .days(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        c.put_object_lock_configuration()
            .bucket(&b)
            .object_lock_configuration(rule)
            .send()
            .await
            .unwrap();
        b
    } else {
        fresh_sink(server, "anchors").await.config().bucket.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .args(args);
        c
    };
    let anchor = format!("s3://{anchor_bucket}/anchors");
    let archive = |anchor: &str| {
        cmd(&[
            e2e::archive_whole(&s),
            vec!["--tag-mode", "disabled", "--index-anchor", anchor],
        ]
        .concat())
    };
    let own = run(archive(&format!("s3://{bucket}/anchors"))).await;
    assert_eq!(own.status.code(), Some(2), "{}", text(&own));
    assert!(text(&own).contains("outside"), "{}", text(&own));
    let out = run(archive(&anchor)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = s3
        .list_objects_v2()
        .bucket(&anchor_bucket)
        .prefix("anchors/")
        .send()
        .await
        .unwrap();
    let anchors: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    if server == Server::Ceph {
        let head = s3
            .head_object()
            .bucket(&anchor_bucket)
            .key(&anchors[0])
            .send()
            .await
            .unwrap();
        assert!(
            head.object_lock_retain_until_date().is_some(),
            "the anchor is retained by the bucket's default: {head:?}"
        );
    }
    std::fs::remove_file(dir.path().join("genesys-archiver.db")).unwrap();
    let out = run(cmd(&["verify", "--chain", "--anchor", &anchor])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = run(cmd(&["verify", "--chain", "--json"])).await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let part = report["parts"][0]["key"].as_str().unwrap().to_string();
    sink.delete(&part).await.unwrap();
    let out = run(cmd(&["verify", "--chain", "--anchor", &anchor])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not in the store"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anchor_bucket_on_s3s_fs_catches_a_removed_part() {
    an_anchor_in_another_bucket_catches_a_removed_part(Server::S3sFs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anchor_bucket_with_object_lock_on_ceph_catches_a_removed_part() {
    an_anchor_in_another_bucket_catches_a_removed_part(Server::Ceph).await;
}
