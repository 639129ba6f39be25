//! Archiving one claimed recording: the look before the write, the attempts with the retry
//! table (refreshed URLs, backoff, integrity retries, adoption of what another writer stored),
//! and recording the outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use genesys_media::{
    DiscoveredRecording, ErrorClass, MediaAvailability, MediaResponse, MediaUrl, Wait,
};
use http_body_util::BodyExt;
use integrity::{BoxError, Digests, Expectations, Md5Digest};
use sink::{PutOptions, Readiness, SinkError, SinkErrorKind};

use crate::adopt::{Proof, check_existing};
use crate::events::Event;
use crate::ledger::AdoptedObject;
use crate::work::{AttemptError, Outcome, Ready, Shared};
/// Records an object that is already in the store as archived (after [`check_existing`]),
/// and reports it skipped.
pub(crate) async fn adopt_existing(
    sh: &Shared,
    rec: &DiscoveredRecording,
    key: &str,
    meta: sink::ObjectMeta,
    md5: Option<String>,
) -> Outcome {
    if let Some(l) = &sh.cfg.ledger {
        let obj = AdoptedObject {
            recording_id: rec.ledger_id().into_owned(),
            conversation_id: rec.conversation_id.clone(),
            key: key.to_string(),
            size: Some(meta.size),
            md5,
            sha256: meta.digests.sha256.clone(),
            media_type: Some(rec.media_type.clone()),
            start_time: None,
            end_time: None,
        };
        if let Err(e) = l.adopt(obj).await {
            tracing::warn!(recording_id = %rec.ledger_id(), error = %e, "could not record an existing object in the ledger");
        }
    }
    sh.events.handle(&Event::Skipped {
        recording_id: rec.ledger_id().into_owned(),
        key: key.to_string(),
    });
    Outcome::Skipped
}

/// Downloads and stores one recording with the retry table. `resumed`: an earlier attempt was
/// cut short, so whatever is under the key is not trusted and is written over.
///
/// Longer than most functions here on purpose: it is the retry table itself, one loop whose
/// arms share the attempt, refresh and integrity counters and the overwrite decision; split
/// up, those would travel through every piece.
pub(crate) async fn process(sh: &Shared, item: &Ready, key: &str, resumed: bool) -> Outcome {
    let rec = &item.rec;
    let url_received = item.received_at;
    let rid = rec.ledger_id().into_owned();
    let key = key.to_string();
    let media = &rec.media;
    // Create-only writes guard against another writer. Once one of our own attempts may have
    // reached the store (or an earlier run's did: `resumed`, which includes a failed earlier
    // attempt), an object under the key may be our own partial or unverified write, so later
    // attempts write over it and verify.
    let mut overwrite = resumed;
    // Where the store refuses a create-only write itself (S3 with a conditional PUT it was
    // seen to honour), the look before the upload is left out: the first attempt's "already
    // exists" is what the HEAD would have found, judged the same way. One round trip per new
    // object. (After a lost ledger, run `ledger rebuild` first: otherwise each object that
    // exists is downloaded before the store says so.)
    let mut found_by_write = sh.cfg.skip_existing && !resumed && !sh.sink.look_before_create();
    if sh.cfg.skip_existing && !resumed && !found_by_write {
        match sh.sink.head(&key).await {
            Ok(Some(meta)) => match check_existing(rec, &meta, Proof::NoContradiction) {
                Ok(md5) => return adopt_existing(sh, rec, &key, meta, md5).await,
                Err(why) => {
                    tracing::warn!(recording_id = %rid, key, why, "an object under its key is not this recording's as far as can be told; writing it over");
                    overwrite = true;
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(key, error = %e, "HEAD before upload failed; uploading with create-only")
            }
        }
    }
    let policy = sh.cfg.retry;
    let mut waited = Duration::ZERO;
    let mut attempt = item.attempts;
    let mut refreshes = item.refreshes;
    let mut integrity_failures = 0u32;
    loop {
        attempt += 1;
        if attempt > item.attempts + 1 {
            // Only the first write stands in for the look before it.
            found_by_write = false;
        }
        // Before writing again, make sure the recording is still ours: another instance may
        // have taken it over (and stored it) while this one was failing. Renewal in the
        // background notices too, but only every lease/3.
        if attempt > 1
            && let Some(l) = &sh.cfg.ledger
            && let Ok(false) = l.renew(&rid, &sh.cfg.instance_id, sh.cfg.lease).await
        {
            tracing::warn!(recording_id = %rid, "lease lost to another instance; not retrying");
            return Outcome::Busy;
        }
        // A retry after a long wait: an old URL is refreshed (with others) first, as long
        // as the refresh budget lasts; then it is tried as it is.
        if attempt > 1
            && url_received.elapsed() > sh.cfg.url_max_age
            && refreshes < sh.cfg.max_url_refreshes
        {
            return Outcome::NeedsUrl {
                refreshes: refreshes + 1,
                attempts: attempt - 1,
            };
        }
        let url = match &media {
            MediaAvailability::Url(u) => u.clone(),
            MediaAvailability::Unavailable(reason) => {
                sh.events.handle(&Event::Unavailable {
                    recording_id: rid.clone(),
                    reason: reason.clone(),
                });
                return Outcome::Unavailable(reason.clone());
            }
        };
        if attempt > 1 && sh.cfg.shutdown.is_cancelled() {
            return Outcome::Interrupted;
        }
        sh.events.handle(&Event::Started {
            recording_id: rid.clone(),
            key: key.clone(),
            attempt,
        });
        let result = match tokio::time::timeout(
            sh.cfg.attempt_timeout,
            attempt_once(sh, rec, &key, &url, sh.cfg.create_only && !overwrite),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(AttemptError::Temporary(format!(
                "attempt timed out after {:?}",
                sh.cfg.attempt_timeout
            ))),
        };
        let (why, reason) = match result {
            Ok((written_key, size, md5, store_verified, sha256)) => {
                // The key the object was written under (the response's content type may
                // have decided its extension): the ledger, manifest and verify use it.
                let key = written_key;
                if let Some(l) = &sh.cfg.ledger
                    && let Err(e) = l
                        .archived_object(
                            &rid,
                            &sh.cfg.instance_id,
                            &crate::StoredObject {
                                key: key.clone(),
                                size,
                                md5: md5.to_hex(),
                                sha256: sha256.map(hex::encode),
                            },
                            attempt,
                        )
                        .await
                {
                    if e.is_lease_lost() {
                        tracing::warn!(recording_id = %rid, error = %e, "stored, but another instance owns the recording now");
                        return Outcome::Busy;
                    }
                    return fail(
                        sh,
                        &rid,
                        format!("stored and verified, but the ledger could not record it: {e}"),
                        false,
                        attempt,
                    );
                }
                sh.events.handle(&Event::Archived {
                    recording_id: rid,
                    key,
                    size,
                    md5: md5.to_hex(),
                    store_verified,
                });
                return Outcome::Archived { size };
            }
            Err(AttemptError::AlreadyExists) => {
                // Someone wrote the key between our HEAD and our create-only write: adopt it
                // only with proof that it holds this recording's bytes. Without a HEAD before
                // (`found_by_write`), the first refusal is what the HEAD would have found.
                let proof = if std::mem::take(&mut found_by_write) {
                    Proof::NoContradiction
                } else {
                    Proof::Positive
                };
                match sh.sink.head(&key).await {
                    Ok(Some(meta)) => match check_existing(rec, &meta, proof) {
                        Ok(md5) => return adopt_existing(sh, rec, &key, meta, md5).await,
                        Err(why) => (
                            Wait::Immediately,
                            format!(
                                "an object appeared under its key without proof that it is this recording ({why}); writing it over"
                            ),
                        ),
                    },
                    Ok(None) => (
                        Wait::Immediately,
                        "an object appeared under its key and went again".into(),
                    ),
                    Err(e) => (
                        Wait::Backoff,
                        format!("reading the object that appeared under its key: {e}"),
                    ),
                }
            }
            Err(AttemptError::Permanent(m)) => return fail(sh, &rid, m, false, attempt),
            Err(AttemptError::Integrity(m)) => {
                integrity_failures += 1;
                if integrity_failures > sh.cfg.integrity_retries {
                    return fail(
                        sh,
                        &rid,
                        format!("integrity check failed {integrity_failures} times: {m}"),
                        true,
                        attempt,
                    );
                }
                (Wait::Immediately, m)
            }
            Err(AttemptError::Forbidden(m)) => {
                refreshes += 1;
                if refreshes > sh.cfg.max_url_refreshes {
                    return fail(
                        sh,
                        &rid,
                        format!("media URL refused {refreshes} times even after refreshing: {m}"),
                        false,
                        attempt,
                    );
                }
                // Not refreshed here (one batch job for one URL): the recording waits for a
                // fresh URL with others while this worker takes the next one.
                tracing::debug!(recording_id = %rid, error = %m, "media URL refused; queued for a refresh");
                sh.events.handle(&Event::Retrying {
                    recording_id: rid.clone(),
                    attempt,
                    reason: format!("{m}; retried with a fresh URL"),
                    wait: Duration::ZERO,
                });
                return Outcome::NeedsUrl {
                    refreshes,
                    attempts: attempt,
                };
            }
            Err(AttemptError::Throttled(d, m)) => {
                sh.pushback
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (Wait::RetryAfter(Some(d)), m)
            }
            Err(AttemptError::Temporary(m)) => {
                sh.pushback
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (Wait::Backoff, m)
            }
        };
        overwrite = true;
        // The budget counts the time spent waiting between attempts, not the time spent
        // transferring: a long upload that fails once is retried.
        let Some(wait) = policy.next_wait(attempt, waited, why) else {
            let asked = match why {
                Wait::RetryAfter(Some(d)) => {
                    format!("the source asked to wait {d:?}, more than the retry budget allows: ")
                }
                _ => String::new(),
            };
            return fail(
                sh,
                &rid,
                format!("gave up after {attempt} attempts: {asked}{reason}"),
                false,
                attempt,
            );
        };
        sh.events.handle(&Event::Retrying {
            recording_id: rid.clone(),
            attempt,
            reason,
            wait,
        });
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = sh.cfg.shutdown.cancelled() => return Outcome::Interrupted,
            }
            waited += wait;
        }
    }
}

/// A failure the ledger has no row for (when there is a ledger).
pub(crate) fn unrecorded(sh: &Shared, rid: &str, reason: String) -> Outcome {
    match fail(sh, rid, reason, false, 0) {
        Outcome::Failed(reason, ..) if sh.cfg.ledger.is_some() => Outcome::Unrecorded(reason),
        other => other,
    }
}

pub(crate) fn fail(
    sh: &Shared,
    rid: &str,
    reason: String,
    integrity: bool,
    attempts: u32,
) -> Outcome {
    sh.events.handle(&Event::Failed {
        recording_id: rid.to_string(),
        reason: reason.clone(),
        integrity,
    });
    Outcome::Failed(reason, integrity, attempts)
}

pub(crate) async fn attempt_once(
    sh: &Shared,
    rec: &DiscoveredRecording,
    key: &str,
    url: &MediaUrl,
    create_only: bool,
) -> Result<(String, u64, Md5Digest, bool, Option<[u8; 32]>), AttemptError> {
    // With `digests_up_front`, a first read for the digests the object carries from its
    // first byte; the write below must give the same bytes.
    let up_front = match sh.cfg.digests_up_front {
        true => Some(read_digests(sh, url, rec).await?),
        false => None,
    };
    let mut resp = open(sh, url).await?;
    // What the store needs held for this write (a multipart upload's share of the sink's part
    // buffers): waited for with the download let go, not held open and unread meanwhile.
    let length = resp.content_length.or(rec.expected_size);
    let reservation = match sh.sink.try_reserve(length) {
        Readiness::Ready(held) => held,
        Readiness::Busy => {
            drop(resp);
            let held = sh.sink.reserve(length).await.map_err(from_sink)?;
            resp = open(sh, url).await?;
            held
        }
    };
    // The write must give the bytes the first read gave (with `digests_up_front`): the same
    // length first, then the digests at the end of the stream.
    if let (Some(read), Some(announced)) =
        (up_front.as_ref().map(|d| d.length), resp.content_length)
        && read != announced
    {
        return Err(AttemptError::Integrity(format!(
            "the first read gave {read} bytes but the media response has Content-Length {announced}"
        )));
    }
    if let (Some(expected), Some(announced)) = (rec.expected_size, resp.content_length)
        && expected != announced
    {
        return Err(AttemptError::Integrity(format!(
            "the source announced {expected} bytes but the media response has Content-Length {announced}"
        )));
    }
    let mut expected_md5 = source_md5(sh, rec, &resp)?;
    if let Some(d) = &up_front {
        if expected_md5.is_some_and(|m| m != d.md5) {
            return Err(AttemptError::Integrity(
                "the first read's MD5 and the source's disagree".into(),
            ));
        }
        expected_md5 = Some(d.md5);
    }
    let content_type = rec.content_type.clone().or(resp.content_type.clone());
    let key_ct = sh
        .cfg
        .key_template
        .render(rec, content_type.as_deref())
        .map_err(AttemptError::Permanent)?;
    let key = if key_ct != key && rec.content_type.is_none() {
        key_ct
    } else {
        key.to_string()
    };
    let mut metadata: BTreeMap<String, String> = tags_for(rec)
        .into_iter()
        .map(|(k, v)| (k.replace('_', "-"), v))
        .collect();
    metadata.insert("source".into(), "genesys-cloud".into());
    if let Some(f) = &rec.file {
        metadata.insert("file".into(), f.clone());
    }
    if let Some(m) = expected_md5 {
        metadata.insert("md5".into(), m.to_hex());
    }
    if let Some(sha256) = up_front.as_ref().and_then(|d| d.sha256) {
        metadata.insert("sha256".into(), hex::encode(sha256));
    }
    metadata.extend(crate::facts::facts_metadata(&rec.facts));
    let opts = PutOptions {
        content_length: resp
            .content_length
            .or(rec.expected_size)
            .or(up_front.as_ref().map(|d| d.length)),
        content_type,
        metadata,
        tags: tags_for(rec),
        expected_md5,
        expected_sha256: up_front.and_then(|d| d.sha256),
        create_only,
        sha256: sh.cfg.sha256,
        reservation,
        upload_log: sh.cfg.ledger.as_ref().map(|l| {
            sink::UploadLogHandle(std::sync::Arc::new(crate::LedgerUploadLog::new(
                l.clone(),
                &rec.recording_id,
                &sh.cfg.instance_id,
            )))
        }),
    };
    let body = resp.body.map_err(|e| Box::new(e) as BoxError).boxed();
    match sh.sink.put(&key, body, opts).await {
        Ok(r) => Ok((key, r.size, r.md5, r.store_verified, r.sha256)),
        Err(e) => Err(from_sink(e)),
    }
}

/// Reads the media of `url` to its end without keeping any of it, for the digests and
/// length of its bytes (`digests_up_front`; the SHA-256 always); an MD5 the source vouches for
/// is checked already here.
async fn read_digests(
    sh: &Shared,
    url: &MediaUrl,
    rec: &DiscoveredRecording,
) -> Result<Digests, AttemptError> {
    let resp = open(sh, url).await?;
    let expect = Expectations {
        length: resp.content_length.or(rec.expected_size),
        md5: source_md5(sh, rec, &resp)?,
        sha256: true,
        ..Expectations::default()
    };
    integrity::digest_body(resp.body, expect)
        .await
        .map_err(|e| {
            let m = format!("first read for the digests: {e}");
            match e.is_verification_failure() {
                true => AttemptError::Integrity(m),
                false => AttemptError::Temporary(m),
            }
        })
}

/// The MD5 the source vouches for: its listing's, or the media response's ETag with
/// `verify_source_etag`; both must agree when both are there.
fn source_md5(
    sh: &Shared,
    rec: &DiscoveredRecording,
    resp: &MediaResponse,
) -> Result<Option<Md5Digest>, AttemptError> {
    let listed = rec.expected_md5.as_deref().and_then(Md5Digest::from_hex);
    let etag = resp.etag.as_deref().and_then(Md5Digest::from_hex);
    match (listed, etag.filter(|_| sh.cfg.verify_source_etag)) {
        (Some(l), Some(e)) if l != e => Err(AttemptError::Integrity(
            "the source's MD5 and its media ETag disagree".into(),
        )),
        (l, e) => Ok(e.or(l)),
    }
}

/// Opens the media response of `url`.
async fn open(sh: &Shared, url: &MediaUrl) -> Result<MediaResponse, AttemptError> {
    sh.client.open_media(url).await.map_err(|e| {
        let m = e.to_string();
        match e.status() {
            Some(403) => AttemptError::Forbidden(m),
            Some(429) => {
                let d = match &e {
                    genesys_media::Error::Status { retry_after, .. } => {
                        retry_after.unwrap_or(Duration::from_secs(1))
                    }
                    _ => Duration::from_secs(1),
                };
                AttemptError::Throttled(d, m)
            }
            Some(s) if s >= 500 => AttemptError::Temporary(m),
            Some(_) => AttemptError::Permanent(m),
            None if e.class() == ErrorClass::Temporary => AttemptError::Temporary(m),
            None => AttemptError::Permanent(m),
        }
    })
}

/// What a failed write (or reservation) of the sink means for the attempt.
fn from_sink(e: SinkError) -> AttemptError {
    let m = e.to_string();
    match e.kind {
        SinkErrorKind::AlreadyExists => AttemptError::AlreadyExists,
        SinkErrorKind::Verification => AttemptError::Integrity(m),
        SinkErrorKind::Source | SinkErrorKind::StoreTemporary | SinkErrorKind::Conflict => {
            AttemptError::Temporary(m)
        }
        SinkErrorKind::StorePermanent | SinkErrorKind::Invalid => AttemptError::Permanent(m),
    }
}

/// The tags every object carries.
pub fn tags_for(rec: &DiscoveredRecording) -> BTreeMap<String, String> {
    let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    [
        ("conversation_id", rec.conversation_id.clone()),
        ("recording_id", rec.recording_id.clone()),
        ("start_time", t(rec.start_time)),
        ("end_time", t(rec.end_time)),
        ("media_type", rec.media_type.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
