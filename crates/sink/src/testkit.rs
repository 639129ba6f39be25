//! The conformance suite every [`ObjectSink`] runs (feature `testkit`).
//!
//! Each check writes under its own key below a caller-given prefix and asserts the sink's
//! contract: bytes and metadata round-trip, MD5 is computed on the way, length and digest
//! mismatches fail and leave nothing behind, a failing source leaves nothing behind,
//! create-only refuses to replace, delete is idempotent, bad keys are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use integrity::Md5Digest;

use crate::{ObjectSink, PutBody, PutOptions, SinkErrorKind, stream_body};

/// What a store supports, so the suite checks what applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Object tags can be read back.
    pub tags: bool,
    /// Large objects (the suite writes 12 MiB of unknown length, forcing multipart on S3).
    pub large: bool,
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// A body sending `data` in `chunk`-sized frames.
pub fn chunked(data: Bytes, chunk: usize) -> PutBody {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream_body(futures::stream::iter(chunks))
}

/// A body that sends `ok` bytes and then fails like a reset connection.
pub fn failing_after(ok: Bytes) -> PutBody {
    let items: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(ok),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated reset",
        )),
    ];
    stream_body(futures::stream::iter(items))
}

/// Reads an object back whole.
pub async fn read_all(sink: &dyn ObjectSink, key: &str) -> Bytes {
    sink.get(key)
        .await
        .expect("get")
        .collect()
        .await
        .expect("read body")
        .to_bytes()
}

/// Runs every check against `sink`, under `prefix` (which should be unique per run).
pub async fn run_conformance(sink: Arc<dyn ObjectSink>, prefix: &str, caps: Capabilities) {
    let p = prefix.trim_end_matches('/');
    let s = sink.as_ref();

    // Round trip with metadata and tags.
    let key = format!("{p}/roundtrip/a.ogg");
    let data = pattern(300_000, 1);
    let tags: BTreeMap<String, String> = [
        ("conversation_id".to_string(), "c-1".to_string()),
        (
            "start_time".to_string(),
            "2026-11-01T00:00:00.000Z".to_string(),
        ),
    ]
    .into();
    let opts = PutOptions {
        content_length: Some(data.len() as u64),
        content_type: Some("audio/ogg".into()),
        metadata: [("md5".to_string(), Md5Digest::of(&data).to_hex())].into(),
        tags: tags.clone(),
        sha256: true,
        ..PutOptions::default()
    };
    let r = s
        .put(&key, chunked(data.clone(), 17_000), opts)
        .await
        .unwrap_or_else(|e| panic!("{s}: put: {e}"));
    assert_eq!(r.size, data.len() as u64, "{s}: size");
    assert_eq!(r.md5, Md5Digest::of(&data), "{s}: md5 computed on the way");
    assert_eq!(
        r.sha256,
        Some(integrity::sha256_of(&data)),
        "{s}: sha256 computed on the way"
    );
    let head = s.head(&key).await.expect("head").expect("object exists");
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(
        head.metadata.get("md5"),
        Some(&Md5Digest::of(&data).to_hex()),
        "{s}: metadata round trip"
    );
    assert_eq!(
        head.content_type.as_deref(),
        Some("audio/ogg"),
        "{s}: content type"
    );
    assert_eq!(read_all(s, &key).await, data, "{s}: bytes round trip");
    if caps.tags {
        assert_eq!(
            s.tags(&key).await.expect("tags"),
            Some(tags.clone()),
            "{s}: tags round trip"
        );
    }

    // Listing: keys under a prefix in order with their sizes; nothing outside the prefix.
    for (name, len) in [("b/2.wav", 10usize), ("a/1.wav", 20), ("b/1.wav", 30)] {
        let k = format!("{p}/list/{name}");
        s.put(
            &k,
            chunked(pattern(len, 9), 7),
            PutOptions {
                content_length: Some(len as u64),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{s}: put {k}: {e}"));
    }
    let listed: Vec<(String, u64)> =
        futures::StreamExt::collect::<Vec<_>>(s.list(&format!("{p}/list/")))
            .await
            .into_iter()
            .map(|r| {
                r.map(|o| (o.key, o.size))
                    .unwrap_or_else(|e| panic!("{s}: list: {e}"))
            })
            .collect();
    assert_eq!(
        listed,
        vec![
            (format!("{p}/list/a/1.wav"), 20),
            (format!("{p}/list/b/1.wav"), 30),
            (format!("{p}/list/b/2.wav"), 10),
        ],
        "{s}: list"
    );
    let under_b = futures::StreamExt::collect::<Vec<_>>(s.list(&format!("{p}/list/b/"))).await;
    assert_eq!(under_b.len(), 2, "{s}: list under a deeper prefix");

    // Expected MD5 that matches is accepted; one that does not fails and leaves nothing.
    let key = format!("{p}/md5/ok.bin");
    let data = pattern(70_000, 2);
    let opts = PutOptions {
        content_length: Some(70_000),
        expected_md5: Some(Md5Digest::of(&data)),
        ..PutOptions::default()
    };
    s.put(&key, chunked(data.clone(), 4096), opts)
        .await
        .unwrap_or_else(|e| panic!("{s}: matching md5: {e}"));
    let key = format!("{p}/md5/bad.bin");
    let opts = PutOptions {
        content_length: Some(70_000),
        expected_md5: Some(Md5Digest::of(b"other")),
        ..PutOptions::default()
    };
    let err = s
        .put(&key, chunked(data.clone(), 4096), opts)
        .await
        .expect_err("wrong md5 must fail");
    assert!(
        matches!(
            err.kind,
            SinkErrorKind::Verification | SinkErrorKind::StorePermanent
        ),
        "{s}: {err}"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "{s}: nothing left after md5 mismatch"
    );

    // Fewer bytes than announced fails and leaves nothing.
    let key = format!("{p}/short/a.bin");
    let opts = PutOptions {
        content_length: Some(50_000),
        ..PutOptions::default()
    };
    let err = s
        .put(&key, chunked(pattern(40_000, 3), 8192), opts)
        .await
        .expect_err("short body must fail");
    assert!(
        !matches!(err.kind, SinkErrorKind::AlreadyExists),
        "{s}: {err}"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "{s}: nothing left after a short body"
    );

    // More bytes than announced fails and leaves nothing.
    let key = format!("{p}/long/a.bin");
    let opts = PutOptions {
        content_length: Some(10_000),
        ..PutOptions::default()
    };
    assert!(
        s.put(&key, chunked(pattern(20_000, 4), 8192), opts)
            .await
            .is_err(),
        "{s}: long body must fail"
    );
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "{s}: nothing left after a long body"
    );

    // A source failing mid-stream leaves nothing, with known and unknown length.
    for (i, len) in [Some(100_000u64), None].into_iter().enumerate() {
        let key = format!("{p}/reset/{i}.bin");
        let opts = PutOptions {
            content_length: len,
            ..PutOptions::default()
        };
        let err = s
            .put(&key, failing_after(pattern(30_000, 5)), opts)
            .await
            .expect_err("failing source must fail");
        assert_eq!(
            err.kind,
            SinkErrorKind::Source,
            "{s}: a source failure is retryable: {err}"
        );
        assert!(err.is_retryable());
        assert!(
            s.head(&key).await.expect("head").is_none(),
            "{s}: nothing left after a source failure"
        );
    }

    // Unknown length works (multipart on S3), including empty objects.
    let key = format!("{p}/unknown/a.bin");
    let data = pattern(if caps.large { 12 << 20 } else { 200_000 }, 6);
    let sha = PutOptions {
        sha256: true,
        ..PutOptions::default()
    };
    let r = s
        .put(&key, chunked(data.clone(), 1 << 20), sha.clone())
        .await
        .unwrap_or_else(|e| panic!("{s}: unknown length: {e}"));
    assert_eq!(r.size, data.len() as u64);
    assert_eq!(r.md5, Md5Digest::of(&data));
    assert_eq!(
        r.sha256,
        Some(integrity::sha256_of(&data)),
        "{s}: multipart sha256"
    );
    assert_eq!(
        read_all(s, &key).await,
        data,
        "{s}: unknown-length bytes round trip"
    );
    let key = format!("{p}/unknown/empty.bin");
    let r = s
        .put(&key, chunked(Bytes::new(), 1), sha)
        .await
        .unwrap_or_else(|e| panic!("{s}: empty: {e}"));
    assert_eq!(r.size, 0);
    assert_eq!(
        r.sha256,
        Some(integrity::sha256_of(b"")),
        "{s}: empty sha256"
    );
    assert_eq!(
        s.head(&key)
            .await
            .expect("head")
            .expect("empty object exists")
            .size,
        0
    );

    // Create-only refuses to replace and leaves the first object intact.
    let key = format!("{p}/create-only/a.bin");
    let first = pattern(5000, 7);
    let opts = PutOptions {
        content_length: Some(5000),
        create_only: true,
        ..PutOptions::default()
    };
    s.put(&key, chunked(first.clone(), 1000), opts.clone())
        .await
        .unwrap_or_else(|e| panic!("{s}: create-only: {e}"));
    let err = s
        .put(&key, chunked(pattern(5000, 8), 1000), opts)
        .await
        .expect_err("second create-only must fail");
    assert_eq!(err.kind, SinkErrorKind::AlreadyExists, "{s}: {err}");
    assert_eq!(
        read_all(s, &key).await,
        first,
        "{s}: the first object is intact"
    );

    // Replacing without create-only works.
    let second = pattern(6000, 9);
    s.put(
        &key,
        chunked(second.clone(), 1000),
        PutOptions {
            content_length: Some(6000),
            ..PutOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{s}: overwrite: {e}"));
    assert_eq!(read_all(s, &key).await, second);

    // Delete is idempotent.
    s.delete(&key).await.expect("delete");
    assert!(s.head(&key).await.expect("head").is_none());
    s.delete(&key)
        .await
        .expect("deleting a missing key is fine");

    // The push-style Upload: complete stores, abort leaves nothing.
    let key = format!("{p}/upload/done.bin");
    let data = pattern(90_000, 10);
    let mut up = crate::Upload::begin(
        sink.clone(),
        &key,
        PutOptions {
            content_length: Some(90_000),
            ..PutOptions::default()
        },
    );
    for c in data.chunks(10_000) {
        up.write(Bytes::copy_from_slice(c)).await.expect("write");
    }
    let r = up
        .complete()
        .await
        .unwrap_or_else(|e| panic!("{s}: upload complete: {e}"));
    assert_eq!(r.md5, Md5Digest::of(&data));
    assert_eq!(
        read_all(s, &key).await,
        data,
        "{s}: upload bytes round trip"
    );
    let key = format!("{p}/upload/aborted.bin");
    let mut up = crate::Upload::begin(sink.clone(), &key, PutOptions::default());
    up.write(pattern(50_000, 11)).await.expect("write");
    up.abort().await.expect("abort");
    assert!(
        s.head(&key).await.expect("head").is_none(),
        "{s}: nothing left after abort"
    );

    // Bad keys are refused before any I/O.
    for bad in [
        format!("{p}/../escape.bin"),
        format!("/{p}/abs.bin"),
        format!("{p}//x.bin"),
    ] {
        let err = s
            .put(&bad, chunked(pattern(10, 0), 10), PutOptions::default())
            .await
            .expect_err("bad key");
        assert_eq!(err.kind, SinkErrorKind::Invalid, "{s}: {bad}: {err}");
    }
}
