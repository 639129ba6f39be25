//! What the continuous-mode test files share: a simulator of the last two hours, a client of
//! it, and a rig of client, directory store and in-memory ledger.
// Each test file uses a part of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use archiver::{ArchiverConfig, Ledger};
use chrono::Utc;
use genesys_media::GenesysClient;
use genesys_sim::{SimConfig, SimHandle, Simulator};
use sink::{LocalDirSink, ObjectSink};
use test_support::sim_client;

pub(crate) async fn recent_sim() -> SimHandle {
    // Conversations over the last two hours, so "now" is just after the data.
    Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        recordings: 24,
        start: Utc::now() - chrono::Duration::hours(2),
        span: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

pub(crate) fn client(s: &SimHandle) -> GenesysClient {
    sim_client(s, |c| c.poll_initial = Duration::from_millis(100))
}

/// A client of the simulator, a fresh directory store and an in-memory ledger.
pub(crate) struct Rig {
    pub(crate) c: GenesysClient,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) sink: Arc<dyn ObjectSink>,
    pub(crate) ledger: Ledger,
    pub(crate) cfg: ArchiverConfig,
}

pub(crate) fn rig(s: &SimHandle) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::in_memory().unwrap();
    Rig {
        c: client(s),
        sink: Arc::new(LocalDirSink::new(dir.path())),
        _dir: dir,
        cfg: ArchiverConfig {
            ledger: Some(ledger.clone()),
            ..ArchiverConfig::default()
        },
        ledger,
    }
}

/// `c` giving up on a failing source after 300 ms (an outage fails the poll quickly).
pub(crate) fn impatient(c: &GenesysClient) -> GenesysClient {
    let mut cfg = c.config().clone();
    cfg.retry.max_elapsed = Duration::from_millis(300);
    cfg.retry.base_delay = Duration::from_millis(10);
    GenesysClient::new(cfg).unwrap()
}

/// An event handler keeping what `pick` returns for each event.
pub(crate) fn collect<T: Send + 'static>(
    pick: impl Fn(&archiver::Event) -> Option<T> + Send + Sync + 'static,
) -> (
    Arc<std::sync::Mutex<Vec<T>>>,
    Arc<dyn archiver::EventHandler>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let handler = Arc::new(move |e: &archiver::Event| {
        if let Some(v) = pick(e) {
            keep.lock().unwrap().push(v);
        }
    });
    (seen, handler)
}
