//! Typed events, delivered to a hook the binary chooses (logs, progress bar, metrics).

use std::time::Duration;

/// What happened to one recording.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Discovery yielded a recording.
    Discovered {
        /// Recording id.
        recording_id: String,
    },
    /// An attempt started.
    Started {
        /// Recording id.
        recording_id: String,
        /// Target key.
        key: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// An attempt failed and will be retried.
    Retrying {
        /// Recording id.
        recording_id: String,
        /// Attempt that failed.
        attempt: u32,
        /// Why (no secrets).
        reason: String,
        /// Wait before the next attempt.
        wait: Duration,
    },
    /// Stored and verified.
    Archived {
        /// Recording id.
        recording_id: String,
        /// Key written.
        key: String,
        /// Bytes.
        size: u64,
        /// MD5 hex computed while streaming.
        md5: String,
        /// Whether the store's checksum was compared and matched.
        store_verified: bool,
    },
    /// Not downloaded because the object is already there.
    Skipped {
        /// Recording id.
        recording_id: String,
        /// Existing key.
        key: String,
    },
    /// The source has no media for it (archived, deleted, ...).
    Unavailable {
        /// Recording id.
        recording_id: String,
        /// The source's reason.
        reason: String,
    },
    /// Gave up; nothing was left in the store.
    Failed {
        /// Recording id.
        recording_id: String,
        /// Why.
        reason: String,
        /// True when the data itself was wrong (MD5 or length), after the retry.
        integrity: bool,
    },
    /// Continuous mode finished one poll.
    Polled {
        /// Interval start.
        from: chrono::DateTime<chrono::Utc>,
        /// Interval end.
        to: chrono::DateTime<chrono::Utc>,
        /// Recordings discovered.
        found: u64,
        /// Archived in this poll.
        archived: u64,
        /// Failed in this poll.
        failed: u64,
        /// Conversations and recordings not ready yet (pending) in this poll.
        pending: u64,
        /// Parts of the interval no API could list in this poll.
        not_discoverable: u64,
        /// Why discovery stopped early, when it did (a login outage, an API outage, ...).
        discovery_error: Option<String>,
        /// Whether the checkpoint moved (discovery completed, nothing interrupted, every
        /// part listed); it moves to `to`, or back to the earliest pending conversation.
        checkpoint_advanced: bool,
        /// Finished conversations the ledger held as settled: listed, not resolved again.
        known_conversations: u64,
        /// Conversations resolved again once their late window passed (rechecks).
        rechecked: u64,
        /// Files those rechecks found that were not there before (late files).
        late_files: u64,
        /// This poll read back the whole overlap (a sweep, see `PollSettings::sweep_every`),
        /// not only the recent part.
        sweep: bool,
        /// Genesys API calls this poll spent (token requests excluded), by endpoint shape.
        api_calls: std::collections::BTreeMap<String, u64>,
    },
    /// The daemon wrote a chain-of-custody index part (its digest is an anchor an auditor
    /// can keep outside the bucket).
    IndexWritten {
        /// Sequence number.
        seq: u64,
        /// Key of the part.
        key: String,
        /// SHA-256 hex of its bytes.
        sha256: Option<String>,
        /// Objects listed.
        entries: u64,
    },
    /// The daemon's inventory audit ran ([`crate::audit_inventory`]): what the org retains
    /// against what the archive holds, and the orphan recordings.
    Inventory {
        /// Recordings the source retains (all of them, judged or not).
        retained: u64,
        /// Of those judged, archived.
        held: u64,
        /// Of those judged, not archived (archived now, or failed into the ledger).
        missing: u64,
        /// Recordings not attached to any conversation.
        orphans: u64,
        /// Why the orphans could not be listed, when they could not.
        orphans_error: Option<String>,
        /// API calls the audit spent.
        api_calls: u64,
    },
    /// The daemon's release at the source ran ([`crate::release`]).
    Release {
        /// Rows proven fit for release.
        eligible: u64,
        /// Rows released (the source confirmed the delete date).
        released: u64,
        /// Rows held, by reason.
        held: std::collections::BTreeMap<String, u64>,
        /// Recordings an earlier run recorded a release for whose copy is not proven now.
        at_risk: u64,
        /// Recordings the source refused a delete date for.
        refused: u64,
        /// Delete dates sent without a confirming answer.
        unconfirmed: u64,
        /// API calls spent (protection checks and delete dates).
        api_calls: u64,
        /// Why it stopped, when it failed (nothing after that was released).
        error: Option<String>,
    },
    /// This machine's wall clock moved unlike elapsed time between two polls (a step by NTP, a
    /// resumed VM, a manual change), or disagrees with the source's clock, by more than the
    /// poll's overlap plus settle time. The checkpoint never moves past the source's present,
    /// so nothing is skipped, but the operator should fix the clock.
    ClockJump {
        /// How far the wall clock is ahead of the reference (negative: behind).
        seconds: i64,
        /// The reference: `"elapsed time"` (the monotonic clock) or `"source"`.
        against: &'static str,
    },
    /// Discovery listed something that cannot be archived now: a conversation in progress, a
    /// recording still uploading, a part of the interval no API can list, a conversation
    /// whose results were malformed.
    NotArchivable {
        /// Conversation id (empty for a part of the interval).
        conversation_id: String,
        /// Recording id, when known.
        recording_id: String,
        /// Why.
        reason: String,
        /// True when it is expected to become archivable later (pending).
        pending: bool,
    },
    /// Shared work ([`crate::ScaleOut`]), once per poll after the due chunks were worked:
    /// whether this instance listed the window, and what waits in the ledger.
    SharedWork {
        /// This instance held the listing lease and listed the window (a `Polled` event
        /// came before); otherwise another instance lists it.
        listed: bool,
        /// Chunks waiting (due later, held by other instances, or kept after an error).
        chunks: u64,
        /// Conversations in them.
        conversations: u64,
        /// The latest error of a kept chunk, if any: needs a person when it persists.
        last_error: Option<String>,
        /// Recordings this instance archived from chunks since the last report.
        archived: u64,
        /// Late-window rechecks the chunks it resolved carried.
        rechecked: u64,
        /// Files those rechecks found that the earlier resolution did not list.
        late_files: u64,
    },
    /// The ledger put a persistently failing recording in quarantine (after `Failed`).
    Quarantined {
        /// Recording id.
        recording_id: String,
        /// Why.
        reason: String,
    },
}

/// Receives [`Event`]s. Implemented for closures.
pub trait EventHandler: Send + Sync {
    /// Called for each event, from worker tasks; must not block for long.
    fn handle(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventHandler for F {
    fn handle(&self, event: &Event) {
        self(event)
    }
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventHandler for NoEvents {
    fn handle(&self, _: &Event) {}
}
