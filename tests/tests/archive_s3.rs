//! End to end: the simulator -> the archiver -> real S3 servers (s3s-fs and Ceph RGW), and the
//! CLI binary configured only through the environment, as an operator would run it.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, KeyTemplate, archive};
use e2e::{Server, fresh_sink};
use genesys_media::DiscoveryQuery;
use genesys_sim::{Fault, FaultSpec, SimConfig, SimHandle, Simulator};
use md5::{Digest, Md5};
use sink::ObjectSink;
use test_support::{sim_client, sim_recording};

async fn sim(n: usize, faults: Vec<FaultSpec>) -> SimHandle {
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn key_of(s: &SimHandle, i: usize) -> String {
    KeyTemplate::default()
        .render(&sim_recording(s, i), None)
        .unwrap()
}

async fn archive_into(server: Server) {
    let faults = vec![
        FaultSpec {
            recording: 1,
            fault: Fault::Corrupt,
            times: Some(1),
        },
        FaultSpec {
            recording: 2,
            fault: Fault::Reset,
            times: Some(1),
        },
        FaultSpec {
            recording: 3,
            fault: Fault::Corrupt,
            times: None,
        },
        FaultSpec {
            recording: 4,
            fault: Fault::ExpiredUrl,
            times: Some(1),
        },
    ];
    let s = sim(25, faults).await;
    let client = sim_client(&s, |c| c.poll_initial = Duration::from_millis(250));
    let sink = fresh_sink(server, "archive").await;
    let dyn_sink: Arc<dyn ObjectSink> = Arc::new(sink.clone());
    let mut cfg = ArchiverConfig {
        verify_source_etag: true,
        ..ArchiverConfig::default()
    };
    cfg.retry.base_delay = Duration::from_millis(20);
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        client.clone(),
        dyn_sink.clone(),
        client.discover(q),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(
        (summary.found, summary.archived, summary.failed),
        (25, 24, 1),
        "{server:?}: {}",
        summary.line()
    );
    for (i, r) in s.dataset().recordings.iter().enumerate() {
        let key = key_of(&s, i);
        let head = sink.head(&key).await.unwrap();
        if i == 3 {
            assert!(
                head.is_none(),
                "{server:?}: the corrupt recording left nothing behind"
            );
            continue;
        }
        let head = head.unwrap_or_else(|| panic!("{server:?}: {key} missing"));
        assert_eq!(head.size, r.size);
        assert_eq!(head.content_type.as_deref(), Some(r.native_content_type()));
        assert_eq!(head.metadata.get("recording-id"), Some(&r.id));
        let bytes = test_support::object_bytes(dyn_sink.as_ref(), &key).await;
        assert_eq!(
            <[u8; 16]>::from(Md5::digest(&bytes)),
            s.expected_md5(i),
            "{server:?}: {key} bytes exact"
        );
        if server.supports_tags() {
            let tags = sink.tags(&key).await.unwrap().expect("tags");
            assert_eq!(tags.get("recording_id"), Some(&r.id));
            assert_eq!(tags.get("conversation_id"), Some(&r.conversation_id));
            assert!(tags.get("start_time").is_some_and(|t| {
                t.starts_with(
                    &s.dataset()
                        .conversation(&r.conversation_id)
                        .unwrap()
                        .start
                        .format("%Y-%m-%d")
                        .to_string(),
                )
            }));
            assert!(tags.contains_key("end_time") && tags.contains_key("media_type"));
        }
    }
    let listed = sink
        .client()
        .list_objects_v2()
        .bucket(&sink.config().bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(24), "{server:?}: no extra objects");
    if server == Server::Ceph {
        let ups = sink
            .client()
            .list_multipart_uploads()
            .bucket(&sink.config().bucket)
            .send()
            .await
            .unwrap();
        assert!(ups.uploads().is_empty(), "no open multipart uploads");
    }
}

#[tokio::test]
async fn archives_into_s3s_fs() {
    archive_into(Server::S3sFs).await;
}

#[tokio::test]
async fn archives_into_ceph() {
    archive_into(Server::Ceph).await;
}

/// The binary, configured through the environment names of the foundation issue, against the
/// simulator and s3s-fs: exit 1 with the one-line summary when a recording fails; exit 0 on the
/// rerun that only skips.
#[tokio::test]
async fn cli_archive_with_environment_configuration() {
    let s = sim(
        12,
        vec![FaultSpec {
            recording: 5,
            fault: Fault::Corrupt,
            times: None,
        }],
    )
    .await;
    let sink = fresh_sink(Server::S3sFs, "cli").await;
    let bin = e2e::archiver_bin();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.db");
    let make = || {
        let mut c = Command::new(&bin);
        c.args([
            "archive",
            "--from",
            e2e::sim_window(&s).0,
            "--to",
            e2e::sim_window(&s).1,
            "--allow-loopback-media",
            "--verify-source-etag",
            "--tag-mode",
            "disabled",
        ])
        .args(["--create-ledger", "--state"])
        .arg(&state)
        .env("GENESYS_CLIENT_ID", "sim-client")
        .env("GENESYS_CLIENT_SECRET", "sim-secret")
        .env("GENESYS_API_BASE", s.base_url())
        .env("S3_BUCKET", &sink.config().bucket)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", Server::S3sFs.endpoint())
        .env(
            "AWS_ACCESS_KEY_ID",
            std::env::var("E2E_S3_ACCESS_KEY").unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            std::env::var("E2E_S3_SECRET_KEY").unwrap(),
        )
        .env("S3_FORCE_PATH_STYLE", "true")
        .env_remove("GENESYS_REGION");
        c
    };
    let mut first = make();
    let out = tokio::task::spawn_blocking(move || first.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one recording fails: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("found 12, archived 11, skipped 0, failed 1"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sim-secret") && !stderr.contains("sim-secret"),
        "secret leaked"
    );
    assert!(
        !stderr.contains("X-Signature="),
        "presigned query string leaked into logs"
    );
    let mut second = make();
    let out = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("found 1, archived 0, skipped 0, failed 0, unavailable 0, 1 in quarantine, 11 conversation(s) already archived (not resolved again)"),
        "rerun skips what is stored and leaves the quarantined recording alone: {stdout}"
    );
    assert!(state.exists(), "the ledger file was written");
    assert!(sink.head(&key_of(&s, 0)).await.unwrap().is_some());
    assert!(sink.head(&key_of(&s, 5)).await.unwrap().is_none());
}

/// Bad configuration is a clear error naming the setting, with exit code 2.
#[tokio::test]
async fn cli_configuration_errors_exit_2() {
    let bin = e2e::archiver_bin();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--from", "yesterday", "--to", "2026-11-03T00:00:00Z"],
            vec![],
            "--from",
        ),
        (
            vec![
                "--from",
                "2026-11-03T00:00:00Z",
                "--to",
                "2026-11-01T00:00:00Z",
            ],
            vec![],
            "must be before",
        ),
        (vec![], vec![("GENESYS_CLIENT_ID", "")], "GENESYS_CLIENT_ID"),
        (
            vec![],
            vec![("GENESYS_REGION", "mars_north_1"), ("GENESYS_API_BASE", "")],
            "GENESYS_REGION",
        ),
        (
            vec!["--key-template", "x/{conversation_id}"],
            vec![],
            "recording_id",
        ),
    ];
    let cwd = tempfile::tempdir().unwrap();
    for (args, envs, needle) in cases {
        let mut c = Command::new(&bin);
        c.current_dir(cwd.path()).arg("archive");
        if !args.contains(&"--from") {
            c.args([
                "--from",
                "2026-11-01T00:00:00Z",
                "--to",
                "2026-11-02T00:00:00Z",
            ]);
        }
        c.args(&args)
            .env("GENESYS_CLIENT_ID", "id")
            .env("GENESYS_CLIENT_SECRET", "secret")
            .env("GENESYS_REGION", "eu_central_1")
            .env("S3_BUCKET", "b");
        for (k, v) in &envs {
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
