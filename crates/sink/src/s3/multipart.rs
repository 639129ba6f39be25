//! Multipart uploads of the S3 sink: parts streamed in parallel, every upload recorded in the
//! caller's [`UploadLog`] while it is open, aborted when the write fails *or is dropped* (an
//! attempt timeout, a drain, a lost lease), and a sweep that aborts only uploads this program
//! recorded and nobody finished.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use integrity::{Digests, Expectations, HashingBody, Md5Digest, etag_matches_md5, multipart_etag};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{S3Sink, ServerSideEncryption, TagMode, status_of};
use crate::local::integrity_err;
use crate::tags::sanitize_all;
use crate::{
    PutBody, PutOptions, PutResult, SinkError, SinkErrorKind, StartedUpload, UploadLogHandle,
    UploadSweep,
};

/// An open multipart upload. Dropped while still armed (the write's future was cancelled), it
/// aborts the upload in a task of its own, so no parts are left billed in the bucket.
struct OpenUpload {
    sink: S3Sink,
    upload: StartedUpload,
    log: Option<UploadLogHandle>,
    armed: bool,
}

impl OpenUpload {
    /// Aborts the upload now (a failed write).
    async fn abort(mut self) {
        self.armed = false;
        self.sink
            .abort_logged(&self.upload, self.log.as_ref())
            .await;
    }

    /// The upload was completed: nothing to abort, and the log forgets it.
    async fn completed(mut self) {
        self.armed = false;
        if let Some(log) = &self.log {
            log.0.ended(&self.upload).await;
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.upload.key, "a dropped multipart upload could not be aborted (no runtime); the next sweep aborts it");
            return;
        };
        let (sink, upload, log) = (self.sink.clone(), self.upload.clone(), self.log.take());
        rt.spawn(async move {
            tracing::debug!(key = %upload.key, "aborting a multipart upload whose write was dropped");
            sink.abort_logged(&upload, log.as_ref()).await;
        });
    }
}

impl S3Sink {
    pub(super) async fn put_multipart(
        &self,
        key: &str,
        body: PutBody,
        opts: &PutOptions,
    ) -> Result<PutResult, SinkError> {
        // Part buffers are bounded across all writers: past the sink's budget an upload waits
        // here, before it holds any buffer or opens an upload, unless its caller reserved its
        // share before (`try_reserve`, so as not to wait with its source open).
        let _slot = match opts.reservation.clone() {
            Some(held) => held,
            None => self.reserve_slot(key).await?,
        };
        let tags = sanitize_all(&opts.tags);
        let ws = self.write_settings();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .set_content_type(opts.content_type.clone())
            .set_metadata(Some(Self::metadata(opts)))
            .set_server_side_encryption(ws.sse)
            .set_ssekms_key_id(ws.kms_key_id)
            .set_storage_class(ws.storage_class)
            .set_object_lock_mode(ws.lock_mode)
            .set_object_lock_retain_until_date(ws.retain_until)
            .send()
            .await
            .map_err(|e| self.sdk_err("create-multipart", key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(self.err(
                SinkErrorKind::StoreTemporary,
                "create-multipart",
                key,
                "no upload id",
            ));
        };
        let upload = StartedUpload {
            key: key.to_string(),
            upload_id,
        };
        if let Some(log) = &opts.upload_log
            && let Err(e) = log.0.started(&upload).await
        {
            // An upload nobody recorded could only be swept by guessing whose it is.
            self.abort_logged(&upload, None).await;
            return Err(self.err(
                SinkErrorKind::StoreTemporary,
                "create-multipart",
                key,
                format!("could not record the multipart upload before sending parts: {e}"),
            ));
        }
        let open = OpenUpload {
            sink: self.clone(),
            upload,
            log: opts.upload_log.clone(),
            armed: true,
        };
        let upload_id = open.upload.upload_id.clone();
        let (parts, part_md5s, digests) = match self.upload_parts(key, &upload_id, body, opts).await
        {
            Ok(v) => v,
            Err(e) => {
                open.abort().await;
                return Err(e);
            }
        };
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if opts.create_only && self.send_conditions() {
            complete = complete.if_none_match("*");
        }
        let out = match complete.send().await {
            Ok(o) => o,
            Err(e) => {
                let err = self.sdk_err("complete-multipart", key, e);
                open.abort().await;
                if err.kind.may_clean_up() {
                    self.cleanup(key, opts).await;
                }
                return Err(err);
            }
        };
        open.completed().await;
        // Ceph does not echo the encryption on CompleteMultipartUpload: ask HEAD then.
        let sse = match out.server_side_encryption() {
            Some(s) => Some(s.clone()),
            None if self.cfg.sse != ServerSideEncryption::None => self.stored_encryption(key).await,
            None => None,
        };
        if let Err(e) = self.check_sse(key, sse.as_ref()) {
            self.cleanup(key, opts).await;
            return Err(e);
        }
        if self.cfg.tag_mode == TagMode::Header
            && let Err(e) = self.put_tags(key, &tags).await
        {
            self.cleanup(key, opts).await;
            return Err(e);
        }
        self.finish(
            key,
            out.e_tag(),
            sse.as_ref(),
            &multipart_etag(&part_md5s),
            // Every part carried a Content-MD5 the store checked.
            true,
            digests,
            &tags,
            opts,
        )
        .await
    }

    /// Aborts `upload`; true when the store no longer has it (aborted now, or already gone).
    async fn abort_upload(&self, upload: &StartedUpload) -> Result<bool, SinkError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) || e.code() == Some("NoSuchUpload") => Ok(false),
            Err(e) => Err(self.sdk_err("abort-multipart", &upload.key, e)),
        }
    }

    /// Aborts `upload` and, once the store no longer has it, tells `log`; an upload that could
    /// not be aborted stays in the log for the next sweep.
    async fn abort_logged(&self, upload: &StartedUpload, log: Option<&UploadLogHandle>) {
        match self.abort_upload(upload).await {
            Ok(_) => {
                if let Some(log) = log {
                    log.0.ended(upload).await;
                }
            }
            Err(e) => {
                tracing::warn!(key = %upload.key, error = %e, "could not abort a multipart upload; the next sweep retries it")
            }
        }
    }

    /// Pages through the open multipart uploads under `prefix`, aborts those in `started`, and
    /// leaves every other one alone (another program's, or a live instance's). Uploads of
    /// `started` the listing did not show (outside `prefix`, or a store that cannot list) are
    /// aborted by id; a store that no longer has one reports it gone.
    pub(super) async fn sweep(
        &self,
        prefix: &str,
        started: &[StartedUpload],
    ) -> Result<UploadSweep, SinkError> {
        // Nothing recorded as abandoned: no listing at every start-up.
        if started.is_empty() {
            return Ok(UploadSweep::default());
        }
        let mut wanted: HashMap<&str, &StartedUpload> =
            started.iter().map(|u| (u.upload_id.as_str(), u)).collect();
        let mut sweep = UploadSweep::default();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.cfg.bucket)
                .prefix(prefix)
                .max_uploads(self.cfg.list_page_size)
                .set_key_marker(markers.0.take())
                .set_upload_id_marker(markers.1.take())
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                // s3s-fs does not implement ListMultipartUploads: abort ours by id below.
                Err(e) if status_of(&e) == Some(501) => {
                    tracing::debug!(store = %self, "the store cannot list multipart uploads; aborting recorded ones by id");
                    break;
                }
                Err(e) => return Err(self.sdk_err("list-multipart", prefix, e)),
            };
            for u in out.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                match wanted.remove(id) {
                    Some(ours) if ours.key == key => self.sweep_one(ours, &mut sweep).await,
                    Some(ours) => {
                        // Same id, another key: not ours after all; try ours by id below.
                        wanted.insert(&ours.upload_id, ours);
                        sweep.others += 1;
                    }
                    None => sweep.others += 1,
                }
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            markers = (
                out.next_key_marker().map(str::to_string),
                out.next_upload_id_marker().map(str::to_string),
            );
            if markers.0.is_none() && markers.1.is_none() {
                break;
            }
        }
        let mut rest: Vec<&StartedUpload> = wanted.into_values().collect();
        rest.sort_by(|a, b| a.upload_id.cmp(&b.upload_id));
        for u in rest {
            self.sweep_one(u, &mut sweep).await;
        }
        Ok(sweep)
    }

    async fn sweep_one(&self, u: &StartedUpload, sweep: &mut UploadSweep) {
        match self.abort_upload(u).await {
            Ok(true) => sweep.aborted.push(u.clone()),
            Ok(false) => sweep.gone.push(u.clone()),
            Err(e) => {
                tracing::warn!(key = %u.key, error = %e, "could not abort a multipart upload");
                sweep.failed.push(u.clone());
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: PutBody,
        opts: &PutOptions,
    ) -> Result<(Vec<CompletedPart>, Vec<Md5Digest>, Digests), SinkError> {
        let expect = Expectations {
            length: opts.content_length,
            md5: opts.expected_md5,
            sha256: opts.sha256,
            sha256_expected: opts.expected_sha256,
            crc32c: false,
        };
        let (mut body, handle) = HashingBody::new(body, expect);
        let part_size = self.cfg.part_size.max(5 << 20);
        let permits = Arc::new(Semaphore::new(self.cfg.max_parts_in_flight.max(1)));
        // A JoinSet: when this write is dropped or fails, the parts still in flight stop too.
        let mut tasks = JoinSet::new();
        let mut md5s = Vec::new();
        let mut buf = BytesMut::with_capacity(part_size);
        let mut part_number = 0i32;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    while !data.is_empty() {
                        let take = (part_size - buf.len()).min(data.len());
                        buf.extend_from_slice(&data.split_to(take));
                        if buf.len() == part_size {
                            let part =
                                std::mem::replace(&mut buf, BytesMut::with_capacity(part_size))
                                    .freeze();
                            part_number += 1;
                            md5s.push(Md5Digest::of(&part));
                            self.spawn_part(
                                &mut tasks,
                                key,
                                upload_id,
                                part_number,
                                part,
                                &permits,
                            )
                            .await;
                        }
                    }
                }
                Some(Err(e)) => return Err(integrity_err(self, key, e)),
                None => break,
            }
        }
        if !buf.is_empty() || part_number == 0 {
            part_number += 1;
            let part = buf.freeze();
            md5s.push(Md5Digest::of(&part));
            self.spawn_part(&mut tasks, key, upload_id, part_number, part, &permits)
                .await;
        }
        let digests = handle.get().ok_or_else(|| {
            self.err(
                SinkErrorKind::Source,
                "put",
                key,
                "body ended without digests",
            )
        })?;
        let mut parts = Vec::with_capacity(md5s.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(p)) => parts.push(p),
                Ok(Err(e)) => return Err(e),
                Err(j) => {
                    return Err(self.err(
                        SinkErrorKind::StoreTemporary,
                        "upload-part",
                        key,
                        j.to_string(),
                    ));
                }
            }
        }
        parts.sort_by_key(|p| p.part_number());
        Ok((parts, md5s, digests))
    }

    async fn spawn_part(
        &self,
        tasks: &mut JoinSet<Result<CompletedPart, SinkError>>,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
        permits: &Arc<Semaphore>,
    ) {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let this = self.clone();
        let key = key.to_string();
        let upload_id = upload_id.to_string();
        tasks.spawn(async move {
            let _permit = permit;
            let md5 = Md5Digest::of(&part);
            let len = part.len() as i64;
            let out = this
                .client
                .upload_part()
                .bucket(&this.cfg.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .content_length(len)
                .content_md5(md5.to_base64())
                .body(ByteStream::from(part))
                .customize()
                // Content-MD5 already protects the part; hashing it again with SHA-256 for the
                // signature would cost more CPU than the upload itself.
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| this.sdk_err("upload-part", &key, e))?;
            if let Some(etag) = out.e_tag()
                && etag_matches_md5(etag, &md5.to_hex()) == Some(false)
                && !this.sse_is_kms()
                && out
                    .server_side_encryption()
                    .is_none_or(super::checks::etag_is_md5)
            {
                return Err(this.err(
                    SinkErrorKind::Verification,
                    "upload-part",
                    &key,
                    format!(
                        "part {number} ETag {etag} differs from its MD5 {}",
                        md5.to_hex()
                    ),
                ));
            }
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build())
        });
    }
}
