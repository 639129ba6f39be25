//! Store features applied by the S3 sink, on Ceph RGW (s3s-fs has neither): Object Lock
//! retention and SSE-KMS.

use std::time::Duration;

use e2e::Server;
use sink::testkit::{chunked, pattern};
use sink::{ObjectLock, ObjectSink, PutOptions, S3Sink, S3SinkConfig};

#[tokio::test]
async fn ceph_object_lock_retention_is_applied() {
    let (client, bucket) = e2e::object_lock_bucket("lock").await;
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
    // HEAD reports the retention (what `release --require-object-lock` checks); an object
    // written without it reports none.
    let head = sink.head("recordings/locked.bin").await.unwrap().unwrap();
    let held = head.retention.expect("HEAD reports the object's retention");
    assert_eq!(held.mode, "GOVERNANCE");
    assert_eq!(held.retain_until_epoch_s, until.secs());
    let mut plain = S3SinkConfig::new(bucket.clone());
    plain.object_lock = None;
    let plain = S3Sink::new(client.clone(), plain);
    plain
        .put(
            "recordings/unlocked.bin",
            chunked(pattern(100, 2), 100),
            PutOptions {
                content_length: Some(100),
                ..PutOptions::default()
            },
        )
        .await
        .expect("put without retention");
    let head = plain
        .head("recordings/unlocked.bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.retention, None, "{head:?}");
    // The bucket has Object Lock (what `release` requires by default); a plain bucket has not.
    assert!(plain.object_lock_enabled().await.unwrap());
    let other = e2e::fresh_sink(Server::Ceph, "nolock").await;
    assert!(!other.object_lock_enabled().await.unwrap());
    let s3s = e2e::fresh_sink(Server::S3sFs, "nolock").await;
    assert!(!s3s.object_lock_enabled().await.unwrap());
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
    // Multipart (unknown length) is encrypted too.
    sink.put(
        "recordings/enc-mp.bin",
        chunked(data.clone(), 8192),
        PutOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("multipart with SSE-KMS: {e}"));
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("recordings/enc-mp.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(
        sink::testkit::read_all(&sink, "recordings/enc-mp.bin").await,
        data
    );
}

/// Tags reach the object on every path: with the PUT header, by PutObjectTagging after a
/// multipart upload (Ceph ignores the header on CreateMultipartUpload), and in separate mode.
#[tokio::test]
async fn ceph_tags_on_single_and_multipart_uploads() {
    for mode in [sink::TagMode::Header, sink::TagMode::Separate] {
        let mut s = e2e::fresh_sink(Server::Ceph, "tags").await;
        let mut cfg = s.config().clone();
        cfg.tag_mode = mode;
        cfg.storage_class = Some("STANDARD".into());
        s = S3Sink::new(s.client().clone(), cfg);
        let tags: std::collections::BTreeMap<String, String> = [
            ("recording_id".to_string(), "r-1".to_string()),
            ("note".to_string(), "a&b<c>".to_string()),
        ]
        .into();
        for (key, len) in [("single.bin", Some(50_000u64)), ("multi.bin", None)] {
            let opts = PutOptions {
                content_length: len,
                tags: tags.clone(),
                ..PutOptions::default()
            };
            s.put(key, chunked(pattern(50_000, 3), 5000), opts)
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {key}: {e}"));
            let got = s.tags(key).await.unwrap().expect("tags kept");
            assert_eq!(
                got.get("recording_id").map(String::as_str),
                Some("r-1"),
                "{mode:?} {key}"
            );
            assert_eq!(
                got.get("note").map(String::as_str),
                Some("a_b_c_"),
                "{mode:?} {key}: sanitized"
            );
        }
    }
}

/// SSE-S3: Ceph 16 accepts the header but does not encrypt (HEAD shows no encryption). The sink
/// notices from the PUT response, removes the object and fails clearly without retrying.
#[tokio::test]
async fn ceph_ignored_sse_s3_is_refused_and_removed() {
    let s = e2e::fresh_sink(Server::Ceph, "sses3").await;
    let mut cfg = s.config().clone();
    cfg.sse = sink::ServerSideEncryption::S3;
    let s = S3Sink::new(s.client().clone(), cfg);
    for (key, len) in [("single.bin", Some(1000u64)), ("multi.bin", None)] {
        let err = s
            .put(
                key,
                chunked(pattern(1000, 4), 100),
                PutOptions {
                    content_length: len,
                    ..PutOptions::default()
                },
            )
            .await
            .expect_err("unencrypted object must be refused");
        assert!(err.message.contains("AES256"), "{err}");
        assert!(!err.is_retryable(), "{err}");
        assert!(s.head(key).await.unwrap().is_none(), "{key}: nothing left");
    }
}

/// A bucket whose *default* encryption is SSE-KMS (nothing configured in the tool): ETags are
/// not MD5s there, so the sink must not take them for corruption (delete and quarantine every
/// upload). It verifies by the store's check of Content-MD5 (single PUT with a known MD5, and
/// every multipart part) and keeps the object.
#[tokio::test]
async fn default_bucket_sse_kms_is_verified_without_the_etag() {
    let direct = e2e::fresh_sink(Server::S3sFs, "kms-default").await;
    let proxy = e2e::kms_default_proxy(&Server::S3sFs.endpoint()).await;
    let sink = S3Sink::new(
        e2e::client_at(&proxy.endpoint).await,
        direct.config().clone(),
    );
    let data = pattern(100_000, 4);
    let md5 = sink::Md5Digest::of(&data);
    let cases = [
        ("recordings/known-md5.bin", Some(100_000), Some(md5), true),
        ("recordings/no-md5.bin", Some(100_000), None, false),
        ("recordings/multipart.bin", None, None, true),
    ];
    for (key, len, expected_md5, store_checked) in cases {
        let r = sink
            .put(
                key,
                chunked(data.clone(), 8192),
                PutOptions {
                    content_length: len,
                    expected_md5,
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{key}: a KMS ETag is not corruption: {e}"));
        assert_eq!(r.md5, md5, "{key}");
        assert_eq!(
            r.store_verified, store_checked,
            "{key}: verified by the store only when it checked a Content-MD5"
        );
        assert_eq!(sink::testkit::read_all(&direct, key).await, data, "{key}");
    }
}
