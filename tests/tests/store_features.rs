//! Store features applied by the S3 sink, on Ceph RGW (s3s-fs has neither): Object Lock
//! retention and SSE-KMS.

use std::time::Duration;

use e2e::Server;
use sink::testkit::{chunked, pattern};
use sink::{ObjectLock, ObjectSink, PutOptions, S3Sink, S3SinkConfig};

#[tokio::test]
async fn ceph_object_lock_retention_is_applied() {
    let client = e2e::client(Server::Ceph).await;
    let bucket = format!("lock-{}", std::process::id());
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create locked bucket: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    let mut cfg = S3SinkConfig::new(bucket.clone());
    cfg.object_lock = Some(ObjectLock {
        mode: "GOVERNANCE".into(),
        retain_for: Duration::from_secs(24 * 3600),
    });
    let sink = S3Sink::new(client.clone(), cfg);
    let data = pattern(10_000, 1);
    sink.put(
        "recordings/locked.bin",
        chunked(data, 4096),
        PutOptions {
            content_length: Some(10_000),
            ..PutOptions::default()
        },
    )
    .await
    .expect("put with retention");
    let r = client
        .get_object_retention()
        .bucket(&bucket)
        .key("recordings/locked.bin")
        .send()
        .await
        .expect("retention");
    let ret = r.retention().expect("retention set");
    assert_eq!(ret.mode().map(|m| m.as_str()), Some("GOVERNANCE"));
    let until = ret.retain_until_date().expect("retain-until date");
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    assert!(
        until.secs() > now.secs() + 23 * 3600,
        "retained about a day"
    );
}

/// SSE-KMS (Ceph's testing key store): the object is stored encrypted with the named key, reads
/// back as the plaintext, and the sink does not treat the non-MD5 ETag as corruption.
#[tokio::test]
async fn ceph_sse_kms_objects_round_trip() {
    let client = e2e::client(Server::Ceph).await;
    let bucket = format!("sse-{}", std::process::id());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let mut cfg = S3SinkConfig::new(bucket.clone());
    cfg.sse = sink::ServerSideEncryption::Kms {
        key_id: Some("testkey-1".into()),
    };
    let sink = S3Sink::new(client.clone(), cfg);
    let data = pattern(100_000, 2);
    let r = sink
        .put(
            "recordings/enc.bin",
            chunked(data.clone(), 8192),
            PutOptions {
                content_length: Some(100_000),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("put with SSE-KMS: {e}"));
    assert!(!r.store_verified, "with SSE-KMS the ETag is not compared");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("recordings/enc.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some("testkey-1"));
    assert_eq!(
        sink::testkit::read_all(&sink, "recordings/enc.bin").await,
        data
    );
}
