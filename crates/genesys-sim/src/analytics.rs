//! The analytics API: the synchronous details query and the asynchronous details jobs, with
//! the semantics the published contract gives them (`shared/genesys-api.md` section 8):
//!
//! - the details query returns conversations with activity in the interval, but "only
//!   conversations that started on a day touched by the interval" (one that started the day
//!   before is left out); it refuses intervals over 7 days or starting more than 35 days
//!   back, and pages of more than `max_page_size`;
//! - jobs return "all conversations that had activity during the interval", but only what the
//!   data lake holds: conversations that ended before `dataAvailabilityDate`, which lags now;
//! - conversations still in progress have no `conversationEnd`;
//! - only voice sessions carry `recording: true` ("an audio recording was started").

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use http::StatusCode;
use serde_json::{Value, json};

use crate::dataset::SimConversation;
use crate::state::{Body, State, Visibility, api_error, json_response, rfc3339};

/// Largest `pageSize` of a details job's results page.
const MAX_JOB_PAGE_SIZE: usize = 1000;

fn parse_interval(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (a, b) = s.split_once('/')?;
    let a = DateTime::parse_from_rfc3339(a).ok()?.with_timezone(&Utc);
    let b = DateTime::parse_from_rfc3339(b).ok()?.with_timezone(&Utc);
    (a < b).then_some((a, b))
}

fn conversation_matches(conv: &SimConversation, filters: Option<&Value>) -> bool {
    let Some(Value::Array(filters)) = filters else {
        return true;
    };
    filters.iter().all(|f| {
        let preds = f
            .get("predicates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let any = f.get("type").and_then(Value::as_str) == Some("or");
        let check = |p: &Value| {
            let dim = p.get("dimension").and_then(Value::as_str).unwrap_or("");
            let val = p.get("value").and_then(Value::as_str).unwrap_or("");
            match dim {
                "mediaType" => conv.session_media == val,
                "queueId" => conv.queue_id == val,
                "divisionId" => conv.division_id == val,
                "direction" | "originatingDirection" => conv.direction == val,
                // The flag is about audio: only voice sessions set it.
                "recording" => (val == "true") == audio_recorded(conv),
                "conversationId" => conv.id == val,
                _ => true,
            }
        };
        if preds.is_empty() {
            true
        } else if any {
            preds.iter().any(check)
        } else {
            preds.iter().all(check)
        }
    })
}

/// Visible and matching the query's filters.
fn visible_match(c: &SimConversation, vis: &Visibility, q: &Value) -> bool {
    !vis.hidden.contains(&c.id)
        && conversation_matches(c, q.get("segmentFilters"))
        && conversation_matches(c, q.get("conversationFilters"))
}

/// The positions in start order (`State::by_start`) of the conversations that may have
/// activity in `[start, end)` and started at or after `floor`: started before `end`, and not
/// longer before `start` than the longest conversation lasts (unless some are held open,
/// which are active whenever they started). Each answer then scans only this range, so a
/// page costs the interval's conversations, not the whole dataset's.
fn candidates(
    st: &State,
    vis: &Visibility,
    floor: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> std::ops::Range<usize> {
    let lower = if vis.held_open.is_empty() {
        floor.max(start - st.longest)
    } else {
        floor
    };
    let at = |t: DateTime<Utc>| {
        st.by_start
            .partition_point(|&i| st.data.conversations[i].start < t)
    };
    let (a, b) = (at(lower), at(end));
    a..b.max(a)
}

fn floor_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(ChronoDuration::days(1)).unwrap_or(t)
}

/// Activity during `[start, end)`: started before its end, and still going on or ended after
/// its start.
fn active_in(
    c: &SimConversation,
    vis: &Visibility,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> bool {
    c.start < end && (vis.is_open(c) || c.end > start)
}

/// The synchronous query's restriction: conversations that started on a UTC day the interval
/// touches (the interval's end is exclusive).
fn started_on_touched_days(c: &SimConversation, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    let first = floor_day(start);
    let after_last = floor_day(end - ChronoDuration::milliseconds(1)) + ChronoDuration::days(1);
    c.start >= first && c.start < after_last
}

pub(crate) fn details_query(st: &State, body: &[u8]) -> http::Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return bad("body is not valid JSON");
    };
    let Some((start, end)) = q
        .get("interval")
        .and_then(Value::as_str)
        .and_then(parse_interval)
    else {
        return bad("interval is required as ISO-8601 start/end");
    };
    if end - start > ChronoDuration::days(7) {
        return bad("Max interval is 7 days");
    }
    let max_age =
        ChronoDuration::from_std(st.cfg.sync_query_max_age).unwrap_or(ChronoDuration::days(35));
    if start < Utc::now() - max_age {
        return bad(&format!(
            "Interval start may be at most {} days in the past; use the analytics details jobs for older data",
            max_age.num_days()
        ));
    }
    let paging = q.get("paging");
    let page_size = paging
        .and_then(|p| p.get("pageSize"))
        .and_then(Value::as_u64)
        .unwrap_or(25);
    let page_number = paging
        .and_then(|p| p.get("pageNumber"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if page_size == 0 || page_size > st.cfg.max_page_size as u64 {
        return bad(&format!(
            "pageSize must be between 1 and {}",
            st.cfg.max_page_size
        ));
    }
    if page_number == 0 {
        return bad("pageNumber must be at least 1");
    }
    if page_number.saturating_mul(page_size) > st.cfg.max_query_results as u64 {
        return bad(&format!(
            "query results exceed the maximum of {}",
            st.cfg.max_query_results
        ));
    }
    let vis = st.visibility();
    let range = candidates(st, &vis, floor_day(start), start, end);
    let mut matched: Vec<&SimConversation> = st.by_start[range]
        .iter()
        .map(|&i| &st.data.conversations[i])
        .filter(|c| visible_match(c, &vis, &q))
        .filter(|c| active_in(c, &vis, start, end))
        .filter(|c| started_on_touched_days(c, start, end))
        .collect();
    if st.cfg.unordered_query_results {
        // Stable across pages, unrelated to start times.
        matched.sort_by_cached_key(|c| {
            use sha2::Digest as _;
            sha2::Sha256::digest(c.id.as_bytes())
        });
    } else if q.get("order").and_then(Value::as_str) == Some("desc") {
        matched.reverse();
    }
    let from = ((page_number - 1) * page_size) as usize;
    let page: Vec<Value> = matched
        .iter()
        .skip(from)
        .take(page_size as usize)
        .map(|c| conversation_json(c, &vis))
        .collect();
    let mut out = json!({"totalHits": matched.len()});
    if !page.is_empty() {
        out["conversations"] = Value::Array(page);
    }
    json_response(StatusCode::OK, &out)
}

/// `dataAvailabilityDate`: now minus the configured lag.
fn availability(st: &State) -> DateTime<Utc> {
    Utc::now() - ChronoDuration::from_std(st.cfg.data_lake_lag).unwrap_or_default()
}

pub(crate) fn job_availability(st: &State) -> http::Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"dataAvailabilityDate": rfc3339(availability(st))}),
    )
}

pub(crate) fn job_submit(st: &State, body: &[u8]) -> http::Response<Body> {
    let bad = |m: &str| api_error(StatusCode::BAD_REQUEST, "bad.request", m);
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return bad("body is not valid JSON");
    };
    if q.get("interval")
        .and_then(Value::as_str)
        .and_then(parse_interval)
        .is_none()
    {
        return bad("interval is required as ISO-8601 start/end");
    }
    let mut inner = st.lock();
    inner.counter += 1;
    let id = format!("job-a{:08x}-{}", inner.rng.next_u64() as u32, inner.counter);
    inner.analytics_jobs.insert(id.clone(), (q, Instant::now()));
    json_response(StatusCode::ACCEPTED, &json!({"jobId": id}))
}

pub(crate) fn job_status(st: &State, id: &str) -> http::Response<Body> {
    let Some((_, created)) = st.lock().analytics_jobs.get(id).cloned() else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "job not found");
    };
    let state = if created.elapsed() >= st.cfg.batch_ready_after {
        "FULFILLED"
    } else {
        "PENDING"
    };
    json_response(
        StatusCode::OK,
        &json!({"state": state, "submissionDate": rfc3339(Utc::now())}),
    )
}

pub(crate) fn job_results(
    st: &State,
    id: &str,
    query: &HashMap<String, String>,
) -> http::Response<Body> {
    let Some((q, created)) = st.lock().analytics_jobs.get(id).cloned() else {
        return api_error(StatusCode::NOT_FOUND, "not.found", "job not found");
    };
    if created.elapsed() < st.cfg.batch_ready_after {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "job is not fulfilled yet",
        );
    }
    let Some((start, end)) = q
        .get("interval")
        .and_then(Value::as_str)
        .and_then(parse_interval)
    else {
        return api_error(StatusCode::BAD_REQUEST, "bad.request", "bad interval");
    };
    let page_size = match query.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_JOB_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad.request",
                &format!("pageSize must be between 1 and {MAX_JOB_PAGE_SIZE}"),
            );
        }
    };
    let vis = st.visibility();
    let lake = availability(st);
    let range = candidates(st, &vis, DateTime::<Utc>::MIN_UTC, start, end);
    // The cursor (opaque to clients) is the position in start order where the next page
    // continues: a page costs its own conversations, not the whole interval's.
    let mut at = query
        .get("cursor")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0usize)
        .max(range.start);
    // Activity during the interval, as far as the data lake holds it: finished conversations
    // that ended before its availability date.
    let mut page: Vec<Value> = Vec::new();
    while at < range.end && page.len() < page_size {
        let c = &st.data.conversations[st.by_start[at]];
        at += 1;
        if visible_match(c, &vis, &q)
            && active_in(c, &vis, start, end)
            && !vis.is_open(c)
            && c.end <= lake
        {
            page.push(conversation_json(c, &vis));
        }
    }
    let mut out = json!({"conversations": page, "dataAvailabilityDate": rfc3339(lake)});
    if at < range.end {
        out["cursor"] = json!(at.to_string());
    }
    json_response(StatusCode::OK, &out)
}

/// Whether an audio recording was started: a voice conversation with recordings.
fn audio_recorded(c: &SimConversation) -> bool {
    c.session_media == "voice" && !c.recordings.is_empty()
}

/// A conversation as the analytics APIs describe it. Open conversations have no
/// `conversationEnd`; only voice sessions carry the (audio) `recording` flag.
pub(crate) fn conversation_json(c: &SimConversation, vis: &Visibility) -> Value {
    let mut customer = json!({"sessionId": format!("{}-s1", &c.id[..8]), "mediaType": c.session_media, "direction": c.direction});
    if audio_recorded(c) {
        customer["recording"] = json!(true);
    }
    if c.session_media == "voice" && !c.ani.is_empty() {
        customer["ani"] = json!(c.ani);
        customer["dnis"] = json!(c.dnis);
    }
    let mut agent = json!({"participantId": format!("{}-a", &c.id[..8]), "purpose": "agent", "sessions": [
        {"sessionId": format!("{}-s2", &c.id[..8]), "mediaType": c.session_media, "direction": c.direction,
         "segments": [{"segmentType": "interact", "queueId": c.queue_id}]}
    ]});
    if !c.user_id.is_empty() {
        agent["userId"] = json!(c.user_id);
    }
    // The wrap-up segment follows the conversation's end.
    if !vis.is_open(c) && !c.wrap_up_code.is_empty() {
        agent["sessions"][0]["segments"]
            .as_array_mut()
            .expect("segments")
            .push(json!({"segmentType": "wrapup", "queueId": c.queue_id, "wrapUpCode": c.wrap_up_code}));
    }
    let mut out = json!({
        "conversationId": c.id,
        "conversationStart": rfc3339(c.start),
        "originatingDirection": c.direction,
        "divisionIds": [c.division_id],
        "participants": [
            {"participantId": format!("{}-c", &c.id[..8]), "purpose": "customer", "sessions": [customer]},
            agent
        ]
    });
    if !vis.is_open(c) {
        out["conversationEnd"] = json!(rfc3339(c.end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_days_include_the_whole_first_and_last_day() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let conv = |start: &str| SimConversation {
            id: "c".repeat(36),
            start: t(start),
            end: t(start) + ChronoDuration::minutes(5),
            direction: "inbound".into(),
            session_media: "voice".into(),
            queue_id: String::new(),
            division_id: String::new(),
            recordings: vec![],
            ..SimConversation::default()
        };
        let (s, e) = (t("2026-11-02T10:00:00Z"), t("2026-11-03T00:00:00Z"));
        assert!(started_on_touched_days(&conv("2026-11-02T00:00:01Z"), s, e));
        assert!(started_on_touched_days(&conv("2026-11-02T23:59:59Z"), s, e));
        assert!(!started_on_touched_days(
            &conv("2026-11-01T23:59:59Z"),
            s,
            e
        ));
        assert!(
            !started_on_touched_days(&conv("2026-11-03T00:00:00Z"), s, e),
            "an end exactly at midnight does not touch the next day"
        );
    }
}
