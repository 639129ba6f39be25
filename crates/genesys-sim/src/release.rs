//! Retention at the source (`shared/genesys-api.md` section 9, "Release at the source"):
//!
//! - `PUT /api/v2/conversations/{conversationId}/recordings/{recordingId}[?clearExport=]`
//!   "updates the retention records on a recording"; body and answer a `Recording`. The
//!   simulator reads `deleteDate` and `archiveDate` (ISO-8601 `yyyy-MM-ddTHH:mm:ss[.mmm]Z`):
//!   a `deleteDate` must be more than a day ahead (documented for orphans; the simulator
//!   expects the same, as the stricter reading), an `archiveDate` other than the current one
//!   on an `ARCHIVED` recording restores it ("will result in a restoration"; counted in
//!   [`crate::SimStats::restorations`]). A field left out is left as it was; `null` removes
//!   the date. Permissions ([`crate::SimConfig::missing_permissions`]): `view` always,
//!   `editRetention` to change dates, `restore` to restore (`recording:recording:*`, or
//!   `recording:screenRecording:*` for screen recordings), else 403; the first
//!   [`crate::SimConfig::retention_conflicts`] PUTs answer 409.
//! - `POST /api/v2/recordings/deletionprotection` with `ConversationDeletionProtectionQuery
//!   {conversationIds}` (at most 100) answers the protected ones as `AddressableEntityRef`s
//!   (`id`, `selfUri`). Protection (legal hold) "overrides existing policy deletion dates".
//!
//! Once its delete date has passed (by the simulator's clock plus
//! [`crate::SimHandle::pass_retention_time`]) and its conversation is not protected, a
//! recording is gone: `fileState` `DELETED` (batch requests answer an `errorMsg`, no URL), left
//! out of the retention query, and the PUT answers 404.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::recording::recording_json;
use crate::state::{Body, State, api_error, json_response, rfc3339};

/// The most conversation ids one deletion-protection query takes.
const MAX_PROTECTION_IDS: usize = 100;

/// Parses an ISO-8601 date as the API writes them (UTC, `Z`).
fn parse_date(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if !s.ends_with('Z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `PUT /api/v2/conversations/{cid}/recordings/{rid}`.
pub(crate) fn put_recording(
    st: &State,
    cid: &str,
    rid: &str,
    query: &std::collections::HashMap<String, String>,
    body: &Bytes,
) -> Response<Body> {
    if let Some(v) = query.get("clearExport")
        && v != "true"
        && v != "false"
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "clearExport must be true or false",
        );
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "the body must be a Recording object",
        );
    };
    let Some(&idx) = st.by_id.get(rid) else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "recording not found");
    };
    let r = &st.data.recordings[idx];
    let vis = st.visibility();
    if r.conversation_id != cid || !vis.attached(idx) || vis.deleted.contains(&idx) {
        return api_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "recording not found in conversation",
        );
    }
    let family = if r.media == "screen" {
        "screenRecording"
    } else {
        "recording"
    };
    let missing = |what: &str| {
        let p = format!("recording:{family}:{what}");
        st.cfg.missing_permissions.contains(&p).then(|| {
            api_error(
                StatusCode::FORBIDDEN,
                "missing.any.permissions",
                &format!("Unable to perform the requested action. You are missing the following permission(s): [{p}]"),
            )
        })
    };
    // "view ... is always required; editRetention is required when updating retention
    // dates except for restoration; restore is required when restoring".
    if let Some(refused) = missing("view") {
        return refused;
    }
    {
        let mut inner = st.lock();
        if inner.retention_conflicts_served < st.cfg.retention_conflicts {
            inner.retention_conflicts_served += 1;
            return api_error(
                StatusCode::CONFLICT,
                "conflict",
                "The recording is being updated; try again",
            );
        }
    }
    // Delete dates are judged on the same clock that deletes: the simulator's plus the time
    // passed by hand.
    let now = vis.now + st.lock().retention_ahead;
    let delete = match fields.get("deleteDate") {
        None => None,
        // "removing both archive and delete dates"
        Some(Value::Null) => Some(None),
        Some(v) => match parse_date(v) {
            Some(d) if d > now + Duration::days(1) => Some(Some(d)),
            Some(_) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid.date",
                    "deleteDate must be greater than one day from now",
                );
            }
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid.date",
                    "Dates must be specified as ISO-8601 strings. For example: yyyy-MM-ddTHH:mm:ss.SSSZ",
                );
            }
        },
    };
    let archive_change = match fields.get("archiveDate") {
        None => false,
        Some(v) => match parse_date(v) {
            Some(_) => true,
            None if v.is_null() => false,
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid.date",
                    "Dates must be specified as ISO-8601 strings. For example: yyyy-MM-ddTHH:mm:ss.SSSZ",
                );
            }
        },
    };
    let restoring = archive_change && vis.file_state(st, r) == "ARCHIVED";
    if (delete.is_some() || (archive_change && !restoring))
        && let Some(refused) = missing("editRetention")
    {
        return refused;
    }
    if restoring && let Some(refused) = missing("restore") {
        return refused;
    }
    let mut inner = st.lock();
    inner.stats.retention_updates += 1;
    if restoring {
        inner.stats.restorations += 1;
    }
    match delete {
        Some(Some(d)) => {
            inner.delete_dates.insert(idx, d);
        }
        Some(None) => {
            inner.delete_dates.remove(&idx);
        }
        None => {}
    }
    let mut out = recording_json(r, &vis.file_state(st, r));
    if let Some(d) = inner.delete_dates.get(&idx) {
        out["deleteDate"] = json!(rfc3339(*d));
    }
    json_response(StatusCode::OK, &out)
}

/// `POST /api/v2/recordings/deletionprotection`.
pub(crate) fn protected(st: &State, body: &Bytes) -> Response<Body> {
    let ids: Option<Vec<String>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("conversationIds")?.clone()).ok());
    let Some(ids) = ids else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "conversationIds is required",
        );
    };
    if ids.len() > MAX_PROTECTION_IDS {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "conversationIds cannot exceed 100 conversationids",
        );
    }
    let inner = st.lock();
    let out: Vec<Value> = ids
        .iter()
        .filter(|id| inner.protected.contains(*id))
        .map(|id| json!({"id": id, "selfUri": format!("/api/v2/conversations/{id}")}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(out))
}

/// Recordings whose delete date has passed at `now` (plus the time passed by hand) and whose
/// conversation is not protected.
pub(crate) fn deleted(
    st: &State,
    inner: &crate::state::Inner,
    now: DateTime<Utc>,
) -> std::collections::HashSet<usize> {
    let now = now + inner.retention_ahead;
    inner
        .delete_dates
        .iter()
        .filter(|&(&i, d)| {
            *d <= now
                && !inner
                    .protected
                    .contains(&st.data.recordings[i].conversation_id)
        })
        .map(|(&i, _)| i)
        .collect()
}
