//! Request capture ([`crate::SimConfig::capture_requests`]): the API requests the simulator
//! routes, appended to a file as JSON lines, so that a contract test can check what a client
//! sent (its request bodies against the SDK's request models, its query parameters against
//! the operations') after the client has run.
//!
//! One line per request that passed authentication and the rate limit, in the order they
//! were routed: `{"method":"POST","path":"/api/v2/...","query":"a=b","body":{...}}`. `query`
//! is left out when there is none; `body` is there when the request had one, as JSON when it
//! parses as JSON, else as `bodyText` (a string, lossily decoded). Token requests are not
//! written (their body only names the grant; the credentials are in a header, never written).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use http::Method;
use serde_json::{Value, json};

/// An open capture file.
pub(crate) struct Capture {
    file: Mutex<File>,
}

impl Capture {
    /// Opens `path` for appending, creating it if needed.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends one request. A failed write is logged, never fails the request.
    pub(crate) fn record(&self, method: &Method, path: &str, query: Option<&str>, body: &[u8]) {
        let mut line = json!({"method": method.as_str(), "path": path});
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            line["query"] = json!(q);
        }
        if !body.is_empty() {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => line["body"] = v,
                Err(_) => line["bodyText"] = json!(String::from_utf8_lossy(body)),
            }
        }
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "simulator: cannot write a captured request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_request() {
        let dir = std::env::temp_dir().join(format!("sim-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("requests.jsonl");
        let _ = std::fs::remove_file(&path);
        let c = Capture::open(&path).unwrap();
        c.record(&Method::POST, "/api/v2/x", None, br#"{"a":1}"#);
        c.record(&Method::GET, "/api/v2/y", Some("pageSize=1"), b"");
        c.record(&Method::POST, "/api/v2/z", Some(""), b"not json");
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![
                json!({"method": "POST", "path": "/api/v2/x", "body": {"a": 1}}),
                json!({"method": "GET", "path": "/api/v2/y", "query": "pageSize=1"}),
                json!({"method": "POST", "path": "/api/v2/z", "bodyText": "not json"}),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
