//! Media downloads: signed URLs checked, bodies streamed from their seed, media faults applied.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;

use crate::content::{ContentGen, content_md5};
use crate::faults::Fault;
use crate::recording::{format_content_type, signed_resource};
use crate::signing;
use crate::state::{Body, State, api_error, full, has_two_files, md5_of, part_seed, query_map};

pub(crate) fn media_error(status: StatusCode, code: &str, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

pub(crate) enum BodyMode {
    Normal,
    Reset,
    Truncated,
    Corrupt,
    Slow(Duration),
    SlowReset(Duration),
}

pub(crate) async fn media(st: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let q = query_map(&req);
    let format = q.get("format").cloned().unwrap_or_default();
    let expires: i64 = q.get("X-Expires").and_then(|s| s.parse().ok()).unwrap_or(0);
    let sig = q.get("X-Signature").cloned().unwrap_or_default();
    if !signing::verify(&st.key, &signed_resource(&path, &format), expires, &sig) {
        st.lock().stats.media_requests += 1;
        return media_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature does not match.",
        );
    }
    if Utc::now().timestamp() > expires {
        st.lock().stats.media_requests += 1;
        return media_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    }
    // /media/{cid}/{rid} or /media/{cid}/{rid}/{part}
    let segs: Vec<&str> = path.trim_start_matches("/media/").split('/').collect();
    let (rid, part) = match segs.as_slice() {
        [_, rid] => (*rid, 0u32),
        [_, rid, part] => (*rid, part.parse().unwrap_or(u32::MAX)),
        _ => ("", 0),
    };
    let Some(&idx) = st.by_id.get(rid) else {
        return media_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if part > 1 || (part == 1 && !has_two_files(st, idx)) {
        return media_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    }
    let r = st.data.recordings[idx].clone();
    let Some(ct) = format_content_type(&format, &r) else {
        return media_error(StatusCode::BAD_REQUEST, "InvalidArgument", "unknown format");
    };
    let mode = {
        let mut inner = st.lock();
        inner.stats.media_requests += 1;
        let attempt = {
            let n = inner.media_attempts.entry(idx).or_insert(0);
            *n += 1;
            *n
        };
        let spec = st
            .cfg
            .faults
            .iter()
            .find(|f| f.recording == idx && f.times.is_none_or(|t| attempt <= t));
        let rates = st.cfg.rates;
        match spec.map(|s| s.fault) {
            Some(Fault::ExpiredUrl) => {
                return media_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
            }
            Some(Fault::ServerError) => {
                return media_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate.",
                );
            }
            Some(Fault::RateLimited) => {
                let mut resp = api_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too.many.requests.retry.after",
                    "Rate limit exceeded the maximum. Retry the request in [1] seconds",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
            Some(Fault::Reset) => BodyMode::Reset,
            Some(Fault::Truncated) => BodyMode::Truncated,
            Some(Fault::Corrupt) => BodyMode::Corrupt,
            Some(Fault::Slow(d)) => BodyMode::Slow(d),
            Some(Fault::SlowReset(d)) => BodyMode::SlowReset(d),
            Some(Fault::Archived | Fault::TwoFiles | Fault::SecondFileFailed) | None => {
                if rates.media_5xx > 0.0 && inner.rng.unit() < rates.media_5xx {
                    return media_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Please reduce your request rate.",
                    );
                } else if rates.media_reset > 0.0 && inner.rng.unit() < rates.media_reset {
                    BodyMode::Reset
                } else if rates.media_corrupt > 0.0 && inner.rng.unit() < rates.media_corrupt {
                    BodyMode::Corrupt
                } else {
                    BodyMode::Normal
                }
            }
        }
    };
    let etag = st.cfg.media_etag.then(|| {
        if part == 0 {
            hex::encode(md5_of(st, idx))
        } else {
            hex::encode(content_md5(
                r.body_kind(),
                part_seed(r.body_seed, part),
                r.size,
            ))
        }
    });
    if req.method() == Method::HEAD {
        let mut resp = Response::new(full(Bytes::new()));
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(r.size));
        return resp;
    }
    let size = r.size;
    let half = size / 2;
    let cgen = ContentGen::new(r.body_kind(), part_seed(r.body_seed, part), size);
    let watch = st.media_watch.clone();
    // Media bodies finished when this one's headers were sent.
    let finished_at_open = watch.finished.load(SeqCst);
    let stream = futures::stream::unfold((cgen, 0u64, mode), move |(mut cgen, pos, mode)| {
        let watch = watch.clone();
        async move {
            if let BodyMode::Slow(d) | BodyMode::SlowReset(d) = mode {
                tokio::time::sleep(d).await;
            }
            let limit = match mode {
                BodyMode::Reset | BodyMode::Truncated | BodyMode::SlowReset(_) => half,
                _ => u64::MAX,
            };
            if pos >= limit && pos < size {
                return match mode {
                    BodyMode::Reset | BodyMode::SlowReset(_) => Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "simulated connection reset",
                        )),
                        (cgen, size, BodyMode::Normal),
                    )),
                    _ => None,
                };
            }
            let mut chunk = cgen.next_chunk()?;
            let end = pos + chunk.len() as u64;
            if end > limit {
                chunk.truncate((limit - pos) as usize);
            }
            if matches!(mode, BodyMode::Corrupt) && pos <= half && half < end {
                let mut v = chunk.to_vec();
                let at = (half - pos) as usize;
                if at < v.len() {
                    v[at] ^= 0xFF;
                }
                chunk = Bytes::from(v);
            }
            let next = pos + chunk.len() as u64;
            if next == size {
                // The last bytes (the server stops at `Content-Length`, not at the end of
                // the stream).
                let overlap = watch.finished.fetch_add(1, SeqCst) - finished_at_open;
                watch.overlap.fetch_max(overlap, SeqCst);
            }
            Some((Ok(Frame::data(chunk)), (cgen, next, mode)))
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Some(e) = etag
        && let Ok(v) = HeaderValue::from_str(&format!("\"{e}\""))
    {
        h.insert(header::ETAG, v);
    }
    st.lock().stats.media_bytes += size;
    resp
}
