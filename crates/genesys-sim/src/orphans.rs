//! Orphan recordings (`SimConfig::orphans`): recordings that reached the cloud but not their
//! conversation. `GET /api/v2/orphanrecordings` lists them (`OrphanRecordingListing`, paged by
//! `pageSize`/`pageNumber`), `GET /api/v2/orphanrecordings/{orphanId}` answers one
//! (`OrphanRecording`), and `GET /api/v2/orphanrecordings/{orphanId}/media` serves its media as
//! the per-recording GET does (a `Recording` with `mediaUris`, 202 while transcoding). JSON
//! names and enums are those of the SDK models (PY `orphan_recording.py`,
//! `orphan_recording_listing.py`; `RecordingApi.md`).
//!
//! An orphan re-attached to its conversation "will no longer exist" (RecordingApi.md,
//! `put_orphanrecording`): it leaves the list, and its orphan id answers 404.

use std::collections::HashMap;

use chrono::Utc;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::dataset::SimRecording;
use crate::recording::{recording_answer, recording_json};
use crate::state::is_orphan;
use crate::state::{Body, State, api_error, json_response, rfc3339};

/// Largest `pageSize` of the orphan listing. The SDK documents none; 100 is the usual maximum
/// of the platform's `pageSize`/`pageNumber` listings (an assumption).
const MAX_PAGE_SIZE: usize = 100;

/// `(providerType, mediaType, mediaSubtype)` of an orphan of this media.
fn kinds(r: &SimRecording) -> (&'static str, &'static str, Option<&'static str>) {
    match r.media.as_str() {
        "screen" => ("SCREEN_RECORDING", "SCREEN", Some("Screen")),
        "chat" | "messaging" => ("CHAT", "CHAT", None),
        "email" => ("EMAIL", "EMAIL", None),
        _ => ("EDGE", "CALL", Some("Trunk")),
    }
}

/// An `OrphanRecording`: created when the recording ended, recovered from the Edge 30 s later
/// (or now, if that is still to come); its conversation unknown (`NO_CONVERSATION`).
fn orphan_json(r: &SimRecording, orphan_id: &str) -> Value {
    let (provider, media_type, subtype) = kinds(r);
    let recovered = (r.end + chrono::Duration::seconds(30)).min(Utc::now());
    let mut v = json!({
        "id": orphan_id,
        "createdTime": rfc3339(r.end),
        "recoveredTime": rfc3339(recovered),
        "providerType": provider,
        "mediaSizeBytes": r.size,
        "mediaType": media_type,
        "fileState": r.file_state,
        "orphanStatus": "NO_CONVERSATION",
        "region": "us-east-1",
        "selfUri": format!("/api/v2/orphanrecordings/{orphan_id}"),
    });
    if let Some(s) = subtype {
        v["mediaSubtype"] = json!(s);
    }
    v
}

/// The recording behind `orphan_id` if it is an orphan now.
fn current(st: &State, orphan_id: &str) -> Option<usize> {
    let &i = st.life.orphan_by_id.get(orphan_id)?;
    let inner = st.lock();
    is_orphan(st, &inner.attach, i, Utc::now()).then_some(i)
}

fn not_found() -> Response<Body> {
    api_error(
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested orphan recording was not found.",
    )
}

/// `GET /api/v2/orphanrecordings?pageSize=&pageNumber=&hasConversation=&media=`: the orphans
/// now, ordered by `createdTime` then id. `pageSize` 1..=100 (default 25), `pageNumber` from 1
/// (default 1), 400 outside; `hasConversation=true` lists none (every simulated orphan's
/// conversation is unknown); `media` is `Call` or `Screen`.
pub(crate) fn list(st: &State, q: &HashMap<String, String>) -> Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let page_size = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return bad(&format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")),
    };
    let page_number = match q.get("pageNumber").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return bad("pageNumber must be at least 1"),
    };
    let has_conversation = match q.get("hasConversation").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return bad("hasConversation must be true or false"),
    };
    let media = match q.get("media").map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(m) if m == "call" => Some("CALL"),
        Some(m) if m == "screen" => Some("SCREEN"),
        Some(_) => return bad("media must be Call or Screen"),
    };
    let mut orphans: Vec<(usize, &str)> = {
        let inner = st.lock();
        let now = Utc::now();
        st.life
            .orphan_id
            .iter()
            .filter(|&(&i, _)| is_orphan(st, &inner.attach, i, now))
            .map(|(&i, id)| (i, id.as_str()))
            .collect()
    };
    orphans.retain(|&(i, _)| {
        !has_conversation && media.is_none_or(|m| kinds(&st.data.recordings[i]).1 == m)
    });
    orphans.sort_by(|a, b| {
        (st.data.recordings[a.0].end, a.1).cmp(&(st.data.recordings[b.0].end, b.1))
    });
    let total = orphans.len();
    let page_count = total.div_ceil(page_size);
    let entities: Vec<Value> = orphans
        .iter()
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|&(i, id)| orphan_json(&st.data.recordings[i], id))
        .collect();
    let mut filters = String::new();
    if let Some(v) = q.get("hasConversation") {
        filters.push_str(&format!("&hasConversation={v}"));
    }
    if let Some(v) = q.get("media") {
        filters.push_str(&format!("&media={v}"));
    }
    let uri =
        |n: usize| format!("/api/v2/orphanrecordings?pageSize={page_size}&pageNumber={n}{filters}");
    let mut out = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
        "lastUri": uri(page_count.max(1)),
    });
    if page_number < page_count {
        out["nextUri"] = json!(uri(page_number + 1));
    }
    if page_number > 1 {
        out["previousUri"] = json!(uri((page_number - 1).min(page_count.max(1))));
    }
    json_response(StatusCode::OK, &out)
}

/// `GET /api/v2/orphanrecordings/{orphanId}`: the orphan, or 404 once re-attached.
pub(crate) fn one(st: &State, orphan_id: &str) -> Response<Body> {
    match current(st, orphan_id) {
        Some(i) => json_response(
            StatusCode::OK,
            &orphan_json(&st.data.recordings[i], orphan_id),
        ),
        None => not_found(),
    }
}

/// `GET /api/v2/orphanrecordings/{orphanId}/media?formatId=`: a `Recording` named by the
/// orphan id, without a conversation, answered as the per-recording GET is (202 while
/// transcoding, then `mediaUris`); 404 once re-attached.
pub(crate) fn media(st: &State, orphan_id: &str, q: &HashMap<String, String>) -> Response<Body> {
    let Some(i) = current(st, orphan_id) else {
        return not_found();
    };
    let r = &st.data.recordings[i];
    let mut body = recording_json(r, &r.file_state);
    if let Some(o) = body.as_object_mut() {
        o.remove("conversationId");
    }
    body["id"] = json!(orphan_id);
    body["selfUri"] = json!(format!("/api/v2/orphanrecordings/{orphan_id}/media"));
    recording_answer(st, i, q, &r.file_state, body)
}
