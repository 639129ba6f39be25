#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod body;
mod error;
mod key;
mod local;
mod reserve;
mod s3;
mod tags;
#[cfg(feature = "testkit")]
pub mod testkit;
mod upload;
mod upload_log;

use std::collections::BTreeMap;

pub use body::{PutBody, empty_body, full_body, stream_body};
pub use error::{SinkError, SinkErrorKind};

pub use integrity::Md5Digest;
pub use key::validate_key;
pub use local::LocalDirSink;
pub use reserve::{Readiness, Reservation};
pub use s3::{
    ATTEMPT_KEY, ChecksumMode, ObjectLock, S3Sink, S3SinkConfig, ServerSideEncryption, TagMode,
};
pub use tags::{MAX_TAGS, sanitize_tag_key, sanitize_tag_value};
pub use upload::Upload;
pub use upload_log::{StartedUpload, UploadLog, UploadLogHandle, UploadSweep};

/// How to write one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Exact length when known (from `Content-Length`); enforced, and lets S3 stream a single
    /// PUT without buffering.
    pub content_length: Option<u64>,
    /// `Content-Type` of the object.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*` on S3, the sidecar on a directory).
    pub metadata: BTreeMap<String, String>,
    /// Tags (S3 object tags; at most 10, sanitized).
    pub tags: BTreeMap<String, String>,
    /// MD5 the source vouches for; a mismatch fails the write and removes the object.
    pub expected_md5: Option<Md5Digest>,
    /// SHA-256 known before the bytes (a first pass over the source); a mismatch fails the
    /// write and removes the object, as a wrong `expected_md5` does.
    pub expected_sha256: Option<[u8; 32]>,
    /// Fail with [`SinkErrorKind::AlreadyExists`] instead of replacing an existing object.
    pub create_only: bool,
    /// Told of every multipart upload this write starts and ends (S3), so that one left open
    /// by a crash can be swept later without touching anybody else's.
    pub upload_log: Option<UploadLogHandle>,
    /// Also compute the SHA-256 of the bytes while streaming ([`PutResult::sha256`]), for a
    /// chain-of-custody index.
    pub sha256: bool,
    /// What this write already holds, from [`ObjectSink::try_reserve`] or
    /// [`ObjectSink::reserve`] of the same sink for the same `content_length`; without it,
    /// `put` takes (and may wait for) what it needs itself.
    pub reservation: Option<Reservation>,
}

/// What a successful write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Bytes written.
    pub size: u64,
    /// MD5 computed while streaming.
    pub md5: Md5Digest,
    /// The store's ETag (without quotes), when it gave one.
    pub etag: Option<String>,
    /// Whether the store's own checksum (ETag) was compared with the computed MD5 and matched.
    pub store_verified: bool,
    /// SHA-256 of the bytes written, when [`PutOptions::sha256`] asked for it.
    pub sha256: Option<[u8; 32]>,
}

/// What a store says about an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes, when known.
    pub etag: Option<String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Content type.
    pub content_type: Option<String>,
    /// The object's Object Lock retention, when the store reports one (S3 HEAD's
    /// `x-amz-object-lock-mode` and `-retain-until-date`); `None` for a store or object
    /// without one.
    pub retention: Option<ObjectRetention>,
    /// Digests of the bytes that the store itself keeps with the object (not what a writer
    /// declared in metadata): what `ledger rebuild` restores when the index is not there.
    pub digests: StoredDigests,
}

/// Digests a store keeps with an object, computed from its bytes when they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDigests {
    /// MD5 hex: the directory sink's sidecar (written with the object, from its bytes).
    /// None on S3: an ETag is recomputed when an object is overwritten, so it vouches for
    /// the bytes there now, not for the bytes archived (the custody index keeps those).
    pub md5: Option<String>,
    /// SHA-256 hex: the directory sink's sidecar, when the write computed it.
    pub sha256: Option<String>,
}

/// An object's Object Lock retention, as its store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRetention {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// Until when the object cannot be deleted or overwritten (seconds since the epoch).
    pub retain_until_epoch_s: i64,
}

/// One object found by [`ObjectSink::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes, when known.
    pub etag: Option<String>,
}

/// A stream of listed objects.
pub type ListStream<'a> = futures::stream::BoxStream<'a, Result<ListedObject, SinkError>>;

/// A destination for verified, streaming object writes.
#[async_trait::async_trait]
pub trait ObjectSink: std::fmt::Display + std::fmt::Debug + Send + Sync {
    /// Streams `body` into `key`. On any failure nothing is left under `key` (except an object
    /// that already existed when `create_only` refused to replace it).
    async fn put(&self, key: &str, body: PutBody, opts: PutOptions)
    -> Result<PutResult, SinkError>;

    /// Metadata of `key`, or `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, SinkError>;

    /// Reads the object back as a stream (for audits and tests).
    async fn get(&self, key: &str) -> Result<PutBody, SinkError>;

    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), SinkError>;

    /// The object's tags, or `None` when this sink or store does not keep tags.
    async fn tags(&self, key: &str) -> Result<Option<BTreeMap<String, String>>, SinkError>;

    /// Aborts the multipart uploads of `started` (recorded through an [`UploadLog`] by
    /// writers that are gone) that the store still holds open, looking for them page by page
    /// under `prefix` and by id. Uploads not in `started` are never touched. A directory sink
    /// removes its leftover temporary files under `prefix` instead.
    async fn sweep_uploads(
        &self,
        prefix: &str,
        started: &[StartedUpload],
    ) -> Result<UploadSweep, SinkError> {
        let _ = prefix;
        Ok(UploadSweep {
            gone: started.to_vec(),
            ..UploadSweep::default()
        })
    }

    /// Whether the bucket has Object Lock enabled (S3 `GetObjectLockConfiguration`): then a
    /// release at the source requires each object to be locked. `Ok(false)` for a store or
    /// bucket without it (or a store that does not implement the call); an error when the
    /// store could not be asked.
    async fn object_lock_enabled(&self) -> Result<bool, SinkError> {
        Ok(false)
    }

    /// Learns, once, what the store supports for writing (for S3: whether it honours
    /// conditional PUTs, [`S3Sink::probe_conditional_writes`]); the writer calls it at start.
    /// May write and remove a small probe object. An error leaves the sink as careful as
    /// before (nothing is assumed); the default does nothing.
    async fn prepare_writes(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether a caller that wants to know if `key` exists before a create-only put should
    /// look first (HEAD). `true` (the default) where looking is cheap next to an upload the
    /// store would refuse, or where nothing else would tell; a sink whose store refuses a
    /// create-only write itself in the same round trip (S3 with `If-None-Match: *`, seen
    /// to be honoured) answers `false`: its [`SinkErrorKind::AlreadyExists`] says the same.
    fn look_before_create(&self) -> bool {
        true
    }

    /// Takes, without waiting, what a write of `content_length` bytes (`None`: unknown) must
    /// hold before it sends (S3: a multipart upload's share of the part-buffer budget), to
    /// pass in [`PutOptions::reservation`]. [`Readiness::Busy`] when it would have to wait:
    /// a caller holding a download lets it go and waits in [`Self::reserve`] without it. The
    /// default needs nothing.
    fn try_reserve(&self, content_length: Option<u64>) -> Readiness {
        let _ = content_length;
        Readiness::Ready(None)
    }

    /// Waits for what [`Self::try_reserve`] found busy.
    async fn reserve(&self, content_length: Option<u64>) -> Result<Option<Reservation>, SinkError> {
        let _ = content_length;
        Ok(None)
    }

    /// Every object whose key starts with `prefix`, in key order, page by page (for audits
    /// and rebuilding the ledger). Sinks that cannot list yield one `Invalid` error.
    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        let e = SinkError::new(
            SinkErrorKind::Invalid,
            "list",
            prefix,
            &self,
            "this sink cannot list its objects",
        );
        Box::pin(futures::stream::once(async move { Err(e) }))
    }
}
