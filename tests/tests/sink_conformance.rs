//! The shared ObjectSink conformance suite against real S3 servers (s3s-fs and Ceph RGW).

use std::sync::Arc;

use e2e::{Server, fresh_sink};
use sink::ObjectSink;
use sink::testkit::{Capabilities, chunked, pattern, run_conformance};

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

/// A multipart upload abandoned by a crash is found and aborted by the startup sweep.
#[tokio::test]
async fn stale_multipart_uploads_are_swept() {
    // s3s-fs cannot list multipart uploads (501), so only Ceph can be swept.
    for server in [Server::Ceph] {
        let sink = fresh_sink(server, "sweep").await;
        let c = sink.client();
        let bucket = &sink.config().bucket;
        let up = c
            .create_multipart_upload()
            .bucket(bucket)
            .key("recordings/x/y.ogg")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_string();
        c.upload_part()
            .bucket(bucket)
            .key("recordings/x/y.ogg")
            .upload_id(&id)
            .part_number(1)
            .body(pattern(1000, 1).into())
            .send()
            .await
            .unwrap();
        assert_eq!(
            sink.abort_stale_uploads("recordings/").await.unwrap(),
            1,
            "{server:?}"
        );
        let left = c
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert!(left.uploads().is_empty(), "{server:?}: no upload left");
        assert!(sink.head("recordings/x/y.ogg").await.unwrap().is_none());
        let _ = chunked;
    }
}
