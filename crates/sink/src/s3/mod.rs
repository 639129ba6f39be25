//! A sink writing to Amazon S3 or an S3-compatible store through aws-sdk-s3.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use futures::StreamExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use integrity::{BoxError, Digests, Expectations, HashingBody, IntegrityError, Md5Digest};

use crate::local::integrity_err;
use crate::tags::{encode_tagging, sanitize_all};
use crate::{
    ObjectMeta, ObjectSink, PutBody, PutOptions, PutResult, Readiness, Reservation, SinkError,
    SinkErrorKind, StartedUpload, UploadSweep, validate_key,
};

mod checks;
mod config;
mod multipart;

pub use config::{ChecksumMode, ObjectLock, S3SinkConfig, ServerSideEncryption, TagMode};

/// User-metadata key of the random mark every write carries, so that a failed write removes
/// only an object it wrote itself.
pub const ATTEMPT_KEY: &str = "archiver-attempt";

/// Writes to S3 (or Ceph RGW, s3s-fs, ...) with streaming PutObject when the length is known
/// and multipart upload otherwise, verifying the ETag against the MD5 computed on the way and
/// removing what it wrote on every failure path.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    cfg: S3SinkConfig,
    /// What the probe learnt of conditional PUTs (`probe_conditional_writes`): unknown,
    /// honoured (single PUTs rely on the condition alone, without a HEAD first), ignored, or
    /// refused (the header is not sent; HEAD before each create-only write).
    conditions: std::sync::Arc<std::sync::atomic::AtomicU8>,
    /// Multipart uploads that may buffer parts at once ([`S3SinkConfig::multipart_memory`]).
    multipart_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

const CONDITIONS_UNKNOWN: u8 = 0;
const CONDITIONS_HONOURED: u8 = 1;
const CONDITIONS_IGNORED: u8 = 2;
const CONDITIONS_REFUSED: u8 = 3;

impl fmt::Display for S3Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.cfg.bucket)
    }
}

/// The per-write settings PutObject and CreateMultipartUpload share.
struct WriteSettings {
    sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
    kms_key_id: Option<String>,
    storage_class: Option<aws_sdk_s3::types::StorageClass>,
    lock_mode: Option<aws_sdk_s3::types::ObjectLockMode>,
    retain_until: Option<aws_smithy_types::DateTime>,
}

/// Keeps the first error of the wrapped body, because the SDK reports body failures as opaque
/// dispatch errors.
#[derive(Debug, Clone, Default)]
struct ErrorSlot(Arc<Mutex<Option<IntegrityError>>>);

impl ErrorSlot {
    fn take(&self) -> Option<IntegrityError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pin_project_lite::pin_project! {
    struct CaptureBody<B> {
        #[pin]
        inner: B,
        slot: ErrorSlot,
    }
}

impl<B: Body<Data = Bytes, Error = IntegrityError>> Body for CaptureBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                let msg = e.to_string();
                *this.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Poll::Ready(Some(Err(Box::new(std::io::Error::other(msg)))))
            }
            other => other.map(|o| o.map(|r| r.map_err(|e| Box::new(e) as BoxError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn status_of<E>(
    e: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl S3Sink {
    /// A sink over a configured S3 client (endpoint, region, credentials, path style and
    /// checksum mode are the client's; see [`S3Sink::client_from`]).
    pub fn new(client: Client, cfg: S3SinkConfig) -> Self {
        let per_upload = (cfg.part_size.max(5 << 20) as u64)
            .saturating_mul(cfg.max_parts_in_flight.max(1) as u64 + 1);
        let slots = (cfg.multipart_memory / per_upload).max(1) as usize;
        Self {
            client,
            multipart_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(slots)),
            cfg,
            conditions: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(CONDITIONS_UNKNOWN)),
        }
    }

    /// Whether a write of `content_length` bytes (`None`: unknown) is a multipart upload.
    fn is_multipart(&self, content_length: Option<u64>) -> bool {
        !matches!(content_length, Some(len) if len <= self.cfg.multipart_threshold)
    }

    /// Waits for a multipart upload's share of the part-buffer budget (`key` names the write
    /// in an error).
    async fn reserve_slot(&self, key: &str) -> Result<Reservation, SinkError> {
        let permit = self
            .multipart_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| {
                SinkError::new(
                    SinkErrorKind::Invalid,
                    "put",
                    key,
                    self,
                    format!("multipart slots closed: {e}"),
                )
            })?;
        Ok(Reservation::new(permit))
    }

    /// Checks once that the store honours `If-None-Match: *` on PutObject: writes a small
    /// probe object under `key` create-only twice, and the second must be refused with 412.
    /// Then create-only writes of a single PUT rely on that condition alone (one round trip
    /// per new object instead of a HEAD and a PUT), and [`ObjectSink::look_before_create`]
    /// answers `false`. A store that ignores the condition (the second PUT succeeds) or
    /// refuses it (400, 501) keeps the HEAD before each create-only write; so does a sink
    /// never probed. The probe is removed afterwards (where Object Lock keeps it, it stays:
    /// a few bytes). Returns whether the condition is honoured.
    pub async fn probe_conditional_writes(&self, key: &str) -> Result<bool, SinkError> {
        if !self.cfg.conditional_writes {
            return Ok(false);
        }
        const PROBE: &[u8] = b"conditional write probe";
        // Content-MD5: stores with Object Lock retention ask for it on every PUT.
        let md5 = Md5Digest::of(PROBE).to_base64();
        let put = || {
            self.client
                .put_object()
                .bucket(&self.cfg.bucket)
                .key(key)
                .body(ByteStream::from_static(PROBE))
                .content_type("text/plain")
                .content_md5(md5.clone())
                .if_none_match("*")
                .send()
        };
        let refused = |e: &SdkError<_, _>| matches!(status_of(e), Some(400 | 501));
        // A probe left by an earlier start is as good as a first PUT.
        let first = match put().await {
            Ok(_) => None,
            Err(e) if status_of(&e) == Some(412) => None,
            Err(e) if refused(&e) => Some(CONDITIONS_REFUSED),
            Err(e) => return Err(self.sdk_err("put", key, e)),
        };
        let state = match first {
            Some(s) => s,
            None => match put().await {
                Ok(_) => CONDITIONS_IGNORED,
                Err(e) if status_of(&e) == Some(412) => CONDITIONS_HONOURED,
                Err(e) if refused(&e) => CONDITIONS_REFUSED,
                Err(e) => return Err(self.sdk_err("put", key, e)),
            },
        };
        if state != CONDITIONS_REFUSED
            && let Err(e) = self.delete(key).await
        {
            tracing::debug!(key, error = %e, "the conditional-write probe stays");
        }
        self.conditions
            .store(state, std::sync::atomic::Ordering::Relaxed);
        Ok(state == CONDITIONS_HONOURED)
    }

    fn conditions(&self) -> u8 {
        self.conditions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Create-only single PUTs rely on `If-None-Match: *` alone.
    fn conditional_proven(&self) -> bool {
        self.cfg.conditional_writes && self.conditions() == CONDITIONS_HONOURED
    }

    /// Whether create-only writes send `If-None-Match: *` (not to a store that refuses it).
    fn send_conditions(&self) -> bool {
        self.cfg.conditional_writes && self.conditions() != CONDITIONS_REFUSED
    }

    /// Builds an S3 client from a loaded SDK configuration with the settings S3-compatible
    /// stores need.
    pub fn client_from(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        checksums: ChecksumMode,
    ) -> Client {
        use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
        let (req, resp) = match checksums {
            ChecksumMode::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
            ChecksumMode::WhenSupported => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
        };
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(force_path_style)
            .request_checksum_calculation(req)
            .response_checksum_validation(resp)
            .build();
        Client::from_conf(conf)
    }

    /// The configuration.
    pub fn config(&self) -> &S3SinkConfig {
        &self.cfg
    }

    /// The S3 client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn err(
        &self,
        kind: SinkErrorKind,
        op: &'static str,
        key: &str,
        msg: impl Into<String>,
    ) -> SinkError {
        SinkError::new(kind, op, key, self, msg)
    }

    fn sdk_err<E>(
        &self,
        op: &'static str,
        key: &str,
        e: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = status_of(&e);
        let kind = match (&e, status) {
            (_, Some(412)) => SinkErrorKind::AlreadyExists,
            (_, Some(409)) => SinkErrorKind::Conflict,
            // The store gave up waiting for a stalled body: the stream, not the request, failed.
            (_, Some(400)) if e.code() == Some("RequestTimeout") => SinkErrorKind::StoreTemporary,
            // The store refused the bytes for their digest (Content-MD5, a flexible checksum,
            // the signed payload hash): an integrity failure, retried as one.
            (_, Some(400))
                if matches!(
                    e.code(),
                    Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch")
                ) =>
            {
                SinkErrorKind::Verification
            }
            (_, Some(s)) if s == 429 || s >= 500 => SinkErrorKind::StoreTemporary,
            (SdkError::ServiceError(_), Some(_)) => SinkErrorKind::StorePermanent,
            (SdkError::ConstructionFailure(_), _) => SinkErrorKind::Invalid,
            _ => SinkErrorKind::StoreTemporary,
        };
        let code = e.code().map(|c| format!("{c}: ")).unwrap_or_default();
        let status = status.map(|s| format!("HTTP {s} ")).unwrap_or_default();
        let mut msg = format!("{status}{code}{}", DisplayErrorContext(&e));
        if kind == SinkErrorKind::AlreadyExists {
            msg = "an object already exists under this key (create-only write)".into();
        }
        self.err(kind, op, key, msg)
    }

    fn sse_is_kms(&self) -> bool {
        matches!(self.cfg.sse, ServerSideEncryption::Kms { .. })
    }

    fn metadata(opts: &PutOptions) -> HashMap<String, String> {
        opts.metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.chars()
                        .filter(|c| c.is_ascii() && !c.is_ascii_control())
                        .collect(),
                )
            })
            .collect()
    }

    async fn put_tags(&self, key: &str, tags: &[(String, String)]) -> Result<(), SinkError> {
        if tags.is_empty() {
            return Ok(());
        }
        let set: Vec<Tag> = tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| self.err(SinkErrorKind::Invalid, "put-tags", key, e.to_string()))?;
        self.client
            .put_object_tagging()
            .bucket(&self.cfg.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.sdk_err("put-tags", key, e))?;
        Ok(())
    }

    async fn put_single(
        &self,
        key: &str,
        body: PutBody,
        len: u64,
        opts: &PutOptions,
    ) -> Result<PutResult, SinkError> {
        let slot = ErrorSlot::default();
        let expect = Expectations {
            length: Some(len),
            md5: opts.expected_md5,
            sha256: opts.sha256,
            sha256_expected: opts.expected_sha256,
            crc32c: false,
        };
        let computes_sha256 = expect.computes_sha256();
        let (hashing, handle) = HashingBody::new(body, expect);
        let capture = CaptureBody {
            inner: hashing,
            slot: slot.clone(),
        };
        let tags = sanitize_all(&opts.tags);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .body(ByteStream::new(SdkBody::from_body_1_x(capture)))
            .content_length(len as i64)
            .set_content_type(opts.content_type.clone())
            .set_metadata(Some(Self::metadata(opts)));
        if let Some(m) = opts.expected_md5 {
            req = req.content_md5(m.to_base64());
        }
        if opts.create_only && self.send_conditions() {
            req = req.if_none_match("*");
        }
        if self.cfg.tag_mode == TagMode::Header && !tags.is_empty() {
            req = req.tagging(encode_tagging(&tags));
        }
        let ws = self.write_settings();
        req = req
            .set_server_side_encryption(ws.sse)
            .set_ssekms_key_id(ws.kms_key_id)
            .set_storage_class(ws.storage_class)
            .set_object_lock_mode(ws.lock_mode)
            .set_object_lock_retain_until_date(ws.retain_until);
        let out = match req.send().await {
            Ok(o) => o,
            Err(e) => {
                let err = match slot.take() {
                    Some(ie) => integrity_err(self, key, ie),
                    None => self.sdk_err("put", key, e),
                };
                if err.kind.may_clean_up() {
                    self.cleanup(key, opts).await;
                }
                return Err(err);
            }
        };
        // A zero-length body is never polled by the HTTP client.
        let digests = handle.get().or_else(|| {
            (len == 0).then(|| Digests {
                length: 0,
                md5: Md5Digest::of(b""),
                sha256: computes_sha256.then(|| integrity::sha256_of(b"")),
                crc32c: None,
            })
        });
        let Some(digests) = digests else {
            self.cleanup(key, opts).await;
            return Err(self.err(
                SinkErrorKind::Source,
                "put",
                key,
                "the store accepted the upload before the body ended",
            ));
        };
        if let Err(e) = self.check_sse(key, out.server_side_encryption()) {
            self.cleanup(key, opts).await;
            return Err(e);
        }
        // The store checked the bytes itself when it accepted a Content-MD5 or a flexible
        // checksum the SDK computed over this (verified) stream.
        let store_checked = opts.expected_md5.is_some()
            || out.checksum_crc32().is_some()
            || out.checksum_crc32_c().is_some()
            || out.checksum_crc64_nvme().is_some()
            || out.checksum_sha1().is_some()
            || out.checksum_sha256().is_some();
        self.finish(
            key,
            out.e_tag(),
            out.server_side_encryption(),
            &digests.md5_hex(),
            store_checked,
            digests,
            &tags,
            opts,
        )
        .await
    }

    /// Encryption, storage class and retention, the same for PutObject and
    /// CreateMultipartUpload.
    fn write_settings(&self) -> WriteSettings {
        use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption as Sse, StorageClass};
        let (sse, kms_key_id) = match &self.cfg.sse {
            ServerSideEncryption::None => (None, None),
            ServerSideEncryption::S3 => (Some(Sse::Aes256), None),
            ServerSideEncryption::Kms { key_id } => (Some(Sse::AwsKms), key_id.clone()),
        };
        let lock = self.cfg.object_lock.as_ref().map(|l| {
            let until = std::time::SystemTime::now() + l.retain_for;
            (
                ObjectLockMode::from(l.mode.as_str()),
                aws_smithy_types::DateTime::from(until),
            )
        });
        WriteSettings {
            sse,
            kms_key_id,
            storage_class: self.cfg.storage_class.as_deref().map(StorageClass::from),
            lock_mode: lock.as_ref().map(|l| l.0.clone()),
            retain_until: lock.map(|l| l.1),
        }
    }
}

#[async_trait::async_trait]
impl ObjectSink for S3Sink {
    async fn put(
        &self,
        key: &str,
        body: PutBody,
        opts: PutOptions,
    ) -> Result<PutResult, SinkError> {
        validate_key(key).map_err(|m| self.err(SinkErrorKind::Invalid, "put", key, m))?;
        // Every write carries a random mark of its own, so a failed write removes only an
        // object it wrote itself, never another writer's under the same key.
        let mut opts = opts;
        opts.metadata
            .insert(ATTEMPT_KEY.into(), format!("{:016x}", fastrand::u64(..)));
        let single = !self.is_multipart(opts.content_length);
        // A single PUT with a condition the store honours refuses an existing object itself
        // (412, in the same round trip); a multipart upload looks first, before its parts.
        let look = !(single && self.conditional_proven());
        if opts.create_only && look && self.head(key).await?.is_some() {
            return Err(self.err(
                SinkErrorKind::AlreadyExists,
                "put",
                key,
                "an object already exists under this key (create-only write)",
            ));
        }
        match opts.content_length {
            Some(len) if single => self.put_single(key, body, len, &opts).await,
            _ => self.put_multipart(key, body, &opts).await,
        }
    }

    fn look_before_create(&self) -> bool {
        !self.conditional_proven()
    }

    fn try_reserve(&self, content_length: Option<u64>) -> Readiness {
        if !self.is_multipart(content_length) {
            return Readiness::Ready(None);
        }
        match self.multipart_slots.clone().try_acquire_owned() {
            Ok(permit) => Readiness::Ready(Some(Reservation::new(permit))),
            Err(tokio::sync::TryAcquireError::NoPermits) => Readiness::Busy,
            // Closed: `put` reports it.
            Err(tokio::sync::TryAcquireError::Closed) => Readiness::Ready(None),
        }
    }

    async fn reserve(&self, content_length: Option<u64>) -> Result<Option<Reservation>, SinkError> {
        if !self.is_multipart(content_length) {
            return Ok(None);
        }
        self.reserve_slot("").await.map(Some)
    }

    async fn prepare_writes(&self) -> Result<(), SinkError> {
        if self.conditions() != CONDITIONS_UNKNOWN || !self.cfg.conditional_writes {
            return Ok(());
        }
        let key = format!(
            ".genesys-archiver/conditional-write-probe-{:016x}",
            fastrand::u64(..)
        );
        self.probe_conditional_writes(&key).await.map(|_| ())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, SinkError> {
        match self
            .client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(ObjectMeta {
                // S3 keeps no digest of its own that survives an overwrite as the archived
                // bytes' (a new ETag is the new bytes' MD5): none is reported.
                digests: crate::StoredDigests::default(),
                size: o.content_length().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                metadata: o
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                content_type: o.content_type().map(str::to_string),
                retention: match (o.object_lock_mode(), o.object_lock_retain_until_date()) {
                    (Some(mode), Some(until)) => Some(crate::ObjectRetention {
                        mode: mode.as_str().to_string(),
                        retain_until_epoch_s: until.secs(),
                    }),
                    _ => None,
                },
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.sdk_err("head", key, e)),
        }
    }

    fn list<'a>(&'a self, prefix: &'a str) -> crate::ListStream<'a> {
        // One page of up to 1000 keys at a time, following continuation tokens.
        let pages = futures::stream::try_unfold(Some(None::<String>), move |token| async move {
            let Some(token) = token else {
                return Ok(None);
            };
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.cfg.bucket)
                .prefix(prefix)
                .max_keys(self.cfg.list_page_size)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.sdk_err("list", prefix, e))?;
            let items: Vec<Result<crate::ListedObject, SinkError>> = out
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(Ok(crate::ListedObject {
                        key: o.key()?.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                    }))
                })
                .collect();
            let next = if out.is_truncated() == Some(true) {
                out.next_continuation_token().map(|t| Some(t.to_string()))
            } else {
                None
            };
            Ok(Some((futures::stream::iter(items), next)))
        });
        Box::pin(
            pages
                .map(|r| match r {
                    Ok(s) => s.boxed(),
                    Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                })
                .flatten(),
        )
    }

    async fn get(&self, key: &str) -> Result<PutBody, SinkError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.sdk_err("get", key, e))?;
        let body: SdkBody = out.body.into_inner();
        Ok(body.map_err(|e| e as BoxError).boxed())
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        match self
            .client
            .delete_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.sdk_err("delete", key, e)),
        }
    }

    async fn object_lock_enabled(&self) -> Result<bool, SinkError> {
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.cfg.bucket)
            .send()
            .await
        {
            Ok(o) => Ok(o
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled")),
            // No configuration, or a store without the call.
            Err(e)
                if matches!(status_of(&e), Some(404) | Some(501))
                    || e.code() == Some("ObjectLockConfigurationNotFoundError")
                    || e.code() == Some("NotImplemented") =>
            {
                Ok(false)
            }
            Err(e) => Err(self.sdk_err("get-object-lock-configuration", "", e)),
        }
    }

    async fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, SinkError> {
        if self.cfg.tag_mode == TagMode::Disabled {
            return Ok(None);
        }
        match self
            .client
            .get_object_tagging()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(
                o.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            )),
            Err(e) if status_of(&e) == Some(501) => Ok(None),
            Err(e) => Err(self.sdk_err("get-tags", key, e)),
        }
    }

    async fn sweep_uploads(
        &self,
        prefix: &str,
        started: &[StartedUpload],
    ) -> Result<UploadSweep, SinkError> {
        self.sweep(prefix, started).await
    }
}
