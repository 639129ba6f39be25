//! The settings of continuous mode (the poll loop and scale-out), why it stops, and the
//! backoff of failed rows: what `continuous.rs` and `scale_out.rs` both read.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ledger::LedgerError;

/// Settings of the poll loop.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Where the first poll starts when the ledger has no checkpoint yet.
    pub start: DateTime<Utc>,
    /// Time between the starts of two polls.
    pub interval: Duration,
    /// Each poll starts this long before the checkpoint, so recordings that appear late at
    /// the source (analytics data can lag) are still found; ones already archived are
    /// skipped by the ledger without a request.
    pub overlap: Duration,
    /// Every this many polls one reads back the whole `overlap` (a *sweep*); the polls between
    /// read back only `recent_overlap`. A sweep reaches `overlap` behind the previous sweep's
    /// checkpoint, so data late by up to `overlap` is still found, at most `sweep_every` polls
    /// later, for a fraction of the pages. Both the previous sweep's checkpoint and the polls
    /// since are kept in the ledger: the cadence holds across restarts, `--once` runs and
    /// instances. `1`: every poll reads the whole overlap.
    pub sweep_every: u32,
    /// How far the polls between sweeps read back before the checkpoint (analytics data
    /// late by less than this is found by the next poll).
    pub recent_overlap: Duration,
    /// Each poll ends this long before now (conversations still in progress are not final).
    pub settle: Duration,
    /// Name of the checkpoint in the ledger (one per source configuration).
    pub checkpoint: String,
    /// Ledger rows with status `failed` are retried with backoff (the poll interval, doubling
    /// per attempt, at most [`MAX_RETRY_BACKOFF`]) until they have this many attempts; then
    /// they are given up: put in quarantine with the reason, where `quarantine list` shows
    /// them and `quarantine retry` releases them.
    pub retry_failed_below_attempts: u32,
    /// Stop after this many polls (tests, `--once`); `None` runs until shutdown.
    pub max_polls: Option<u64>,
    /// Write the chain-of-custody index under this prefix ([`crate::write_index`]): after the
    /// first poll, then after the first poll of each new UTC day. `None`: no index.
    pub index_prefix: Option<String>,
    /// Share the work with other instances on the same ledger ([`ScaleOut`]): one lists
    /// each window, all resolve and archive the chunks it lists. `None`: this instance lists
    /// and resolves everything itself.
    pub scale_out: Option<ScaleOut>,
    /// Defer a poll's last batch of fewer than 100 conversations until its oldest one ended
    /// this long ago ([`genesys_media::DiscoveryQuery::partial_batch_wait`]): a quiet org's
    /// polls then share batch download jobs instead of spending one each, for recordings
    /// archived up to this much later. Deferred conversations are reported pending and kept
    /// in the ledger (checkpoint entry `<checkpoint>.waiting`, without phone numbers unless
    /// `keep_phone_numbers`), not behind a held checkpoint: each poll resolves them with its
    /// own or lets them wait again, also after the setting is turned off. `None`: every poll
    /// resolves what it found. Not used with `scale_out` (the listing's chunks are resolved
    /// as they are).
    pub batch_wait: Option<Duration>,
    /// Run the inventory audit ([`crate::audit_inventory`]) this often (the listing
    /// instance, after its poll) and archive what it finds missing; `None`: never.
    pub inventory_every: Option<Duration>,
    /// With the audit: archive the orphans' own media too ([`crate::archive_orphans`]).
    pub archive_orphans: bool,
    /// Release at the source after each poll ([`crate::release`], the listing instance, after
    /// the index is written) with this policy; its `limit` bounds each poll's delete dates,
    /// so releasing never holds up the polls for long. `None`: never.
    pub release: Option<crate::ReleasePolicy>,
    /// Signs the index parts the daemon writes (with `index_prefix`).
    pub index_signer: Option<Arc<crate::IndexSigner>>,
    /// Also keeps the digest of each part the daemon writes here, outside the bucket; a part
    /// whose anchor could not be written is anchored again at the next poll.
    pub index_anchor: Option<crate::IndexAnchor>,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            start: Utc::now() - chrono::Duration::days(1),
            interval: Duration::from_secs(300),
            overlap: Duration::from_secs(3600),
            sweep_every: 6,
            recent_overlap: Duration::from_secs(300),
            settle: Duration::from_secs(60),
            checkpoint: "discovery".into(),
            retry_failed_below_attempts: 20,
            max_polls: None,
            index_prefix: None,
            scale_out: None,
            batch_wait: None,
            inventory_every: None,
            archive_orphans: false,
            release: None,
            index_signer: None,
            index_anchor: None,
        }
    }
}

/// Why continuous mode stopped without a shutdown request.
#[derive(Debug, thiserror::Error)]
pub enum ContinuousError {
    /// Continuous mode keeps its checkpoint in the ledger; there was none.
    #[error("continuous mode needs a ledger (it keeps the discovery checkpoint there)")]
    NoLedger,
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The source refused the credentials or the region (not transient).
    #[error("the source refused the configuration: {0}")]
    Config(String),
    /// The conversations kept in the ledger for a fuller batch cannot be read (they would
    /// never be archived otherwise).
    #[error(
        "the ledger's conversations waiting for a fuller batch ({name}) cannot be read: {message}"
    )]
    Waiting {
        /// The ledger entry.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Settings of sharing the work between instances on one ledger (continuous mode).
#[derive(Debug, Clone)]
pub struct ScaleOut {
    /// How often an instance looks for chunks another instance listed, between its polls:
    /// ledger queries only. Short, because an instance claims its next chunk while it
    /// archives one: an instance that looked seldom would find a poll's few chunks taken.
    pub chunk_check: Duration,
}

impl Default for ScaleOut {
    fn default() -> Self {
        Self {
            chunk_check: Duration::from_secs(1),
        }
    }
}

/// The longest wait between two retries of a failed ledger row.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// How long a failed row with `attempts` waits after its last change before the next retry:
/// the poll interval, doubling per attempt, at most [`MAX_RETRY_BACKOFF`].
pub fn retry_backoff(interval: Duration, attempts: u32) -> Duration {
    interval
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(MAX_RETRY_BACKOFF)
}

/// The most late-window rechecks one poll takes from the ledger (ten full batch jobs); the
/// rest are due at the next poll.
pub(crate) const RECHECKS_PER_POLL: usize = 1000;
