//! A minimal HTTP client of the simulator for its own tests: a token, JSON GETs and POSTs, and
//! media downloads, over hyper.

#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use genesys_sim::{SimConfig, SimHandle, Simulator};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Starts the simulator on a free port of 127.0.0.1.
pub async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(SimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..cfg
    })
    .await
    .expect("the simulator starts")
}

/// An answer: status, headers and the body (JSON, or `Null` if it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub bytes: Bytes,
}

/// A client holding one access token.
pub struct Api {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// Gets a token with the simulator's client credentials.
    pub async fn new(sim: &SimHandle) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let cfg = sim.config();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cfg.client_id, cfg.client_secret));
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/oauth/token", sim.base_url()))
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials",
            )))
            .unwrap();
        let a = send(&client, req).await;
        assert_eq!(a.status, StatusCode::OK, "token: {:?}", a.json);
        let token = a.json["access_token"]
            .as_str()
            .expect("a token")
            .to_string();
        Self {
            base: sim.base_url().to_string(),
            token,
            client,
        }
    }

    /// `GET {base}{path}` with the token.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// `POST {base}{path}` with a JSON body and the token.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT {base}{path}` with a JSON body and the token.
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let bytes = body
            .map(|v| serde_json::to_vec(v).unwrap())
            .unwrap_or_default();
        send(&self.client, b.body(Full::new(Bytes::from(bytes))).unwrap()).await
    }

    /// Downloads an absolute (media) URL without the token.
    pub async fn download(&self, url: &str) -> Answer {
        let req = Request::builder()
            .uri(url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(&self.client, req).await
    }

    /// Submits a batch request and polls it until `Completed`; the final status.
    pub async fn batch(&self, items: Value) -> Value {
        let id = self.submit(items).await;
        for _ in 0..200 {
            let s = self
                .get(&format!("/api/v2/recording/batchrequests/{id}"))
                .await;
            assert_eq!(s.status, StatusCode::OK);
            if s.json["status"] == "Completed" {
                return s.json;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("batch request {id} never completed");
    }

    /// Submits a batch request; its job id.
    pub async fn submit(&self, items: Value) -> String {
        let a = self
            .post(
                "/api/v2/recording/batchrequests",
                &serde_json::json!({ "batchDownloadRequestList": items }),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        a.json["id"].as_str().expect("a job id").to_string()
    }
}

async fn send(client: &Client<HttpConnector, Full<Bytes>>, req: Request<Full<Bytes>>) -> Answer {
    let resp = client.request(req).await.expect("the simulator answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
        bytes,
    }
}

/// The recording ids of a batch status's results (with a `resultUrl`).
pub fn downloadable(status: &Value) -> Vec<String> {
    status["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r.get("resultUrl").is_some())
        .map(|r| r["recordingId"].as_str().unwrap().to_string())
        .collect()
}

/// The recording ids `recordingmetadata` lists for a conversation, with their `fileState`.
pub async fn metadata(api: &Api, cid: &str) -> Vec<(String, String)> {
    let a = api
        .get(&format!("/api/v2/conversations/{cid}/recordingmetadata"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    a.json
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["fileState"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every recording id the retention query lists (threshold `days`), following `nextUri`
/// with pages of `page_size`; and the number of pages.
pub async fn retention_ids(api: &Api, days: u32, page_size: usize) -> (Vec<String>, usize) {
    let mut next = Some(format!(
        "/api/v2/recordings/retention/query?retentionThresholdDays={days}&pageSize={page_size}"
    ));
    let (mut ids, mut pages) = (Vec::new(), 0);
    while let Some(uri) = next.take() {
        let a = api.get(&uri).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {:?}", a.json);
        assert!(
            a.json.get("cursor").is_none(),
            "the real listing has no cursor field"
        );
        let entities = a.json["entities"].as_array().expect("entities");
        assert!(entities.len() <= page_size);
        ids.extend(
            entities
                .iter()
                .map(|e| e["recordingId"].as_str().unwrap().to_string()),
        );
        pages += 1;
        next = a
            .json
            .get("nextUri")
            .and_then(Value::as_str)
            .map(str::to_string);
        assert!(pages < 10_000, "paging does not end");
    }
    (ids, pages)
}

/// Sleeps until the real clock passes `t`.
pub async fn sleep_until(t: chrono::DateTime<chrono::Utc>) {
    let left = (t - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
}
