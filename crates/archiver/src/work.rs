//! One recording's way through the workers: the item a worker takes ([`Ready`]), what its
//! work came to ([`Outcome`]), why an attempt failed ([`AttemptError`]), and what every worker
//! shares ([`Shared`]).

use std::sync::Arc;
use std::time::Duration;

use genesys_media::{DiscoveredRecording, GenesysClient};
use sink::ObjectSink;

use crate::config::ArchiverConfig;
use crate::events::EventHandler;
pub(crate) enum Outcome {
    Archived {
        size: u64,
    },
    Skipped,
    Unavailable(String),
    /// Reason, integrity (quarantine), attempts made.
    Failed(String, bool, u32),
    Quarantined(String),
    Busy,
    Interrupted,
    /// Failed, and the ledger has no row saying so (see [`Summary::unrecorded`]).
    Unrecorded(String),
    /// The URL was refused (403) or grew too old: the claim was given back and the recording
    /// waits for a fresh URL with others ([`crate::refresh`]); `refreshes` so far.
    NeedsUrl {
        refreshes: u32,
        attempts: u32,
    },
}

/// A recording ready for a worker.
pub(crate) struct Ready {
    pub(crate) rec: DiscoveredRecording,
    /// When its URL was received.
    pub(crate) received_at: tokio::time::Instant,
    /// URL refreshes it had (bounded by `max_url_refreshes`).
    pub(crate) refreshes: u32,
    /// Download attempts it had before (a refresh does not reset them).
    pub(crate) attempts: u32,
    /// Its URL was just refreshed: use it, do not check its age.
    pub(crate) refreshed: bool,
    /// Refreshing failed for good: record this failure under a claim.
    pub(crate) fail_with: Option<String>,
}

/// Why one attempt failed, in the classification the retry table uses.
pub(crate) enum AttemptError {
    /// 403 on the media URL: refresh it.
    Forbidden(String),
    /// 429: wait this long.
    Throttled(Duration, String),
    /// 5xx, transport, body broken mid-stream, store hiccup: back off.
    Temporary(String),
    /// MD5 or length mismatch; what was written is gone.
    Integrity(String),
    /// Someone else stored it meanwhile.
    AlreadyExists,
    /// Any other 4xx, refused URL, bad data: no retry.
    Permanent(String),
}

pub(crate) struct Shared {
    pub(crate) client: GenesysClient,
    pub(crate) sink: Arc<dyn ObjectSink>,
    pub(crate) cfg: ArchiverConfig,
    pub(crate) events: Arc<dyn EventHandler>,
    /// Throttles, 5xx answers and timeouts met so far (from the store or the source): the
    /// worker limit backs off when it grows.
    pub(crate) pushback: std::sync::atomic::AtomicU64,
}
