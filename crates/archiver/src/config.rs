//! The settings of an archive run ([`ArchiverConfig`]) and the instance id that names its
//! leases.

use std::time::Duration;

use genesys_media::RetryPolicy;
use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;
use crate::template::KeyTemplate;
/// Settings of a run.
#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    /// Recordings processed at the same time: a fixed count, or adapted while running
    /// ([`crate::Workers::DEFAULT`]).
    pub workers: crate::Workers,
    /// The adapted worker count a run ended with, where the next run with a clone of this
    /// configuration starts (a daemon's polls and chunks learn the bound once, not per poll);
    /// 0 before any run.
    pub learned_workers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Where each recording goes.
    pub key_template: KeyTemplate,
    /// Backoff for 5xx and transport errors, and the `Retry-After` clamp.
    pub retry: RetryPolicy,
    /// How often one recording's URL may be refreshed after 403s.
    pub max_url_refreshes: u32,
    /// Retries after an MD5 or length mismatch (the brief: once).
    pub integrity_retries: u32,
    /// Use a media response's ETag as the expected MD5 when it looks like one.
    pub verify_source_etag: bool,
    /// HEAD the key first and skip recordings already stored.
    pub skip_existing: bool,
    /// Write with create-only semantics (never replace an object).
    pub create_only: bool,
    /// Time limit of one download-and-upload attempt.
    pub attempt_timeout: Duration,
    /// Re-request a media URL before using it when it was received longer ago than this
    /// (Genesys URLs live 60 minutes by default; a 403 triggers a refresh anyway).
    pub url_max_age: Duration,
    /// URL refreshes are gathered and asked for together (up to 100 in one batch job): at
    /// the latest this long after the first one is waiting, sooner when 100 are waiting or
    /// nothing else is left to do. Workers do not wait for them.
    pub url_refresh_window: Duration,
    /// The ledger: each recording is claimed in it before any byte moves and its outcome is
    /// written after; recordings it lists as archived or quarantined are skipped without
    /// asking the store or the source.
    pub ledger: Option<Ledger>,
    /// This instance's id, written as the lease owner (unique per process).
    pub instance_id: String,
    /// How long a claim holds before another instance may take the recording over; renewed
    /// every third of it while the upload runs.
    pub lease: Duration,
    /// Cancel to shut down: discovery stops, no new attempt starts, and in-flight uploads get
    /// `drain_timeout` to finish before they are aborted (their claims are released).
    pub shutdown: CancellationToken,
    /// See `shutdown`.
    pub drain_timeout: Duration,
    /// Keep the phone numbers analytics gives (`ani`, `dnis`: personal data) in object
    /// metadata, the ledger and the index. Off by default: they are dropped on arrival.
    pub keep_phone_numbers: bool,
    /// Compute each object's SHA-256 while streaming and keep it in the ledger, for the
    /// chain-of-custody index (about a third of MD5's CPU cost with SHA-NI). On by default.
    pub sha256: bool,
    /// Read each recording once before writing it, to know its MD5 and SHA-256 up front: the
    /// object then carries both in its own metadata from its first byte (S3 user metadata
    /// `md5` and `sha256`; a multipart upload too), the store checks the MD5 itself
    /// (`Content-MD5`), and the write fails and is removed when the second read gives other
    /// bytes. `ledger rebuild` restores both from the object alone. Costs a second download
    /// and a second pass of hashing per recording (no buffering, no API call). Off by
    /// default.
    pub digests_up_front: bool,
    /// How long after its end a conversation may still gain files: it is resolved again
    /// once this has passed before it settles (see [`crate::LateWindow`]); zero: off.
    pub late_window: Duration,
}

/// A process-unique instance id: host name, process id and a random suffix.
pub fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

impl ArchiverConfig {
    /// The late window of discovery working in `present` (see [`crate::LateWindow`]).
    pub fn late_at(&self, present: chrono::DateTime<chrono::Utc>) -> crate::LateWindow {
        crate::LateWindow {
            window: self.late_window,
            present,
            recheck_all: false,
            keep_phone_numbers: self.keep_phone_numbers,
            stats: Default::default(),
        }
    }
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            workers: crate::Workers::Fixed(4),
            learned_workers: Default::default(),
            key_template: KeyTemplate::default(),
            retry: RetryPolicy::default(),
            max_url_refreshes: 3,
            integrity_retries: 1,
            verify_source_etag: false,
            skip_existing: true,
            create_only: true,
            attempt_timeout: Duration::from_secs(3600),
            url_max_age: Duration::from_secs(45 * 60),
            url_refresh_window: Duration::from_secs(30),
            ledger: None,
            instance_id: default_instance_id(),
            lease: Duration::from_secs(600),
            shutdown: CancellationToken::new(),
            drain_timeout: Duration::from_secs(30),
            keep_phone_numbers: false,
            sha256: true,
            digests_up_front: false,
            late_window: crate::DEFAULT_LATE_WINDOW,
        }
    }
}
