//! How an [`super::S3Sink`] writes: tags, flexible checksums, encryption, Object Lock,
//! multipart sizes and conditional writes.

use std::time::Duration;

/// How object tags are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMode {
    /// With the upload (`x-amz-tagging` on PutObject; PutObjectTagging after a multipart
    /// upload, because stores such as Ceph ignore the header on CreateMultipartUpload).
    #[default]
    Header,
    /// Always by a separate PutObjectTagging after the upload.
    Separate,
    /// No tags (stores without tagging, such as s3s-fs); the metadata still carries them.
    Disabled,
}

/// Whether the SDK adds flexible checksums (CRC32 trailers) to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Only when an operation requires one. Works everywhere, including Ceph RGW over HTTP,
    /// which rejects the SDK's default streaming checksums. Integrity is then proven by
    /// Content-MD5 (where the MD5 is known up front) and by comparing the ETag.
    #[default]
    WhenRequired,
    /// Whenever the operation supports one (the SDK default; AWS S3 and s3s-fs).
    WhenSupported,
}

/// Server-side encryption of written objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServerSideEncryption {
    /// The bucket default.
    #[default]
    None,
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS with an optional key id (the ETag is then not an MD5 and is not compared).
    Kms {
        /// KMS key id or ARN; `None` uses the AWS managed key.
        key_id: Option<String>,
    },
}

/// Object Lock (WORM) retention for written objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// Retention from the time of writing.
    pub retain_for: Duration,
}

/// Settings of an [`super::S3Sink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3SinkConfig {
    /// Bucket name.
    pub bucket: String,
    /// How tags are written.
    pub tag_mode: TagMode,
    /// Server-side encryption.
    pub sse: ServerSideEncryption,
    /// Storage class (`STANDARD`, `STANDARD_IA`, `GLACIER_IR`, ...).
    pub storage_class: Option<String>,
    /// Object Lock retention.
    pub object_lock: Option<ObjectLock>,
    /// Objects of known length above this use multipart upload (a single PUT holds at most
    /// 5 GiB).
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (5 MiB to 5 GiB).
    pub part_size: usize,
    /// Parts uploaded at the same time; memory is about `part_size * (this + 1)`.
    pub max_parts_in_flight: usize,
    /// Memory all multipart uploads of this sink may buffer together: uploads beyond
    /// `multipart_memory / (part_size * (max_parts_in_flight + 1))` (at least one) wait for
    /// one to finish, so memory stays bounded whatever the number of writers.
    pub multipart_memory: u64,
    /// Use `If-None-Match: *` for create-only writes (else only the HEAD check).
    pub conditional_writes: bool,
    /// Entries per page of ListObjectsV2 and ListMultipartUploads (1 to 1000).
    pub list_page_size: i32,
}

impl S3SinkConfig {
    /// Defaults: tags with the upload, multipart above 4 GiB or for unknown lengths with
    /// 8 MiB parts, 2 in flight, at most 256 MiB of part buffers in all, conditional writes
    /// on.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            tag_mode: TagMode::Header,
            sse: ServerSideEncryption::None,
            storage_class: None,
            object_lock: None,
            multipart_threshold: 4 << 30,
            part_size: 8 << 20,
            max_parts_in_flight: 2,
            multipart_memory: 256 << 20,
            conditional_writes: true,
            list_page_size: 1000,
        }
    }
}
