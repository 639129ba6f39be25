//! Prometheus metrics, `/healthz` and `/readyz` for the daemon (prometheus-client + hyper).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use archiver::Event;
use bytes::Bytes;
use genesys_media::GenesysClient;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    endpoint: String,
    status: String,
}

/// API counter values already added: calls by (endpoint, status), token requests, token
/// failures.
type ApiSeen = (HashMap<(String, u16), u64>, u64, u64);

/// The daemon's metrics, fed by archiver events and the API client's counters.
pub(crate) struct Metrics {
    registry: Registry,
    recordings: Family<OutcomeLabel, Counter>,
    bytes: Counter,
    retries: Counter,
    in_flight: Gauge,
    upload_seconds: Histogram,
    api_calls: Family<CallLabel, Counter>,
    token_requests: Counter,
    token_failures: Counter,
    polls: Counter,
    poll_failures: Counter,
    clock_jumps: Counter,
    rechecks: Counter,
    late_files: Counter,
    orphans: Gauge,
    inventory_missing: Gauge,
    released: Counter,
    release_at_risk: Gauge,
    last_poll_calls: Gauge,
    pending: Gauge,
    chunk_conversations: Gauge,
    started: Mutex<HashMap<String, Instant>>,
    api_seen: Mutex<ApiSeen>,
    ready: AtomicBool,
    client: GenesysClient,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Limits of the metrics server (see [`Metrics::serve_within`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) connection_lifetime: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 32,
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(120),
        }
    }
}

impl Metrics {
    pub(crate) fn new(client: GenesysClient) -> Arc<Self> {
        let mut registry = Registry::with_prefix("genesys_archiver");
        let recordings = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "recordings",
            "Recordings by outcome (archived, skipped, failed, quarantined, unavailable)",
            recordings.clone(),
        );
        let bytes = Counter::default();
        registry.register("bytes", "Bytes stored and verified", bytes.clone());
        let retries = Counter::default();
        registry.register(
            "retries",
            "Attempts that failed and were retried",
            retries.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "Recordings being downloaded and uploaded now (the work queue's depth)",
            in_flight.clone(),
        );
        let upload_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "upload_seconds",
            "Time from the first attempt to a verified object",
            upload_seconds.clone(),
        );
        let api_calls = Family::<CallLabel, Counter>::default();
        registry.register(
            "api_calls",
            "Genesys Cloud API calls by endpoint and HTTP status (429 = throttled)",
            api_calls.clone(),
        );
        let token_requests = Counter::default();
        registry.register(
            "token_requests",
            "OAuth token requests (initial and refreshes)",
            token_requests.clone(),
        );
        let token_failures = Counter::default();
        registry.register(
            "token_request_failures",
            "OAuth token requests that got no token (login host down or throttled, credentials refused)",
            token_failures.clone(),
        );
        let polls = Counter::default();
        registry.register("polls", "Completed discovery polls", polls.clone());
        let poll_failures = Counter::default();
        registry.register(
            "poll_failures",
            "Polls whose window was not reconciled (discovery stopped early, a part could not be listed, or shutdown); the next poll reads it again",
            poll_failures.clone(),
        );
        let last_poll_calls = Gauge::default();
        registry.register(
            "last_poll_api_calls",
            "Genesys API calls the last poll spent (a poll with nothing new spends only analytics pages)",
            last_poll_calls.clone(),
        );
        let clock_jumps = Counter::default();
        registry.register(
            "clock_jumps",
            "Times this machine's clock disagreed with elapsed time or with the source's clock by more than overlap plus settle",
            clock_jumps.clone(),
        );
        let rechecks = Counter::default();
        registry.register(
            "late_window_rechecks",
            "Conversations resolved again once their late window passed (files can reach a conversation after it ended)",
            rechecks.clone(),
        );
        let late_files = Counter::default();
        registry.register(
            "late_files",
            "Files a late-window recheck found that the conversation's earlier resolution did not list",
            late_files.clone(),
        );
        let orphans = Gauge::default();
        registry.register(
            "orphan_recordings",
            "Recordings not attached to any conversation (cannot be archived until re-attached), as of the last inventory audit",
            orphans.clone(),
        );
        let inventory_missing = Gauge::default();
        registry.register(
            "inventory_missing_recordings",
            "Recordings the source retains that the archive lacked at the last inventory audit (then archived, or failed into the ledger)",
            inventory_missing.clone(),
        );
        let released = Counter::default();
        registry.register(
            "released_recordings",
            "Recording files whose delete date the source confirmed (release at the source; --release-after)",
            released.clone(),
        );
        let release_at_risk = Gauge::default();
        registry.register(
            "release_at_risk_recordings",
            "Recordings a release was recorded for (a delete date may stand at the source) whose copy was not proven at the last release run: restore the copy or undo the release",
            release_at_risk.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "pending_recordings",
            "Conversations in progress and recordings not uploaded yet, as of the last poll",
            pending.clone(),
        );
        let chunk_conversations = Gauge::default();
        registry.register(
            "shared_conversations_waiting",
            "Scale-out: conversations listed into chunks in the ledger and not archived yet, as of the last poll",
            chunk_conversations.clone(),
        );
        Arc::new(Self {
            registry,
            recordings,
            bytes,
            retries,
            in_flight,
            upload_seconds,
            api_calls,
            token_requests,
            token_failures,
            polls,
            poll_failures,
            clock_jumps,
            rechecks,
            late_files,
            orphans,
            inventory_missing,
            released,
            release_at_risk,
            last_poll_calls,
            pending,
            chunk_conversations,
            started: Mutex::new(HashMap::new()),
            api_seen: Mutex::new((HashMap::new(), 0, 0)),
            ready: AtomicBool::new(false),
            client,
        })
    }

    fn outcome(&self, outcome: &str) {
        self.recordings
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    fn finished(&self, recording_id: &str) -> Option<Instant> {
        let t = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(recording_id);
        if t.is_some() {
            self.in_flight.dec();
        }
        t
    }

    /// Updates the metrics from one event.
    pub(crate) fn observe(&self, e: &Event) {
        match e {
            Event::Started {
                recording_id,
                attempt: 1,
                ..
            } => {
                let mut s = self.started.lock().unwrap_or_else(|p| p.into_inner());
                if s.insert(recording_id.clone(), Instant::now()).is_none() {
                    self.in_flight.inc();
                }
            }
            Event::Retrying { .. } => {
                self.retries.inc();
            }
            Event::Archived {
                recording_id, size, ..
            } => {
                self.outcome("archived");
                self.bytes.inc_by(*size);
                if let Some(t) = self.finished(recording_id) {
                    self.upload_seconds.observe(t.elapsed().as_secs_f64());
                }
            }
            Event::Skipped { recording_id, .. } => {
                self.outcome("skipped");
                self.finished(recording_id);
            }
            Event::Failed { recording_id, .. } => {
                self.outcome("failed");
                self.finished(recording_id);
            }
            Event::Quarantined { .. } => self.outcome("quarantined"),
            Event::Unavailable { recording_id, .. } => {
                self.outcome("unavailable");
                self.finished(recording_id);
            }
            Event::Polled {
                checkpoint_advanced,
                pending,
                api_calls,
                rechecked,
                late_files,
                ..
            } => {
                self.polls.inc();
                self.rechecks.inc_by(*rechecked);
                self.late_files.inc_by(*late_files);
                self.last_poll_calls
                    .set(i64::try_from(api_calls.values().sum::<u64>()).unwrap_or(i64::MAX));
                if !checkpoint_advanced {
                    self.poll_failures.inc();
                }
                self.pending
                    .set(i64::try_from(*pending).unwrap_or(i64::MAX));
                self.ready.store(*checkpoint_advanced, Ordering::Relaxed);
            }
            Event::Inventory {
                orphans, missing, ..
            } => {
                self.orphans
                    .set(i64::try_from(*orphans).unwrap_or(i64::MAX));
                self.inventory_missing
                    .set(i64::try_from(*missing).unwrap_or(i64::MAX));
            }
            Event::Release {
                released,
                at_risk,
                error,
                ..
            } => {
                self.released.inc_by(*released);
                // A failed run found nothing out: the last known count stays.
                if error.is_none() {
                    self.release_at_risk
                        .set(i64::try_from(*at_risk).unwrap_or(i64::MAX));
                }
            }
            Event::ClockJump { .. } => {
                self.clock_jumps.inc();
            }
            Event::SharedWork {
                listed,
                conversations,
                rechecked,
                late_files,
                ..
            } => {
                self.rechecks.inc_by(*rechecked);
                self.late_files.inc_by(*late_files);
                self.chunk_conversations
                    .set(i64::try_from(*conversations).unwrap_or(i64::MAX));
                // Another instance lists: this one is ready once it has worked what was due.
                if !listed {
                    self.ready.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Brings the API counters up to the client's totals.
    fn sync_api(&self) {
        let snap = self.client.metrics().snapshot();
        let mut seen = self.api_seen.lock().unwrap_or_else(|p| p.into_inner());
        for ((endpoint, status), n) in &snap.calls {
            let prev = seen.0.insert((endpoint.clone(), *status), *n).unwrap_or(0);
            if *n > prev {
                self.api_calls
                    .get_or_create(&CallLabel {
                        endpoint: endpoint.clone(),
                        status: status.to_string(),
                    })
                    .inc_by(n - prev);
            }
        }
        if snap.token_requests > seen.1 {
            self.token_requests.inc_by(snap.token_requests - seen.1);
            seen.1 = snap.token_requests;
        }
        if snap.token_failures > seen.2 {
            self.token_failures.inc_by(snap.token_failures - seen.2);
            seen.2 = snap.token_failures;
        }
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        self.sync_api();
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Serves `/metrics`, `/healthz` (alive) and `/readyz` (the last poll completed) on
    /// `addr` until the process ends, within [`ServeLimits::default`]. Binding errors are
    /// returned at once.
    pub(crate) async fn serve(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        self.serve_within(addr, ServeLimits::default()).await
    }

    /// [`Self::serve`] with explicit limits: connections beyond `max_connections` are closed at
    /// once, a request head not read within `header_read_timeout` closes its connection, and
    /// no connection lives longer than `connection_lifetime`. A scraper is one connection
    /// every few seconds; these keep a slow or hostile client from tying up the daemon.
    pub(crate) async fn serve_within(
        self: Arc<Self>,
        addr: SocketAddr,
        limits: ServeLimits,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "metrics server at its connection limit; closing a connection");
                    drop(stream);
                    continue;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let me = me.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(me.respond(req.uri().path()))
                            }
                        });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout)
                        .max_buf_size(16 * 1024)
                        .serve_connection(io, svc);
                    let _ = tokio::time::timeout(limits.connection_lifetime, conn).await;
                });
            }
        });
        Ok(bound)
    }

    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, ctype, body) = match path {
            "/metrics" => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.render(),
            ),
            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, "text/plain", "ready\n".to_string())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: no poll has completed since the last failure\n".to_string(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_string(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    fn metrics() -> Arc<Metrics> {
        let cfg = genesys_media::ClientConfig::new(
            genesys_media::Environment::from_base_url("http://127.0.0.1:9").unwrap(),
            "id",
            "secret",
        );
        Metrics::new(GenesysClient::new(cfg).unwrap())
    }

    /// Whether the server closes `s` within `within` (EOF or reset), sending nothing else.
    async fn closed(s: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(within, s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A client that sends half a request head and waits (slowloris) is cut off after the
    /// header read timeout; one connection too many is closed at once; the server still
    /// answers once they are gone.
    #[tokio::test]
    async fn slow_and_excess_connections_are_cut_off() {
        let limits = ServeLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_millis(300),
            connection_lifetime: Duration::from_secs(30),
        };
        let addr = metrics()
            .serve_within("127.0.0.1:0".parse().unwrap(), limits)
            .await
            .unwrap();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            slow.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        assert!(
            closed(&mut extra, Duration::from_secs(2)).await,
            "a connection beyond the limit is closed"
        );
        for s in &mut slow {
            assert!(
                closed(s, Duration::from_secs(3)).await,
                "an unfinished request head is cut off after the header read timeout"
            );
        }
        drop(slow);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    }
}
