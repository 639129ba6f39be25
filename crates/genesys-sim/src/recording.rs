//! The recording API: `recordingmetadata`, the per-recording GET with `formatId`, batch download jobs, and the compat listing.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::dataset::SimRecording;
use crate::signing;
use crate::state::{
    Body, Job, State, api_error, has_two_files, json_response, md5_of, rfc3339, second_file_failed,
};

/// The fields a `Recording` (the per-recording GET) and a `RecordingMetadata` share, with
/// `selfUri` `self_uri`.
fn common_json(r: &SimRecording, file_state: &str, self_uri: String) -> Value {
    json!({
        "id": r.id,
        "conversationId": r.conversation_id,
        "startTime": rfc3339(r.start),
        "endTime": rfc3339(r.end),
        "media": r.media,
        "mediaSubtype": if r.media == "screen" { "Screen" } else { "Trunk" },
        "fileState": file_state,
        "selfUri": self_uri,
    })
}

/// A `RecordingMetadata` (`recordingmetadata`): the model has the storage `region`.
pub(crate) fn metadata_json(r: &SimRecording, file_state: &str) -> Value {
    let mut v = common_json(
        r,
        file_state,
        format!(
            "/api/v2/conversations/{}/recordingmetadata/{}",
            r.conversation_id, r.id
        ),
    );
    v["region"] = json!("us-east-1");
    v
}

/// A `Recording` without its media (the per-recording GET adds `mediaUris` and the output
/// figures once transcoded). The SDK's `Recording` model has no `region`.
pub(crate) fn recording_json(r: &SimRecording, file_state: &str) -> Value {
    common_json(
        r,
        file_state,
        format!(
            "/api/v2/conversations/{}/recordings/{}",
            r.conversation_id, r.id
        ),
    )
}

pub(crate) fn recording_metadata(st: &State, cid: &str) -> Response<Body> {
    let Some(conv) = st.conversation(cid) else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "conversation not found");
    };
    let vis = st.visibility();
    let list: Vec<Value> = conv
        .recordings
        .iter()
        .filter(|&&i| vis.attached(i))
        .map(|&i| {
            let r = &st.data.recordings[i];
            metadata_json(r, &vis.file_state(st, r))
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// The content type a `formatId` gives a recording: `formatId` picks the audio format;
/// screen recordings are WebM, chats and messages ZIP (`chatFormatId`/`messageFormatId`),
/// emails EML (`emailFormatId`), whatever `formatId` says. `None`: an unknown format.
pub(crate) fn format_content_type(format: &str, r: &SimRecording) -> Option<&'static str> {
    let audio = match format {
        "NONE" | "NATIVE" => return Some(r.native_content_type()),
        "WAV" | "WAV_ULAW" => "audio/wav",
        "WEBM" => "audio/webm",
        "OGG_VORBIS" | "OGG_OPUS" => "audio/ogg",
        "MP3" => "audio/mpeg",
        _ => return None,
    };
    Some(match r.media.as_str() {
        "screen" => "video/webm",
        "chat" | "messaging" => "application/zip",
        "email" => "message/rfc822",
        _ => audio,
    })
}

/// What a media URL signs: the path (which names the file) and the format.
pub(crate) fn signed_resource(path: &str, format: &str) -> String {
    format!("{path}?{format}")
}

pub(crate) fn media_url(st: &State, r: &SimRecording, format: &str) -> String {
    media_part_url(st, r, format, 0)
}

/// A signed URL of file `part` of a recording: `/media/{cid}/{rid}` for the first file,
/// `/media/{cid}/{rid}/{part}` for another (distinct files are distinct objects).
pub(crate) fn media_part_url(st: &State, r: &SimRecording, format: &str, part: u32) -> String {
    let mut path = format!("/media/{}/{}", r.conversation_id, r.id);
    if part > 0 {
        path.push_str(&format!("/{part}"));
    }
    let expires = Utc::now().timestamp() + st.cfg.url_ttl.as_secs() as i64;
    let sig = signing::sign(&st.key, &signed_resource(&path, format), expires);
    format!(
        "{}{path}?format={format}&X-Expires={expires}&X-Signature={sig}",
        st.base_url
    )
}

pub(crate) fn recording_get(
    st: &State,
    cid: &str,
    rid: &str,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let Some(&idx) = st.by_id.get(rid) else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "recording not found");
    };
    let r = &st.data.recordings[idx];
    let vis = st.visibility();
    // A late file before its time, an orphan or a detached recording is not (yet) the
    // conversation's.
    if r.conversation_id != cid || !vis.attached(idx) {
        return api_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "recording not found in conversation",
        );
    }
    let file_state = vis.file_state(st, r);
    recording_answer(st, idx, query, &file_state, recording_json(r, &file_state))
}

/// The answer of a per-recording GET (or an orphan's media GET) of recording `idx` whose
/// `Recording` body so far is `body`: 202 while it transcodes, then 200 with `mediaUris` in
/// the `formatId` asked for (default `WEBM`); only the body when it is not `AVAILABLE`.
pub(crate) fn recording_answer(
    st: &State,
    idx: usize,
    query: &HashMap<String, String>,
    file_state: &str,
    mut body: Value,
) -> Response<Body> {
    let r = &st.data.recordings[idx];
    let format = query
        .get("formatId")
        .map(String::as_str)
        .unwrap_or("WEBM")
        .to_string();
    let Some(ct) = format_content_type(&format, r) else {
        return api_error(StatusCode::BAD_REQUEST, "bad.request", "unknown formatId");
    };
    if file_state != "AVAILABLE" {
        return json_response(StatusCode::OK, &body);
    }
    let (polls, since) = {
        let mut inner = st.lock();
        let (n, since) = inner
            .transcode
            .entry((idx, format.clone()))
            .or_insert((0, std::time::Instant::now()));
        *n += 1;
        (*n, *since)
    };
    let left = st.cfg.transcode_time.saturating_sub(since.elapsed());
    if !left.is_zero() {
        body["estimatedTranscodeTimeMs"] = json!(left.as_millis() as u64);
        return json_response(StatusCode::ACCEPTED, &body);
    }
    if polls <= st.cfg.transcode_polls {
        return json_response(StatusCode::ACCEPTED, &body);
    }
    // `Recording` has no content type field: the format asked for decides it (`ct`).
    let _ = ct;
    let mut uris = json!({"0": {"mediaUri": media_url(st, r, &format)}});
    if has_two_files(st, idx) {
        uris["1"] = json!({"mediaUri": media_part_url(st, r, &format, 1)});
    }
    body["mediaUris"] = uris;
    body["outputSizeInBytes"] = json!(r.size);
    body["outputDurationMs"] = json!((r.end - r.start).num_milliseconds());
    json_response(StatusCode::OK, &body)
}

pub(crate) fn batch_submit(st: &State, body: &[u8]) -> Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return bad("body is not valid JSON");
    };
    let Some(list) = q.get("batchDownloadRequestList").and_then(Value::as_array) else {
        return bad("batchDownloadRequestList is required");
    };
    if list.is_empty() || list.len() > 100 {
        return bad("batchDownloadRequestList must hold 1 to 100 items");
    }
    // The job's items are fixed now: a recording absent now (late, orphaned, detached) is not
    // in it, even if it is attached before the job completes.
    let vis = st.visibility();
    // "If the recording:recording:viewSensitiveData permission is missing and the
    // organization has sensitive data redaction enabled, recordings with sensitive data will
    // be excluded from the batch download" (POST /api/v2/recording/batchrequests, SDK 255).
    let excluded = |i: usize| {
        st.cfg
            .missing_permissions
            .iter()
            .any(|p| p == "recording:recording:viewSensitiveData")
            && st.cfg.sensitive_recordings.contains(&i)
    };
    let mut items = Vec::new();
    for it in list {
        let Some(cid) = it.get("conversationId").and_then(Value::as_str) else {
            return bad("conversationId is required");
        };
        match it.get("recordingId").and_then(Value::as_str) {
            Some(rid) => {
                if let Some(&i) = st.by_id.get(rid)
                    && st.data.recordings[i].conversation_id == cid
                    && vis.attached(i)
                    && !excluded(i)
                {
                    items.push(i);
                }
            }
            None => {
                if let Some(c) = st.conversation(cid) {
                    items.extend(
                        c.recordings
                            .iter()
                            .copied()
                            .filter(|&i| vis.attached(i) && !excluded(i)),
                    );
                }
            }
        }
    }
    let mut inner = st.lock();
    inner.counter += 1;
    let id = format!("job-{:08x}-{}", inner.rng.next_u64() as u32, inner.counter);
    inner.jobs.insert(
        id.clone(),
        Job {
            items,
            created: Instant::now(),
            completed_polls: 0,
        },
    );
    json_response(
        StatusCode::OK,
        &json!({"id": id, "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
    )
}

pub(crate) fn batch_status(st: &State, id: &str) -> Response<Body> {
    let (items, done, poll) = {
        let mut inner = st.lock();
        let Some(job) = inner.jobs.get_mut(id) else {
            return api_error(
                StatusCode::NOT_FOUND,
                "not.found",
                "batch request not found",
            );
        };
        let done = job.created.elapsed() >= st.cfg.batch_ready_after;
        if done {
            job.completed_polls += 1;
        }
        (job.items.clone(), done, job.completed_polls)
    };
    if !done {
        return json_response(
            StatusCode::OK,
            &json!({"id": id, "jobId": id, "expectedResultCount": items.len(), "resultCount": 0, "errorCount": 0,
                    "status": "InProgress", "results": [], "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
        );
    }
    let mut errors = 0;
    let vis = st.visibility();
    let mut results: Vec<Value> = Vec::new();
    for &i in &items {
        let r = &st.data.recordings[i];
        let file_state = vis.file_state(st, r);
        if file_state == "AVAILABLE" {
            results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                   "resultUrl": media_url(st, r, "NATIVE"), "contentType": r.native_content_type()}));
            // "A recording could be associated with multiple results."
            if second_file_failed(st, i) {
                errors += 1;
                results.push(
                    json!({"conversationId": r.conversation_id, "recordingId": r.id,
                       "errorMsg": "One file of the recording failed to process"}),
                );
            } else if has_two_files(st, i) {
                results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                       "resultUrl": media_part_url(st, r, "NATIVE", 1), "contentType": r.native_content_type()}));
            }
        } else {
            errors += 1;
            results.push(json!({"conversationId": r.conversation_id, "recordingId": r.id,
                   "errorMsg": format!("Recording is {}; it cannot be downloaded now", file_state.to_lowercase())}));
        }
    }
    let count = results.len();
    let growing = st.cfg.growing_expected_polls;
    if poll <= growing && count > 0 {
        // Results still being discovered: `expectedResultCount` below the final count,
        // growing by one per poll, and as many results as it says.
        let expected = count.saturating_sub((growing - poll + 1) as usize);
        results.truncate(expected);
        let errors = results
            .iter()
            .filter(|v| v.get("errorMsg").is_some())
            .count();
        return json_response(
            StatusCode::OK,
            &json!({"id": id, "jobId": id, "expectedResultCount": expected, "resultCount": expected,
                    "errorCount": errors, "status": "InProgress", "results": results,
                    "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
        );
    }
    // The polls after the growing ones: the first `results_lag_polls` lag their counts.
    let lagging = poll.saturating_sub(growing) <= st.cfg.results_lag_polls;
    if lagging && count > 1 {
        results.pop();
    }
    json_response(
        StatusCode::OK,
        &json!({"id": id, "jobId": id, "expectedResultCount": count, "resultCount": count,
                "errorCount": errors, "status": "Completed", "results": results,
                "selfUri": format!("/api/v2/recording/batchrequests/{id}")}),
    )
}

pub(crate) fn compat_entity(st: &State, r: &SimRecording) -> Value {
    json!({
        "id": r.id,
        "status": "completed",
        "uri": media_url(st, r, "NATIVE"),
        "md5": hex::encode(md5_of(st, r.index)),
        "interactionId": r.conversation_id,
        "startTime": rfc3339(r.start),
        "endTime": rfc3339(r.end),
        "mediaType": r.media,
        "contentType": r.native_content_type(),
        "size": r.size,
    })
}

pub(crate) fn compat_list(st: &State, q: &HashMap<String, String>) -> Response<Body> {
    let page_size: usize = q.get("pageSize").and_then(|s| s.parse().ok()).unwrap_or(25);
    let page_number: usize = q
        .get("pageNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if page_size == 0 || page_size > 100 || page_number == 0 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "pageSize must be 1..=100 and pageNumber >= 1",
        );
    }
    if q.get("status").is_some_and(|s| s != "completed") {
        return json_response(
            StatusCode::OK,
            &json!({"entities": [], "pageSize": page_size, "pageNumber": page_number, "total": 0}),
        );
    }
    let vis = st.visibility();
    let available: Vec<&SimRecording> = st
        .data
        .recordings
        .iter()
        .filter(|r| r.file_state == "AVAILABLE" && vis.attached(r.index))
        .collect();
    let entities: Vec<Value> = available
        .iter()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .map(|r| compat_entity(st, r))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"entities": entities, "pageSize": page_size, "pageNumber": page_number,
                "total": available.len(), "pageCount": available.len().div_ceil(page_size)}),
    )
}

pub(crate) fn compat_one(st: &State, id: &str) -> Response<Body> {
    match st.by_id.get(id) {
        Some(&i) if st.visibility().attached(i) => {
            json_response(StatusCode::OK, &compat_entity(st, &st.data.recordings[i]))
        }
        _ => api_error(StatusCode::NOT_FOUND, "not.found", "recording not found"),
    }
}

/// `GET /api/v2/authorization/divisionspermitted/paged/me?permission=...` ("Returns which
/// divisions the current user has the given permission in", no permission needed): every
/// division, unless the simulated client lacks the permission (then none).
pub(crate) fn divisions_permitted(
    st: &State,
    q: &std::collections::HashMap<String, String>,
) -> Response<Body> {
    let Some(permission) = q.get("permission").filter(|p| !p.is_empty()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "permission is required",
        );
    };
    let held = !st.cfg.missing_permissions.contains(permission);
    let entities: Vec<Value> = if held {
        let mut divisions: Vec<&str> = st
            .data
            .conversations
            .iter()
            .map(|c| c.division_id.as_str())
            .collect();
        divisions.sort_unstable();
        divisions.dedup();
        divisions
            .into_iter()
            .map(|d| json!({"id": d, "name": format!("Division {}", &d[..8.min(d.len())])}))
            .collect()
    } else {
        Vec::new()
    };
    json_response(
        StatusCode::OK,
        &json!({"entities": entities, "pageSize": 25, "pageNumber": 1, "total": entities.len(),
                "allDivsPermitted": held, "pageCount": 1}),
    )
}
