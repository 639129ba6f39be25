//! Media resolution: the recordings of finished conversations, every file of each, with a
//! media URL, the source's reason there is none, or a pending item when they are not ready.

use std::collections::{BTreeMap, HashMap, HashSet};

use http::{Method, StatusCode};
use serde_json::json;

use crate::client::{GenesysClient, SourceMode};
use crate::discovery::{
    BATCH_MAX, Discovered, DiscoveredRecording, MediaAvailability, PendingItem, media_type_of,
    parse_time, path_segment,
};
use crate::error::{Error, Result};
use crate::facts::ConversationFacts;
use crate::known::KnownConversations;
use crate::media::MediaUrl;
use crate::models::{
    AnalyticsConversation, BatchDownloadJobResult, BatchDownloadJobStatusResult,
    BatchDownloadJobSubmissionResult, BatchDownloadRequest, CompatRecording, Recording,
    RecordingMetadata,
};

/// `fileState`s that mean "not yet", not "gone".
fn is_not_yet(state: &str) -> bool {
    matches!(state, "UPLOADING" | "RESTORING")
}

/// `fileState`s whose media can be downloaded (absent: assume it can).
fn is_downloadable(state: Option<&str>) -> bool {
    state.is_none_or(|s| s == "AVAILABLE" || s == "RESTORED")
}

/// The content type the per-recording GET gives a recording for `format_id`: `formatId` picks
/// the audio format; screen recordings are WebM, chats and messages ZIP (`chatFormatId` and
/// `messageFormatId` default), emails EML. `None` when the format does not say (`NONE`).
pub fn format_content_type(format_id: &str, media: &str) -> Option<&'static str> {
    let audio = match format_id.to_ascii_uppercase().as_str() {
        "WAV" | "WAV_ULAW" => "audio/wav",
        "WEBM" => "audio/webm",
        "OGG_VORBIS" | "OGG_OPUS" => "audio/ogg",
        "MP3" => "audio/mpeg",
        _ => return None,
    };
    Some(match media.to_ascii_lowercase().as_str() {
        "screen" => "video/webm",
        "chat" | "messaging" | "message" => "application/zip",
        "email" => "message/rfc822",
        _ => audio,
    })
}

/// The files of one recording among batch results with URLs, each with its label: results
/// with the same URL path are the same file; several distinct files are labelled `part1`,
/// `part2`... in the order of their paths (stable across re-signed URLs), one file has none.
pub(crate) fn batch_files(
    results: &[&BatchDownloadJobResult],
) -> Vec<(Option<String>, MediaAvailability, Option<String>)> {
    let mut by_path: BTreeMap<(String, String), (MediaAvailability, Option<String>)> =
        BTreeMap::new();
    for r in results {
        let Some(u) = r.result_url.as_deref() else {
            continue;
        };
        let (path, media) = match MediaUrl::parse(u) {
            Ok(url) => (url.path().to_string(), MediaAvailability::Url(url)),
            Err(e) => (String::new(), MediaAvailability::Unavailable(e.to_string())),
        };
        let ct = r.content_type.clone().unwrap_or_default();
        by_path
            .entry((path, ct))
            .or_insert((media, r.content_type.clone()));
    }
    let several = by_path.len() > 1;
    by_path
        .into_values()
        .enumerate()
        .map(|(i, (media, ct))| (several.then(|| format!("part{}", i + 1)), media, ct))
        .collect()
}

/// The label of a `mediaUris` channel key when there are several (`ch0`, `ch1`, `chS`).
fn channel_label(key: &str) -> Option<String> {
    path_segment(key).ok().map(|k| format!("ch{k}"))
}

impl GenesysClient {
    /// Resolves media for a chunk of finished conversations into discovery items.
    pub(crate) async fn resolve_conversations(
        &self,
        convs: Vec<AnalyticsConversation>,
        known: Option<&dyn KnownConversations>,
    ) -> Result<Vec<Discovered>> {
        match self.config().source.clone() {
            SourceMode::Batch | SourceMode::CompatListing => self.resolve_batch(&convs).await,
            SourceMode::PerRecording { format_id } => {
                let mut out = Vec::new();
                for c in &convs {
                    self.resolve_per_recording(c, &format_id, known, &mut out)
                        .await?;
                }
                Ok(out)
            }
        }
    }

    async fn resolve_batch(&self, convs: &[AnalyticsConversation]) -> Result<Vec<Discovered>> {
        let by_id: HashMap<&str, &AnalyticsConversation> = convs
            .iter()
            .map(|c| (c.conversation_id.as_str(), c))
            .collect();
        let items = convs
            .iter()
            .map(|c| BatchDownloadRequest {
                conversation_id: c.conversation_id.clone(),
                recording_id: None,
            })
            .collect();
        let results = self.batch_download(items).await?;
        let mut out = Vec::new();
        // (conversation, recording) -> its results, in first-seen order.
        let mut groups: Vec<((String, String), Vec<&BatchDownloadJobResult>)> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for r in &results {
            let (Some(cid), Some(rid)) = (r.conversation_id.clone(), r.recording_id.clone()) else {
                out.push(Discovered::Unresolved {
                    conversation_id: r.conversation_id.clone().unwrap_or_default(),
                    reason: "a batch download result names no conversation or recording".into(),
                });
                continue;
            };
            let k = (cid, rid);
            match index.get(&k) {
                Some(&i) => groups[i].1.push(r),
                None => {
                    index.insert(k.clone(), groups.len());
                    groups.push((k, vec![r]));
                }
            }
        }
        // Conversations with a result that has no URL: their recordingmetadata tells "not
        // yet" (UPLOADING, RESTORING) from "gone" (ARCHIVED, DELETED, ERROR).
        let mut states: HashMap<String, Vec<RecordingMetadata>> = HashMap::new();
        for ((cid, _), rs) in &groups {
            let all_urls = rs.iter().all(|r| r.result_url.is_some());
            if !all_urls && !states.contains_key(cid) {
                states.insert(cid.clone(), self.recording_metadata(cid).await?);
            }
        }
        for ((cid, rid), rs) in &groups {
            let conv = by_id.get(cid.as_str()).copied();
            let facts = std::sync::Arc::new(conv.map(ConversationFacts::of).unwrap_or_default());
            let base = |file, media, ct: Option<String>| DiscoveredRecording {
                conversation_id: cid.clone(),
                recording_id: rid.clone(),
                file,
                media_type: media_type_of(ct.as_deref(), conv.and_then(|c| c.media_type())),
                start_time: conv.and_then(|c| parse_time(c.conversation_start.as_deref())),
                end_time: conv.and_then(|c| parse_time(c.conversation_end.as_deref())),
                content_type: ct,
                expected_md5: None,
                expected_size: None,
                media,
                facts: facts.clone(),
            };
            let files = batch_files(rs);
            let failed_results = rs.iter().filter(|r| r.result_url.is_none()).count();
            if !files.is_empty() && failed_results > 0 {
                // Some of its files came without a URL: archiving the others now would settle
                // the conversation without them (and label them differently from a later,
                // complete answer). It waits, reported, until every file has a URL.
                let msg = rs
                    .iter()
                    .find_map(|r| r.error_msg.clone())
                    .unwrap_or_else(|| "a result with neither resultUrl nor errorMsg".into());
                let state = states
                    .get(cid)
                    .and_then(|ms| ms.iter().find(|m| &m.id == rid))
                    .and_then(|m| m.file_state.clone())
                    .unwrap_or_else(|| "unknown".into());
                out.push(pending(
                    cid,
                    rid,
                    conv,
                    format!(
                        "{failed_results} of its {} batch results has no URL ({msg}; fileState {state}); archived once every file has one",
                        rs.len()
                    ),
                ));
                continue;
            }
            if !files.is_empty() {
                for (file, media, ct) in files {
                    out.push(Discovered::Recording(base(file, media, ct)));
                }
                continue;
            }
            let msg = rs
                .iter()
                .find_map(|r| r.error_msg.clone())
                .unwrap_or_else(|| "batch result has neither resultUrl nor errorMsg".into());
            let meta = states
                .get(cid)
                .and_then(|ms| ms.iter().find(|m| &m.id == rid));
            let state = meta.and_then(|m| m.file_state.clone());
            match state.as_deref() {
                Some(s) if is_not_yet(s) => out.push(pending(cid, rid, conv, not_yet(s, &msg))),
                Some(s) if is_downloadable(Some(s)) => out.push(pending(
                    cid,
                    rid,
                    conv,
                    format!("the batch download gave no URL although its fileState is {s}: {msg}"),
                )),
                Some(s) => {
                    // No content type is known for it; its media type is the metadata's.
                    let mut r = base(
                        None,
                        MediaAvailability::Unavailable(format!("{msg} (fileState {s})")),
                        None,
                    );
                    if let Some(m) = meta.and_then(|m| m.media.as_deref()) {
                        r.media_type = media_type_of(None, Some(m));
                    }
                    out.push(Discovered::Recording(r));
                }
                None => out.push(Discovered::Recording(base(
                    None,
                    MediaAvailability::Unavailable(msg),
                    None,
                ))),
            }
        }
        // Recordings the metadata lists as not yet there that the batch left out entirely.
        for (cid, ms) in &states {
            let conv = by_id.get(cid.as_str()).copied();
            for m in ms {
                let listed = index.contains_key(&(cid.clone(), m.id.clone()));
                if let Some(s) = m.file_state.as_deref()
                    && !listed
                    && is_not_yet(s)
                {
                    out.push(pending(
                        cid,
                        &m.id,
                        conv,
                        not_yet(s, "not in the batch results"),
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn resolve_per_recording(
        &self,
        c: &AnalyticsConversation,
        format_id: &str,
        known: Option<&dyn KnownConversations>,
        out: &mut Vec<Discovered>,
    ) -> Result<()> {
        let cid = &c.conversation_id;
        let metas = self.recording_metadata(cid).await?;
        // Recordings the caller already holds are not requested again (a conversation is
        // resolved again when another of its recordings is not archived yet).
        let held = match known {
            Some(k) => {
                let ids: Vec<String> = metas.iter().map(|m| m.id.clone()).collect();
                k.held(&ids).await
            }
            None => HashSet::new(),
        };
        for m in metas {
            if held.contains(&m.id) {
                continue;
            }
            let state = m.file_state.as_deref();
            if let Some(s) = state.filter(|s| is_not_yet(s)) {
                out.push(pending(
                    cid,
                    &m.id,
                    Some(c),
                    not_yet(s, "recordingmetadata"),
                ));
                continue;
            }
            let media_type = media_type_of(None, m.media.as_deref().or(c.media_type()));
            let facts = std::sync::Arc::new(ConversationFacts::of(c));
            let base = |file, media, size| DiscoveredRecording {
                conversation_id: cid.clone(),
                recording_id: m.id.clone(),
                file,
                start_time: parse_time(m.start_time.as_deref())
                    .or_else(|| parse_time(c.conversation_start.as_deref())),
                end_time: parse_time(m.end_time.as_deref())
                    .or_else(|| parse_time(c.conversation_end.as_deref())),
                content_type: format_content_type(format_id, &media_type).map(str::to_string),
                media_type: media_type.clone(),
                expected_md5: None,
                expected_size: size,
                media,
                facts: facts.clone(),
            };
            if !is_downloadable(state) {
                out.push(Discovered::Recording(base(
                    None,
                    MediaAvailability::Unavailable(format!(
                        "recording fileState is {}",
                        state.unwrap_or_default()
                    )),
                    None,
                )));
                continue;
            }
            let rec = self.recording_media(cid, &m.id, format_id).await?;
            let size = rec.output_size_in_bytes.filter(|s| *s > 0);
            let files = recording_files(&rec);
            if files.is_empty() {
                out.push(Discovered::Recording(base(
                    None,
                    MediaAvailability::Unavailable(format!(
                        "no media URI (fileState {})",
                        rec.meta.file_state.as_deref().unwrap_or("unknown")
                    )),
                    None,
                )));
            }
            let several = files.len() > 1;
            for (label, media) in files {
                // outputSizeInBytes describes the transcoded media as a whole: a size check
                // per channel would be wrong.
                let size = if several { None } else { size };
                out.push(Discovered::Recording(base(label, media, size)));
            }
        }
        Ok(())
    }

    /// Requests a fresh media URL for one recording file (after a 403 or near expiry), the
    /// way the source mode obtained it.
    pub async fn refresh_media(&self, rec: &DiscoveredRecording) -> Result<MediaAvailability> {
        if crate::orphan::is_orphan(rec) {
            return self.refresh_orphan(rec).await;
        }
        match self.config().source.clone() {
            SourceMode::Batch => Ok(self
                .refresh_media_batch(std::slice::from_ref(rec))
                .await?
                .pop()
                .expect("one result per recording")),
            SourceMode::PerRecording { format_id } => {
                let r = self
                    .recording_media(&rec.conversation_id, &rec.recording_id, &format_id)
                    .await?;
                Ok(file_of(&r, &rec.file))
            }
            SourceMode::CompatListing => {
                let (_, e): (_, CompatRecording) = self
                    .call(
                        Method::GET,
                        &format!(
                            "/api/v2/recordings/recordings/{}",
                            path_segment(&rec.recording_id)?
                        ),
                        None,
                    )
                    .await?;
                Ok(crate::discovery::compat_to_discovered(e).media)
            }
        }
    }

    /// Fresh media URLs for up to 100 recording files with one batch download job (batch
    /// source mode), in the order of `recs`: a file the job returned no URL for is
    /// `Unavailable` with the job's `errorMsg`. Used to refresh many expired URLs at once.
    pub async fn refresh_media_batch(
        &self,
        recs: &[DiscoveredRecording],
    ) -> Result<Vec<MediaAvailability>> {
        if recs.len() > 100 {
            return Err(Error::InvalidArgument(format!(
                "a batch download job takes at most 100 recordings, not {}",
                recs.len()
            )));
        }
        if recs.is_empty() {
            return Ok(Vec::new());
        }
        // Orphans have no conversation a batch job could name: their own media endpoint.
        if recs.iter().any(crate::orphan::is_orphan) {
            let others: Vec<DiscoveredRecording> = recs
                .iter()
                .filter(|r| !crate::orphan::is_orphan(r))
                .cloned()
                .collect();
            let mut batch = Box::pin(self.refresh_media_batch(&others))
                .await?
                .into_iter();
            let mut out = Vec::with_capacity(recs.len());
            for r in recs {
                out.push(if crate::orphan::is_orphan(r) {
                    self.refresh_orphan(r).await?
                } else {
                    batch.next().unwrap_or_else(|| {
                        MediaAvailability::Unavailable("no result for this file".into())
                    })
                });
            }
            return Ok(out);
        }
        let mut seen = std::collections::HashSet::new();
        let items: Vec<BatchDownloadRequest> = recs
            .iter()
            .filter(|r| seen.insert((r.conversation_id.as_str(), r.recording_id.as_str())))
            .map(|r| BatchDownloadRequest {
                conversation_id: r.conversation_id.clone(),
                recording_id: Some(r.recording_id.clone()),
            })
            .collect();
        let results = self.batch_download(items).await?;
        Ok(recs
            .iter()
            .map(|rec| {
                let mine: Vec<&BatchDownloadJobResult> = results
                    .iter()
                    .filter(|r| r.recording_id.as_deref() == Some(rec.recording_id.as_str()))
                    .collect();
                match batch_files(&mine).into_iter().find(|(f, _, _)| *f == rec.file) {
                    Some((_, media, _)) => media,
                    None => MediaAvailability::Unavailable(
                        mine.iter().find_map(|r| r.error_msg.clone()).unwrap_or_else(|| {
                            "the batch request returned no result for this file of the recording"
                                .into()
                        }),
                    ),
                }
            })
            .collect())
    }

    /// Submits a batch download request (at most 100 items) and polls it until `Completed`
    /// with every expected result, backing off between polls.
    pub async fn batch_download(
        &self,
        items: Vec<BatchDownloadRequest>,
    ) -> Result<Vec<BatchDownloadJobResult>> {
        if items.is_empty() || items.len() > BATCH_MAX {
            return Err(Error::InvalidArgument(format!(
                "a batch request holds 1 to 100 items, not {}",
                items.len()
            )));
        }
        let body = json!({"batchDownloadRequestList": items});
        let (_, job): (_, BatchDownloadJobSubmissionResult) = self
            .call(Method::POST, "/api/v2/recording/batchrequests", Some(&body))
            .await?;
        let path = format!("/api/v2/recording/batchrequests/{}", path_segment(&job.id)?);
        let what = format!("batch request {}", job.id);
        self.poll_job(&self.inner.batch_ready, &what, || async {
            let (_, st): (_, BatchDownloadJobStatusResult) =
                self.call(Method::GET, &path, None).await?;
            // Completed, with every expected result present in the answer: counts alone are
            // not trusted (`expectedResultCount` may still grow, and an answer whose
            // `results` lag its `resultCount` would drop files silently).
            let present = st.results.len() as u64;
            let complete = st.status.as_deref() == Some("Completed")
                && st.result_count.unwrap_or(present) >= st.expected_result_count.unwrap_or(0)
                && present >= st.expected_result_count.unwrap_or(0)
                && present >= st.result_count.unwrap_or(0);
            Ok(complete.then_some(st.results))
        })
        .await
    }

    /// Whether a recording the source gave no media for is gone, as discovery decides it:
    /// `Some(fileState)` when its `recordingmetadata` state is neither "not yet" (uploading,
    /// restoring) nor downloadable, or `Some("absent")` when the metadata no longer lists it;
    /// `None` when it should be there (a failure to retry, not an "unavailable").
    pub async fn gone_state(
        &self,
        conversation_id: &str,
        recording_id: &str,
    ) -> Result<Option<String>> {
        let metas = self.recording_metadata(conversation_id).await?;
        Ok(match metas.iter().find(|m| m.id == recording_id) {
            None => Some("absent from its conversation's recordingmetadata".into()),
            Some(m) => {
                let state = m.file_state.as_deref();
                (!is_downloadable(state) && !state.is_some_and(is_not_yet))
                    .then(|| state.unwrap_or_default().to_string())
            }
        })
    }

    /// `GET /api/v2/conversations/{id}/recordingmetadata`.
    pub async fn recording_metadata(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<RecordingMetadata>> {
        let path = format!(
            "/api/v2/conversations/{}/recordingmetadata",
            path_segment(conversation_id)?
        );
        Ok(self.call(Method::GET, &path, None).await?.1)
    }

    /// The per-recording GET with `formatId`, polling while it answers 202 (transcoding).
    pub async fn recording_media(
        &self,
        conversation_id: &str,
        recording_id: &str,
        format_id: &str,
    ) -> Result<Recording> {
        let path = format!(
            "/api/v2/conversations/{}/recordings/{}?formatId={}",
            path_segment(conversation_id)?,
            path_segment(recording_id)?,
            path_segment(format_id)?
        );
        self.media_when_transcoded(&path, &format!("recording {recording_id}"))
            .await
    }

    /// GETs a media answer (`Recording`) of `path`, polling while it answers 202 (the media
    /// is being transcoded) until the client's `poll_timeout`; `what` names it in a timeout.
    pub(crate) async fn media_when_transcoded(&self, path: &str, what: &str) -> Result<Recording> {
        let cfg = self.config();
        let started = tokio::time::Instant::now();
        let mut backoff = cfg.poll_initial;
        loop {
            let (status, rec): (_, Recording) = self.call(Method::GET, path, None).await?;
            if status != StatusCode::ACCEPTED {
                return Ok(rec);
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(format!("transcoding of {what}")));
            }
            // The service's estimate, when it gives one, instead of polling a transcode
            // that cannot be done yet; never sooner than `poll_initial`.
            let wait = match rec.estimated_transcode_time_ms.filter(|ms| *ms > 0) {
                Some(ms) => std::time::Duration::from_millis(ms)
                    .clamp(cfg.poll_initial, cfg.poll_timeout / 2),
                None => {
                    let w = backoff;
                    backoff = (backoff * 2).min(cfg.poll_max);
                    w
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A recording of a finished conversation that exists but cannot be archived yet. Its
/// conversation comes back to be resolved again ([`PendingItem::waiting`]) rather than read
/// again from the analytics window: a recording stuck `UPLOADING` for days must not hold a
/// poll loop's checkpoint (and a growing window read on every poll).
fn pending(
    cid: &str,
    rid: &str,
    conv: Option<&AnalyticsConversation>,
    reason: String,
) -> Discovered {
    Discovered::Pending(PendingItem {
        conversation_id: cid.to_string(),
        recording_id: Some(rid.to_string()),
        since: conv.and_then(|c| parse_time(c.conversation_start.as_deref())),
        reason,
        waiting: conv.map(|c| Box::new(c.clone())),
    })
}

/// The reason of a recording whose `fileState` says "not yet".
fn not_yet(state: &str, detail: &str) -> String {
    format!("its fileState is {state} ({detail}); archived once it is available")
}

/// The media of one file (`file`, as discovery labelled it) of a per-recording answer: the
/// unlabelled file is channel `ch0` when the answer labels its channels.
pub(crate) fn file_of(rec: &Recording, file: &Option<String>) -> MediaAvailability {
    recording_files(rec)
        .into_iter()
        .find(|(f, _)| f == file || (file.is_none() && f.as_deref() == Some("ch0")))
        .map(|(_, m)| m)
        .unwrap_or_else(|| MediaAvailability::Unavailable("no media URI for this file".into()))
}

/// The files of a per-recording GET: every `mediaUris` entry with a URI; one entry has no
/// label, several are labelled by channel key.
pub(crate) fn recording_files(rec: &Recording) -> Vec<(Option<String>, MediaAvailability)> {
    let with_uri: Vec<(&String, &String)> = rec
        .media_uris
        .iter()
        .filter_map(|(k, m)| m.media_uri.as_ref().map(|u| (k, u)))
        .collect();
    let several = with_uri.len() > 1;
    with_uri
        .into_iter()
        .map(|(k, u)| {
            let media = match MediaUrl::parse(u) {
                Ok(u) => MediaAvailability::Url(u),
                Err(e) => MediaAvailability::Unavailable(e.to_string()),
            };
            let label = if several {
                channel_label(k).or_else(|| Some("ch-unnamed".into()))
            } else {
                None
            };
            (label, media)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(path: &str, ct: &str) -> BatchDownloadJobResult {
        BatchDownloadJobResult {
            conversation_id: Some("c".into()),
            recording_id: Some("r".into()),
            result_url: Some(format!("https://media.example{path}?X-Signature=s")),
            content_type: Some(ct.into()),
            error_msg: None,
        }
    }

    #[test]
    fn several_results_are_several_files_with_stable_labels() {
        let a = result("/b/2", "audio/ogg");
        let b = result("/a/1", "audio/ogg");
        let a_again = result("/b/2", "audio/ogg");
        let files = batch_files(&[&a, &b, &a_again]);
        let labels: Vec<_> = files.iter().map(|f| f.0.clone()).collect();
        assert_eq!(labels, [Some("part1".into()), Some("part2".into())]);
        let MediaAvailability::Url(first) = &files[0].1 else {
            panic!()
        };
        assert_eq!(
            first.path(),
            "/a/1",
            "labelled in path order, not answer order"
        );
        assert_eq!(batch_files(&[&a])[0].0, None, "one file has no label");
    }

    #[test]
    fn content_types_follow_the_format_and_the_media() {
        assert_eq!(format_content_type("WAV", "audio"), Some("audio/wav"));
        assert_eq!(format_content_type("WAV", "screen"), Some("video/webm"));
        assert_eq!(format_content_type("MP3", "chat"), Some("application/zip"));
        assert_eq!(
            format_content_type("OGG_OPUS", "email"),
            Some("message/rfc822")
        );
        assert_eq!(format_content_type("NONE", "audio"), None);
    }
}
