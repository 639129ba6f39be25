//! `GET /api/v2/recordings/retention/query?retentionThresholdDays=N&cursor=&pageSize=`: the only
//! org-wide recording listing of the real API ("Fetch retention data for recordings retained
//! for more days than the provided value"; PY `RecordingApi.md`,
//! `get_recordings_retention_query`).
//!
//! The answer is a `RecordingRetentionCursorEntityListing`: `entities`
//! (`RecordingRetention{conversationId, recordingId, archiveDate, archiveMedium, deleteDate,
//! exportDate, exportedDate, creationTime}`), `selfUri`, and `nextUri` while more follow. The
//! model has no `cursor` field: the next page is reached only through `nextUri`, which carries
//! an opaque `cursor` parameter; no `nextUri` means the last page.
//!
//! What the simulator lists: every recording attached to its conversation now (not a late
//! file before its time, not an orphan, not detached) created more than N days ago (N = 0:
//! all of them), ordered by creation time then recording id. The creation time is the
//! recording's end. A cursor names a position in that fixed order, so a recording attached
//! while a client pages is listed if it sorts after the cursor (and never twice).

use std::collections::HashMap;

use base64::Engine as _;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::dataset::SimRecording;
use crate::lifecycle::creation_time;
use crate::state::{Body, State, api_error, json_response, rfc3339};

/// Default `pageSize` (the SDK's default).
const DEFAULT_PAGE_SIZE: usize = 25;
/// Largest `pageSize` ("Maximum is 500").
const MAX_PAGE_SIZE: usize = 500;
/// The simulated org's retention policy: recordings are deleted this long after creation.
const RETAIN_DAYS: i64 = 365;

fn encode_cursor(pos: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ret:{pos}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("ret:")?
        .parse()
        .ok()
}

/// A `RecordingRetention`: deleted `RETAIN_DAYS` after creation; an archived recording also
/// has its `archiveDate` (an hour after creation) and `archiveMedium`.
fn retention_json(r: &SimRecording) -> Value {
    let created = creation_time(r.end);
    let mut v = json!({
        "conversationId": r.conversation_id,
        "recordingId": r.id,
        "deleteDate": rfc3339(created + chrono::Duration::days(RETAIN_DAYS)),
        "creationTime": rfc3339(created),
    });
    if r.file_state == "ARCHIVED" {
        v["archiveDate"] = json!(rfc3339(created + chrono::Duration::hours(1)));
        v["archiveMedium"] = json!("CLOUDARCHIVE");
    }
    v
}

/// The handler; see the module documentation. 400 without a whole `retentionThresholdDays`
/// ≥ 0, with a `pageSize` outside 1..=500, or with a cursor it did not issue.
pub(crate) fn query(st: &State, q: &HashMap<String, String>) -> Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let days = match q.get("retentionThresholdDays").map(|s| s.parse::<u32>()) {
        Some(Ok(d)) => d,
        Some(Err(_)) => return bad("retentionThresholdDays must be a whole number of days"),
        None => return bad("Missing the required parameter retentionThresholdDays"),
    };
    let page_size = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return bad(&format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")),
    };
    let order = &st.life.by_creation;
    let start = match q.get("cursor") {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(p) if p <= order.len() => p,
            _ => return bad("cursor is not valid"),
        },
    };
    let vis = st.visibility();
    let cutoff = (days > 0).then(|| vis.now - chrono::Duration::days(i64::from(days)));
    // Positions in creation order that qualify: attached, and created before the cutoff (a
    // prefix of the order).
    let mut qualifying = order[start..]
        .iter()
        .enumerate()
        .map(|(k, &i)| (start + k, i))
        .take_while(|&(_, i)| cutoff.is_none_or(|c| creation_time(st.data.recordings[i].end) < c))
        .filter(|&(_, i)| vis.attached(i) && !vis.deleted.contains(&i));
    let page: Vec<(usize, usize)> = qualifying.by_ref().take(page_size).collect();
    let more = qualifying.next().is_some();
    let set = st.lock().delete_dates.clone();
    let entities: Vec<Value> = page
        .iter()
        .map(|&(_, i)| {
            let mut v = retention_json(&st.data.recordings[i]);
            if let Some(d) = set.get(&i) {
                v["deleteDate"] = json!(rfc3339(*d));
            }
            v
        })
        .collect();
    let uri = |cursor: Option<String>| {
        let mut u = format!(
            "/api/v2/recordings/retention/query?retentionThresholdDays={days}&pageSize={page_size}"
        );
        if let Some(c) = cursor {
            u.push_str(&format!("&cursor={c}"));
        }
        u
    };
    let mut out = json!({
        "entities": entities,
        "selfUri": uri(q.get("cursor").cloned()),
    });
    if more && let Some(&(last, _)) = page.last() {
        out["nextUri"] = json!(uri(Some(encode_cursor(last + 1))));
    }
    json_response(StatusCode::OK, &out)
}
