//! The API's routes: which handler answers which authorized `/api/v2/...` request. A POST's
//! body is read here, once, and each routed request is captured when
//! [`crate::SimConfig::capture_requests`] asks for it.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::analytics;
use crate::orphans;
use crate::recording::{
    batch_status, batch_submit, compat_list, compat_one, recording_get, recording_metadata,
};
use crate::retention;
use crate::state::{Body, State, api_error, query_map, read_body};

pub(crate) async fn api_route(st: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = query_map(&req);
    let query_string = req.uri().query().map(str::to_string);
    let body = if method == Method::POST || method == Method::PUT {
        match read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    } else {
        Bytes::new()
    };
    if let Some(c) = &st.capture {
        c.record(&method, &path, query_string.as_deref(), &body);
    }
    let segs: Vec<&str> = path.trim_start_matches("/api/v2/").split('/').collect();
    match (&method, segs.as_slice()) {
        (&Method::POST, ["analytics", "conversations", "details", "query"]) => {
            {
                let mut inner = st.lock();
                inner.details_queries += 1;
                let n = inner.details_queries;
                let due: Vec<String> = inner
                    .reveal_at_query
                    .iter()
                    .filter(|(at, _)| *at <= n)
                    .flat_map(|(_, ids)| ids.clone())
                    .collect();
                inner.reveal_at_query.retain(|(at, _)| *at > n);
                for id in due {
                    inner.hidden.remove(&id);
                }
            }
            analytics::details_query(st, &body)
        }
        (&Method::POST, ["analytics", "conversations", "details", "jobs"]) => {
            analytics::job_submit(st, &body)
        }
        (
            &Method::GET,
            [
                "analytics",
                "conversations",
                "details",
                "jobs",
                "availability",
            ],
        ) => analytics::job_availability(st),
        (&Method::GET, ["analytics", "conversations", "details", "jobs", id]) => {
            analytics::job_status(st, id)
        }
        (
            &Method::GET,
            [
                "analytics",
                "conversations",
                "details",
                "jobs",
                id,
                "results",
            ],
        ) => analytics::job_results(st, id, &query),
        (&Method::GET, ["conversations", cid, "recordingmetadata"]) => recording_metadata(st, cid),
        (&Method::GET, ["conversations", cid, "recordings", rid]) => {
            recording_get(st, cid, rid, &query)
        }
        (&Method::PUT, ["conversations", cid, "recordings", rid]) => {
            crate::release::put_recording(st, cid, rid, &query, &body)
        }
        (&Method::POST, ["recordings", "deletionprotection"]) => {
            crate::release::protected(st, &body)
        }
        (&Method::POST, ["recording", "batchrequests"]) => batch_submit(st, &body),
        (&Method::GET, ["recording", "batchrequests", id]) => batch_status(st, id),
        (&Method::GET, ["recordings", "recordings"]) => compat_list(st, &query),
        (&Method::GET, ["recordings", "retention", "query"]) => retention::query(st, &query),
        (&Method::GET, ["authorization", "divisionspermitted", "paged", "me"]) => {
            crate::recording::divisions_permitted(st, &query)
        }
        (&Method::GET, ["orphanrecordings"]) => orphans::list(st, &query),
        (&Method::GET, ["orphanrecordings", id]) => orphans::one(st, id),
        (&Method::GET, ["orphanrecordings", id, "media"]) => orphans::media(st, id, &query),
        (&Method::GET, ["recordings", "recordings", id]) => compat_one(st, id),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "not.found",
            "The requested resource was not found.",
        ),
    }
}
