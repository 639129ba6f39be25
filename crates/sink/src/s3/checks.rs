//! What a write is held to once the store has answered: the ETag against the streamed MD5
//! (not under KMS), the encryption asked for, tags written apart; and the cleanup of what a
//! failed write left, only when it carries this write's mark.

use integrity::{Digests, etag_matches_md5};

use super::{ATTEMPT_KEY, S3Sink, ServerSideEncryption, TagMode};
use crate::{ObjectSink, PutOptions, PutResult, SinkError, SinkErrorKind};

/// Whether an object stored with this encryption has an MD5 for its ETag (not under KMS).
pub(super) fn etag_is_md5(sse: &aws_sdk_s3::types::ServerSideEncryption) -> bool {
    !sse.as_str().starts_with("aws:kms")
}

impl S3Sink {
    /// Checks the store's ETag against the expected value; falls back to HEAD when the store
    /// answered an empty ETag. Returns whether the store vouched for the bytes.
    ///
    /// Under SSE-KMS (configured here, or the bucket's default that the response names) an ETag
    /// is not an MD5 and proves nothing; the store's check of Content-MD5 or of a flexible
    /// checksum (`checked_otherwise`) is the proof then. A mismatching ETag from a response
    /// that named no encryption is looked up with HEAD before it fails the write, because
    /// some stores echo the encryption on PUT only.
    pub(super) async fn verify_etag(
        &self,
        key: &str,
        etag: Option<&str>,
        sse: Option<&aws_sdk_s3::types::ServerSideEncryption>,
        expected: &str,
        checked_otherwise: bool,
    ) -> Result<bool, SinkError> {
        if self.sse_is_kms() || sse.is_some_and(|s| !etag_is_md5(s)) {
            return Ok(checked_otherwise);
        }
        let etag = match etag.map(|e| e.trim_matches('"')).filter(|e| !e.is_empty()) {
            Some(e) => e.to_string(),
            None => match self.head(key).await?.and_then(|m| m.etag) {
                Some(e) => e,
                None => return Ok(checked_otherwise),
            },
        };
        match etag_matches_md5(&etag, expected) {
            Some(true) => Ok(true),
            Some(false) if sse.is_none() && self.stored_under_kms(key).await => {
                Ok(checked_otherwise)
            }
            Some(false) => Err(self.err(
                SinkErrorKind::Verification,
                "put",
                key,
                format!(
                    "store checksum mismatch: ETag {etag} but the streamed bytes give {expected}"
                ),
            )),
            None => Ok(checked_otherwise),
        }
    }

    /// The encryption HEAD reports for `key` (`None` when HEAD fails or names none).
    pub(super) async fn stored_encryption(
        &self,
        key: &str,
    ) -> Option<aws_sdk_s3::types::ServerSideEncryption> {
        self.client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
            .ok()
            .and_then(|h| h.server_side_encryption().cloned())
    }

    /// Whether HEAD says `key` is encrypted with KMS (whose ETags are not MD5s).
    pub(super) async fn stored_under_kms(&self, key: &str) -> bool {
        self.stored_encryption(key)
            .await
            .is_some_and(|s| !etag_is_md5(&s))
    }

    /// Removes what a failed write left under `key`, but only when the object there carries
    /// this write's mark (`opts`' [`ATTEMPT_KEY`] metadata): an object of another writer (a
    /// concurrent instance, an earlier verified archive) is left in place, and so is one that
    /// cannot be read (the ledger does not trust it either: the next attempt writes over it).
    pub(super) async fn cleanup(&self, key: &str, opts: &PutOptions) {
        let mine = opts.metadata.get(ATTEMPT_KEY);
        let theirs = match self.head(key).await {
            Ok(None) => return,
            Ok(Some(meta)) => meta.metadata.get(ATTEMPT_KEY).cloned(),
            Err(e) => {
                tracing::warn!(key, error = %e, "could not check what a failed upload left; leaving it");
                return;
            }
        };
        if mine.is_none() || theirs.as_ref() != mine {
            tracing::warn!(
                key,
                "an object not written by this attempt is under the key; leaving it"
            );
            return;
        }
        if let Err(e) = self.delete(key).await {
            tracing::warn!(key, error = %e, "could not remove a failed upload");
        }
    }

    /// A store that silently ignores a requested encryption (Ceph 16 does for SSE-S3) must not
    /// leave unencrypted recordings behind.
    pub(super) fn check_sse(
        &self,
        key: &str,
        got: Option<&aws_sdk_s3::types::ServerSideEncryption>,
    ) -> Result<(), SinkError> {
        let want = match &self.cfg.sse {
            ServerSideEncryption::None => return Ok(()),
            ServerSideEncryption::S3 => "AES256",
            ServerSideEncryption::Kms { .. } => "aws:kms",
        };
        match got.map(|g| g.as_str()) {
            Some(g) if g == want => Ok(()),
            other => Err(self.err(
                SinkErrorKind::StorePermanent,
                "put",
                key,
                format!(
                    "server-side encryption {want} was requested but the store answered {}; the object was removed (does the store support it?)",
                    other.unwrap_or("none")
                ),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish(
        &self,
        key: &str,
        etag: Option<&str>,
        sse: Option<&aws_sdk_s3::types::ServerSideEncryption>,
        expected_etag: &str,
        store_checked: bool,
        d: Digests,
        tags: &[(String, String)],
        opts: &PutOptions,
    ) -> Result<PutResult, SinkError> {
        let verified = match self
            .verify_etag(key, etag, sse, expected_etag, store_checked)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.cleanup(key, opts).await;
                return Err(e);
            }
        };
        if self.cfg.tag_mode == TagMode::Separate
            && let Err(e) = self.put_tags(key, tags).await
        {
            self.cleanup(key, opts).await;
            return Err(e);
        }
        Ok(PutResult {
            size: d.length,
            md5: d.md5,
            etag: etag
                .map(|e| e.trim_matches('"').to_string())
                .filter(|e| !e.is_empty()),
            store_verified: verified,
            sha256: d.sha256,
        })
    }
}
