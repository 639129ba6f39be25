//! The OAuth login host: `POST /oauth/token` (client credentials) and its injected faults.

use std::time::Instant;

use base64::Engine as _;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use crate::state::{Body, State, TokenInfo, api_error, full, json_response, read_body};

pub(crate) async fn token(st: &State, req: Request<Incoming>) -> Response<Body> {
    let fault = {
        let mut inner = st.lock();
        inner.stats.token_requests += 1;
        if inner.login_outage {
            Some(503)
        } else {
            let f = st.cfg.login_faults.get(inner.login_faults_served).copied();
            if f.is_some() {
                inner.login_faults_served += 1;
            }
            f
        }
    };
    if let Some(status) = fault {
        return login_fault(status);
    }
    if req.method() != Method::POST {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method.not.allowed",
            "POST only",
        );
    }
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let grant = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    let auth_err = |status, error: &str, desc: &str| {
        json_response(
            status,
            &json!({"error": error, "description": desc, "error_description": desc}),
        )
    };
    if grant.as_deref() != Some("client_credentials") {
        return auth_err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let expected = format!("{}:{}", st.cfg.client_id, st.cfg.client_secret);
    if creds.as_deref() != Some(expected.as_str()) {
        return auth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let mut inner = st.lock();
    inner.counter += 1;
    let tok = format!("simtok-{:016x}-{}", inner.rng.next_u64(), inner.counter);
    inner.tokens.insert(
        tok.clone(),
        TokenInfo {
            expires: Instant::now() + st.cfg.token_ttl,
            uses: 0,
        },
    );
    json_response(
        StatusCode::OK,
        &json!({"access_token": tok, "token_type": "bearer", "expires_in": st.cfg.token_ttl.as_secs()}),
    )
}

/// A login host having a bad moment: 429 with `Retry-After` and a JSON body, anything else
/// with the plain HTML page a load balancer sends.
pub(crate) fn login_fault(status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let mut r = api_error(
            status,
            "too.many.requests.retry.after",
            "Rate limit exceeded the maximum. Retry the request in [1] seconds",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let mut r = Response::new(full(format!(
        "<html><body><h1>{} {}</h1></body></html>",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}
