//! Requests to the store per archived recording, counted by a proxy in front of s3s-fs and
//! Ceph: one (a conditional PUT) for a new key where the store honours `If-None-Match`; a HEAD
//! and a PUT where it does not; none for what the ledger holds.

use e2e::{Server, archiver_command, fresh_sink, output_of as run, output_text as text};
use genesys_sim::{SimConfig, Simulator};

async fn requests_per_recording(server: Server, conditions: bool) {
    let n = 12;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: n,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let bucket = fresh_sink(server, "requests").await.config().bucket.clone();
    let proxy = if conditions {
        e2e::faulty_proxy(&server.endpoint(), 0.0, 0).await
    } else {
        e2e::unconditional_proxy(&server.endpoint()).await
    };
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = e2e::sim_window(&s);
    let archive = || {
        let mut c = archiver_command(s.base_url(), &bucket);
        c.current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .args(["archive", "--from", from, "--to", to])
            .args(["--allow-loopback-media", "--no-index"])
            .args([
                "--tag-mode",
                if server.supports_tags() {
                    "header"
                } else {
                    "disabled"
                },
            ]);
        c
    };
    let out = run(archive()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let to_recordings = proxy.stats.requests_to("/recordings/");
    let puts = to_recordings
        .iter()
        .filter(|r| r.starts_with("PUT "))
        .count();
    let heads = to_recordings
        .iter()
        .filter(|r| r.starts_with("HEAD "))
        .count();
    assert_eq!(puts, n, "{to_recordings:#?}");
    if conditions {
        assert_eq!(
            to_recordings.len(),
            n,
            "one request per new recording: {to_recordings:#?}"
        );
    } else {
        // The store refuses the condition: detected at start, the header is not sent (every
        // PUT went through) and each write looks first.
        assert!(heads >= n, "{to_recordings:#?}");
        assert!(
            proxy.stats.requests_to("conditional-write-probe").len() <= 2,
            "probed once"
        );
    }
    // Nothing new: the ledger answers, the store is not asked about recordings.
    let out = run(archive()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        proxy.stats.requests_to("/recordings/").len(),
        to_recordings.len(),
        "{:#?}",
        proxy.stats.requests_to("/recordings/")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_per_new_recording_on_s3s_fs() {
    requests_per_recording(Server::S3sFs, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_per_new_recording_on_ceph() {
    requests_per_recording(Server::Ceph, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_without_conditional_writes_keeps_the_look_before_each_write() {
    requests_per_recording(Server::S3sFs, false).await;
}

/// Part buffers are bounded across writers: with a budget for one upload's buffers, three
/// multipart writes started together never have two uploads open at once at the store (each
/// waits before it opens its upload or holds a buffer), and all three are stored.
#[tokio::test(flavor = "multi_thread")]
async fn multipart_buffers_are_bounded_across_writers() {
    use futures::StreamExt;
    use sink::{ObjectSink, PutOptions, S3Sink, S3SinkConfig, TagMode};
    let bucket = fresh_sink(Server::S3sFs, "multipart-bound")
        .await
        .config()
        .bucket
        .clone();
    let proxy = e2e::faulty_proxy(&Server::S3sFs.endpoint(), 0.0, 0).await;
    let mut cfg = S3SinkConfig::new(bucket);
    cfg.tag_mode = TagMode::Disabled;
    cfg.multipart_threshold = 0;
    cfg.part_size = 5 << 20;
    cfg.max_parts_in_flight = 1;
    cfg.multipart_memory = 10 << 20; // one upload: a 5 MiB part in flight and one filling
    let sink = std::sync::Arc::new(S3Sink::new(e2e::client_at(&proxy.endpoint).await, cfg));
    let size = 6usize << 20;
    let writes = (0..3).map(|i| {
        let sink = sink.clone();
        async move {
            // Streamed in slow chunks, so that writes started together overlap.
            let chunks = futures::stream::iter(0..12).then(move |_| async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![i as u8; size / 12]))
            });
            let opts = PutOptions {
                content_length: Some(size as u64),
                ..PutOptions::default()
            };
            sink.put(&format!("big/{i}.bin"), sink::stream_body(chunks), opts)
                .await
        }
    });
    for r in futures::future::join_all(writes).await {
        assert_eq!(r.expect("stored").size, size as u64);
    }
    // Opened (POST ?uploads) and completed (POST ?uploadId=): never two open at once.
    let (mut open, mut most) = (0i32, 0i32);
    let log = proxy.stats.requests_to("/big/");
    for r in &log {
        if r.starts_with("POST ") && r.contains("?uploads") {
            open += 1;
            most = most.max(open);
        } else if r.starts_with("POST ") && r.contains("uploadId=") {
            open -= 1;
        }
    }
    assert_eq!(open, 0, "{log:#?}");
    assert_eq!(most, 1, "{log:#?}");
}

/// A write that must wait for its share of the part buffers waits with its download closed.
/// Three recordings of 24 MiB (more than the socket buffers hold), three workers, and a
/// budget for one multipart upload: before, the two writers waiting held their media
/// responses open and unread while the first upload ran (a download finished while another
/// was open, twice); now each lets its download go, waits for its turn, and opens it again,
/// so no download is open while another finishes. All three are stored and verified.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_waiting_for_part_buffers_does_not_hold_its_download() {
    use archiver::{ArchiverConfig, Workers, archive};
    use genesys_media::DiscoveryQuery;
    use sink::{ObjectSink, S3Sink, TagMode};
    use std::sync::Arc;
    let size = 24u64 << 20;
    let s = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 3,
        size_range: (size, size),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let direct = fresh_sink(Server::S3sFs, "multipart-turns").await;
    let mut cfg = direct.config().clone();
    cfg.tag_mode = TagMode::Disabled;
    cfg.multipart_threshold = 0;
    cfg.part_size = 5 << 20;
    cfg.max_parts_in_flight = 1;
    cfg.multipart_memory = 10 << 20; // one upload: a 5 MiB part in flight and one filling
    let sink: Arc<dyn ObjectSink> = Arc::new(S3Sink::new(
        e2e::client_at(&Server::S3sFs.endpoint()).await,
        cfg,
    ));
    let c = test_support::sim_client(&s, |c| {
        c.poll_initial = std::time::Duration::from_millis(100)
    });
    let cfg = ArchiverConfig {
        workers: Workers::Fixed(3),
        ..ArchiverConfig::default()
    };
    let q = DiscoveryQuery::interval(s.config().start, s.config().end());
    let summary = archive(
        c.clone(),
        sink,
        c.discover(q),
        cfg,
        Arc::new(archiver::NoEvents),
    )
    .await;
    assert_eq!(summary.archived, 3, "{summary:?}");
    let ids = s
        .dataset()
        .recordings
        .iter()
        .map(|r| r.id.clone())
        .collect();
    e2e::assert_store_holds(&s, &direct, &ids).await;
    assert_eq!(
        s.stats().media_overlap,
        0,
        "a download was held open while another one finished: {:?}",
        s.stats()
    );
}
