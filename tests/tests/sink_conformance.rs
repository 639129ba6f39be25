//! The shared ObjectSink conformance suite against real S3 servers (s3s-fs and Ceph RGW).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use e2e::{Server, fresh_sink};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use sink::testkit::{Capabilities, pattern, run_conformance};
use sink::{ObjectSink, PutOptions, S3Sink, StartedUpload, UploadLog, UploadLogHandle};

async fn conform(server: Server) {
    let sink = fresh_sink(server, "conformance").await;
    let caps = Capabilities {
        tags: server.supports_tags(),
        large: true,
    };
    run_conformance(Arc::new(sink), "conformance", caps).await;
}

#[tokio::test]
async fn s3s_fs_conforms() {
    conform(Server::S3sFs).await;
}

#[tokio::test]
async fn ceph_conforms() {
    conform(Server::Ceph).await;
}

/// Creates an upload of `key` outside the sink (as a crashed writer or another program would
/// leave one) with one part, and returns its id.
async fn open_upload(sink: &S3Sink, key: &str) -> String {
    let c = sink.client();
    let bucket = &sink.config().bucket;
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_string();
    c.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(pattern(1000, 1).into())
        .send()
        .await
        .unwrap();
    id
}

/// Whether the store still holds `id` open: completing it works only then (this works on a
/// store that cannot list uploads too). Completes it as a side effect.
async fn still_open(sink: &S3Sink, key: &str, id: &str) -> bool {
    let c = sink.client();
    let parts = c
        .list_parts()
        .bucket(&sink.config().bucket)
        .key(key)
        .upload_id(id)
        .send()
        .await;
    let Ok(parts) = parts else {
        return false;
    };
    let done: Vec<CompletedPart> = parts
        .parts()
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.part_number().unwrap())
                .set_e_tag(p.e_tag().map(str::to_string))
                .build()
        })
        .collect();
    c.complete_multipart_upload()
        .bucket(&sink.config().bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .is_ok()
}

/// An upload id the store does not have (an upload completed since).
const FINISHED: &str = "00000000-0000-4000-8000-000000000000";

/// The startup sweep aborts exactly the uploads it is given (the ledger's abandoned ones),
/// finding them page by page, and leaves every other upload in the bucket alone: another
/// program's, or a live instance's, even when the prefix is empty (a key template starting
/// with a placeholder). An upload the store no longer has is reported gone.
#[tokio::test]
async fn the_sweep_aborts_only_recorded_uploads() {
    for server in [Server::Ceph, Server::S3sFs] {
        let mut sink = fresh_sink(server, "sweep").await;
        let mut cfg = sink.config().clone();
        cfg.list_page_size = 2;
        sink = S3Sink::new(sink.client().clone(), cfg);
        let mut ours = Vec::new();
        for i in 0..3 {
            let key = format!("2026/11/{i}/rec-{i}.ogg");
            let id = open_upload(&sink, &key).await;
            ours.push(StartedUpload { key, upload_id: id });
        }
        let foreign_a = open_upload(&sink, "2026/11/0/other-app.bin").await;
        let foreign_b = open_upload(&sink, "zz/live-instance.ogg").await;
        let mut started = ours.clone();
        started.push(StartedUpload {
            key: "2026/11/9/finished.ogg".into(),
            upload_id: FINISHED.into(),
        });
        let sweep = sink.sweep_uploads("", &started).await.unwrap();
        let mut aborted = sweep.aborted.clone();
        aborted.sort();
        ours.sort();
        assert_eq!(
            aborted, ours,
            "{server:?}: every recorded open upload aborted"
        );
        let gone: Vec<&str> = sweep.gone.iter().map(|u| &u.upload_id[..]).collect();
        let failed: Vec<&str> = sweep.failed.iter().map(|u| &u.upload_id[..]).collect();
        if server == Server::Ceph {
            assert_eq!(gone, [FINISHED], "{server:?}: NoSuchUpload is gone");
            assert!(failed.is_empty(), "{server:?}: {failed:?}");
        } else {
            // s3s-fs answers AccessDenied (not NoSuchUpload) for an unknown upload: it is kept
            // for the next sweep, never taken for gone.
            assert_eq!((gone.len(), failed), (0, vec![FINISHED]), "{server:?}");
        }
        if server == Server::Ceph {
            assert_eq!(
                sweep.others, 2,
                "{server:?}: the listing paged past the others"
            );
        }
        for u in &ours {
            assert!(
                !still_open(&sink, &u.key, &u.upload_id).await,
                "{server:?}: {} was not aborted",
                u.key
            );
        }
        assert!(
            still_open(&sink, "2026/11/0/other-app.bin", &foreign_a).await,
            "{server:?}: another program's upload was touched"
        );
        assert!(
            still_open(&sink, "zz/live-instance.ogg", &foreign_b).await,
            "{server:?}: a live writer's upload was touched"
        );
    }
}

/// A multipart write whose future is dropped (an attempt timeout, a drain, a lost lease)
/// aborts its upload and tells its upload log; the parts in flight stop.
#[tokio::test]
async fn a_dropped_multipart_write_aborts_its_upload() {
    #[derive(Debug, Default)]
    struct Log(Mutex<(Vec<StartedUpload>, Vec<StartedUpload>)>);
    #[async_trait::async_trait]
    impl UploadLog for Log {
        async fn started(&self, u: &StartedUpload) -> Result<(), String> {
            self.0.lock().unwrap().0.push(u.clone());
            Ok(())
        }
        async fn ended(&self, u: &StartedUpload) {
            self.0.lock().unwrap().1.push(u.clone());
        }
    }
    for server in [Server::Ceph, Server::S3sFs] {
        let sink = fresh_sink(server, "dropped").await;
        let log = Arc::new(Log::default());
        // One whole part (5 MiB), then the source stalls for ever.
        let first = futures::stream::iter(vec![Ok::<_, std::io::Error>(http_body::Frame::data(
            pattern(6 << 20, 3),
        ))]);
        let body = StreamBody::new(first.chain(futures::stream::pending()))
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
        let put = sink.put(
            "recordings/stalled.ogg",
            body.boxed(),
            PutOptions {
                upload_log: Some(UploadLogHandle(log.clone())),
                ..PutOptions::default()
            },
        );
        let timed_out = tokio::time::timeout(Duration::from_secs(3), put).await;
        assert!(timed_out.is_err(), "{server:?}: the write cannot finish");
        let started = log.0.lock().unwrap().0.clone();
        assert_eq!(started.len(), 1, "{server:?}: the upload was recorded");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while log.0.lock().unwrap().1.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            log.0.lock().unwrap().1,
            started,
            "{server:?}: the dropped upload was aborted and its log told"
        );
        let u = &started[0];
        assert!(
            !still_open(&sink, &u.key, &u.upload_id).await,
            "{server:?}: the upload is still open"
        );
        assert!(sink.head("recordings/stalled.ogg").await.unwrap().is_none());
    }
}
