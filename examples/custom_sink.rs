//! A custom `ObjectSink`: keeps objects in memory (a stand-in for any other store). It wraps
//! the body in `HashingBody` so length and MD5 are enforced exactly as the built-in sinks do.
//!
//! `cargo run -p examples --example custom_sink`

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use integrity::{Expectations, HashingBody};
use sink::{
    ObjectMeta, ObjectSink, PutBody, PutOptions, PutResult, SinkError, SinkErrorKind, full_body,
};

#[derive(Debug, Default)]
struct MemorySink {
    objects: Mutex<HashMap<String, (Bytes, PutOptions)>>,
}

impl std::fmt::Display for MemorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory")
    }
}

fn err(kind: SinkErrorKind, key: &str, message: String) -> SinkError {
    SinkError {
        kind,
        op: "put",
        key: key.into(),
        store: "memory".into(),
        message,
        integrity: None,
    }
}

#[async_trait::async_trait]
impl ObjectSink for MemorySink {
    async fn put(
        &self,
        key: &str,
        body: PutBody,
        opts: PutOptions,
    ) -> Result<PutResult, SinkError> {
        sink::validate_key(key).map_err(|m| err(SinkErrorKind::Invalid, key, m))?;
        if opts.create_only && self.objects.lock().unwrap().contains_key(key) {
            return Err(err(SinkErrorKind::AlreadyExists, key, "exists".into()));
        }
        let expect = Expectations {
            length: opts.content_length,
            md5: opts.expected_md5,
            sha256: opts.sha256,
            sha256_expected: opts.expected_sha256,
            crc32c: false,
        };
        let (mut body, digests) = HashingBody::new(body, expect);
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let kind = if e.is_verification_failure() {
                    SinkErrorKind::Verification
                } else {
                    SinkErrorKind::Source
                };
                err(kind, key, e.to_string())
            })?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
            }
        }
        let d = digests.get().expect("body finished");
        self.objects
            .lock()
            .unwrap()
            .insert(key.into(), (Bytes::from(buf), opts));
        Ok(PutResult {
            size: d.length,
            md5: d.md5,
            etag: None,
            store_verified: false,
            sha256: d.sha256,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, SinkError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, o)| ObjectMeta {
                size: b.len() as u64,
                etag: None,
                metadata: o.metadata.clone(),
                content_type: o.content_type.clone(),
                retention: None,
                digests: Default::default(),
            }))
    }

    async fn get(&self, key: &str) -> Result<PutBody, SinkError> {
        let found = self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, _)| b.clone());
        found
            .map(full_body)
            .ok_or_else(|| err(SinkErrorKind::StorePermanent, key, "no such key".into()))
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, SinkError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(_, o)| o.tags.clone()))
    }
}

#[tokio::main]
async fn main() {
    let sink: Arc<dyn ObjectSink> = Arc::new(MemorySink::default());
    let opts = PutOptions {
        content_length: Some(5),
        ..PutOptions::default()
    };
    let r = sink
        .put("a/b.txt", full_body("hello"), opts)
        .await
        .expect("put");
    println!("stored {} bytes, md5 {}", r.size, r.md5.to_hex());
    let short = PutOptions {
        content_length: Some(9),
        ..PutOptions::default()
    };
    let e = sink
        .put("a/c.txt", full_body("hello"), short)
        .await
        .expect_err("short body");
    println!("refused: {e}");
}
