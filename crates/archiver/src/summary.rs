//! What a run did, counted ([`Summary`]), what it could not do, with reasons
//! ([`FailureReport`]), and whether every recording the source listed is accounted for
//! ([`Reconciliation`]).

/// The most reasons [`Summary::absorb`] keeps; older ones are counted in
/// `failures_dropped`.
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// What kind of account a [`FailureReport`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Tried and given up (or waiting in quarantine).
    Failed,
    /// The source has no media for it (archived, deleted, ...).
    Unavailable,
    /// Exists but is not ready: the conversation is in progress or the recording is
    /// uploading or being restored. The daemon comes back for it.
    Pending,
    /// A part of the interval no API could list.
    NotDiscoverable,
    /// Another live instance holds its lease: not archived by this run. Pending: a poll holds
    /// its checkpoint at it, a chunk keeps its conversation, a one-shot run exits non-zero.
    LeasedElsewhere,
}

/// A recording (or conversation, or part of the interval) that was not archived, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureReport {
    /// Conversation id (empty for a part of the interval).
    pub conversation_id: String,
    /// Recording id as the ledger knows it (`~file` appended for one file of several);
    /// empty when not known (a conversation in progress, a part of the interval).
    pub recording_id: String,
    /// Why.
    pub reason: String,
    /// Whether it is unavailable at the source rather than failed.
    pub unavailable: bool,
    /// The kind of account.
    pub kind: ReportKind,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Recordings discovered.
    pub found: u64,
    /// Stored and verified in this run.
    pub archived: u64,
    /// Already stored; not downloaded.
    pub skipped: u64,
    /// Gave up on (see `failures`).
    pub failed: u64,
    /// Without media at the source (archived/deleted); reported, not retried.
    pub unavailable: u64,
    /// Skipped because the ledger holds them in quarantine (`quarantine retry` releases them).
    pub quarantined: u64,
    /// Skipped because another live instance holds their lease.
    pub leased_elsewhere: u64,
    /// Not finished because of shutdown; their claims were released for the next run.
    pub interrupted: u64,
    /// The run stopped (shutdown) before its source was drained: recordings the source had
    /// not yielded yet were never seen, so no count covers them. Never clean.
    pub source_incomplete: bool,
    /// Failures (counted in `failed`) that left no row in the ledger: the claim or the outcome
    /// could not be written, the key could not be built, or the worker stopped. Nothing
    /// retries them from the ledger, so a poll with any is not reconciled (its window is read
    /// again) and a chunk with any is kept.
    pub unrecorded: u64,
    /// Polls (continuous mode) whose window was not reconciled: their checkpoint did not move
    /// past it, and the next poll reads it again.
    pub unreconciled_polls: u64,
    /// Conversations in progress and recordings not uploaded yet: not archivable now.
    pub pending: u64,
    /// Parts of the interval no API could list.
    pub not_discoverable: u64,
    /// Finished conversations the ledger holds as settled (every recording archived or
    /// accounted for before): listed by analytics, not resolved again (no API call).
    pub known_conversations: u64,
    /// Conversations resolved again after an earlier complete resolution (late-window
    /// rechecks, see [`crate::LateWindow`]).
    pub rechecked: u64,
    /// Files those rechecks found that the earlier resolution had not listed (files that
    /// reached their conversation late; archived like any other).
    pub late_files: u64,
    /// Conversations still inside their late window when the run ended: resolved, every
    /// file archived, and resolved again once the window has passed. Not a failure.
    pub late_window_open: u64,
    /// When the last of those late windows closes.
    pub late_window_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The earliest start of a conversation counted in `pending`: a poll loop must read
    /// from here again.
    pub pending_since: Option<chrono::DateTime<chrono::Utc>>,
    /// A shared backfill ([`crate::archive_shared`]): conversations still waiting in its
    /// chunks when this instance stopped (a retry's backoff: recordings not ready, a batch job
    /// that failed). Another instance, or a rerun, works them; never clean while any wait.
    pub shared_backlog: u64,
    /// A shared backfill: what another of its instances reported not archived (its failed
    /// recordings, conversations in progress, parts it could not list). This instance's own
    /// work may be complete; the backfill is not, so never clean while set.
    pub shared_problems: Option<String>,
    /// Bytes stored in this run.
    pub bytes: u64,
    /// The most recordings this run processed at the same time (never more than the adapted
    /// limit's peak, nor than the source gave).
    pub workers_peak: usize,
    /// Failures, unavailable and pending recordings and undiscoverable parts, with reasons
    /// (when several runs are summed, the most recent [`MAX_REPORTED_FAILURES`]).
    pub failures: Vec<FailureReport>,
    /// Reports left out of `failures` to keep it bounded (the counts include them).
    pub failures_dropped: u64,
    /// Discovery stopped early with this error.
    pub discovery_error: Option<String>,
    /// Whether the discovery error is a configuration problem (credentials, region).
    pub discovery_error_is_config: bool,
    /// Finished conversations discovery deferred to a fuller batch (counted in `pending`,
    /// not in `pending_since`): the caller keeps them and passes them back in
    /// [`genesys_media::DiscoveryQuery::waiting`] (continuous mode keeps them in the ledger),
    /// or they are never archived. Not in the report (they carry personal data); summing
    /// runs keeps the latest run's.
    #[serde(skip)]
    pub waiting: Vec<genesys_media::models::AnalyticsConversation>,
}

/// Every account of a run, checked: what the source listed equals what was archived plus
/// what is reported with a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reconciliation {
    /// Recording files the source listed (discovered).
    pub listed: u64,
    /// Archived in this run or earlier (skipped).
    pub archived: u64,
    /// Unavailable at the source (archived, deleted), with the source's reason.
    pub unavailable: u64,
    /// Failed, or waiting in quarantine.
    pub failed: u64,
    /// Held by another live instance's lease.
    pub leased_elsewhere: u64,
    /// Stopped by shutdown.
    pub interrupted: u64,
    /// Conversations and recordings not ready yet.
    pub pending: u64,
    /// Parts of the interval that could not be listed.
    pub not_discoverable: u64,
    /// Listed but in none of the above: always 0 unless the archiver lost track of one.
    pub unaccounted: u64,
    /// Discovery did not complete (the listing itself is incomplete).
    pub discovery_incomplete: bool,
    /// The run was stopped before the source was drained (see [`Summary::source_incomplete`]).
    pub source_incomplete: bool,
    /// Failures not recorded in the ledger (see [`Summary::unrecorded`]).
    pub unrecorded: u64,
    /// Conversations of a shared backfill still waiting in its chunks (see
    /// [`Summary::shared_backlog`]).
    pub shared_backlog: u64,
    /// What another instance of a shared backfill reported (see [`Summary::shared_problems`]).
    pub shared_problems: Option<String>,
    /// Clean: everything listed is archived or unavailable at the source with a reason,
    /// nothing is pending, failed, leased by another instance or unlisted, discovery
    /// completed and the run was not cut short.
    pub clean: bool,
}

impl Summary {
    /// The one-line summary the CLI prints.
    pub fn line(&self) -> String {
        let mut line = format!(
            "found {}, archived {}, skipped {}, failed {}, unavailable {}",
            self.found, self.archived, self.skipped, self.failed, self.unavailable
        );
        for (n, what) in [
            (self.quarantined, "in quarantine"),
            (
                self.leased_elsewhere,
                "leased by another instance (pending)",
            ),
            (self.interrupted, "interrupted"),
            (self.unrecorded, "failed without a ledger row (read again)"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        for (n, what) in [
            (
                self.known_conversations,
                "conversation(s) already archived (not resolved again)",
            ),
            (self.pending, "pending (not ready at the source)"),
            (
                self.not_discoverable,
                "part(s) of the interval not discoverable",
            ),
        ] {
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        if self.rechecked > 0 {
            line.push_str(&format!(
                ", {} conversation(s) rechecked for late files ({} found)",
                self.rechecked, self.late_files
            ));
        }
        if let (n, Some(until)) = (self.late_window_open, self.late_window_until)
            && n > 0
        {
            line.push_str(&format!(
                ", {n} conversation(s) inside their late window (rechecked by {})",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        if self.shared_backlog > 0 {
            line.push_str(&format!(
                ", {} conversation(s) of the shared backfill still waiting in its chunks",
                self.shared_backlog
            ));
        }
        if let Some(p) = &self.shared_problems {
            line.push_str(&format!(
                ", another instance of the shared backfill reported: {p}"
            ));
        }
        if self.source_incomplete {
            line.push_str(", interrupted before discovery finished (the rest was never seen)");
        }
        line.push_str(&format!(" ({})", human_bytes(self.bytes)));
        line
    }

    /// True when the reconciliation is clean: nothing failed, waits in quarantine, is
    /// pending or could not be listed, and the run was not cut short.
    pub fn success(&self) -> bool {
        self.reconcile().clean
    }

    /// Checks that every recording the source listed is accounted for.
    pub fn reconcile(&self) -> Reconciliation {
        let archived = self.archived + self.skipped;
        let failed = self.failed + self.quarantined;
        let accounted =
            archived + self.unavailable + failed + self.leased_elsewhere + self.interrupted;
        let discovery_incomplete = self.discovery_error.is_some();
        let unaccounted = self.found.saturating_sub(accounted);
        Reconciliation {
            listed: self.found,
            archived,
            unavailable: self.unavailable,
            failed,
            leased_elsewhere: self.leased_elsewhere,
            interrupted: self.interrupted,
            pending: self.pending,
            not_discoverable: self.not_discoverable,
            unaccounted,
            discovery_incomplete,
            source_incomplete: self.source_incomplete,
            unrecorded: self.unrecorded,
            shared_backlog: self.shared_backlog,
            shared_problems: self.shared_problems.clone(),
            clean: failed == 0
                && self.shared_backlog == 0
                && self.shared_problems.is_none()
                && self.interrupted == 0
                && self.leased_elsewhere == 0
                && !self.source_incomplete
                && self.pending == 0
                && self.not_discoverable == 0
                && unaccounted == 0
                && !discovery_incomplete,
        }
    }

    /// Adds the counts of another run (continuous mode sums its polls).
    pub fn absorb(&mut self, other: Summary) {
        self.found += other.found;
        self.workers_peak = self.workers_peak.max(other.workers_peak);
        self.known_conversations += other.known_conversations;
        self.archived += other.archived;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.unavailable += other.unavailable;
        self.quarantined += other.quarantined;
        self.leased_elsewhere += other.leased_elsewhere;
        self.interrupted += other.interrupted;
        self.source_incomplete |= other.source_incomplete;
        self.unrecorded += other.unrecorded;
        self.unreconciled_polls += other.unreconciled_polls;
        self.rechecked += other.rechecked;
        self.late_files += other.late_files;
        // The latest run's view of the ledger.
        self.late_window_open = other.late_window_open;
        self.late_window_until = other.late_window_until;
        self.pending += other.pending;
        self.not_discoverable += other.not_discoverable;
        self.pending_since = self
            .pending_since
            .into_iter()
            .chain(other.pending_since)
            .min();
        self.waiting = other.waiting;
        // The latest look at the shared backlog.
        self.shared_backlog = other.shared_backlog;
        if other.shared_problems.is_some() {
            self.shared_problems = other.shared_problems;
        }
        self.bytes += other.bytes;
        // A long-running daemon sums its polls: the counts keep growing, the list of
        // reasons keeps the most recent MAX_REPORTED_FAILURES (memory stays flat).
        self.failures.extend(other.failures);
        if self.failures.len() > MAX_REPORTED_FAILURES {
            let excess = self.failures.len() - MAX_REPORTED_FAILURES;
            self.failures.drain(..excess);
            self.failures_dropped += excess as u64;
        }
        if other.discovery_error.is_some() {
            self.discovery_error = other.discovery_error;
            self.discovery_error_is_config = other.discovery_error_is_config;
        }
    }
}

/// A byte count as people read it: `512 B`, `3.4 KiB`, `12.0 MiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_another_instance_holds_or_a_cut_source_is_never_clean() {
        let leased = Summary {
            found: 1,
            leased_elsewhere: 1,
            ..Summary::default()
        };
        let r = leased.reconcile();
        assert!(!r.clean, "{r:?}");
        assert_eq!(r.unaccounted, 0);
        let cut = Summary {
            source_incomplete: true,
            ..Summary::default()
        };
        assert!(!cut.success());
        assert!(cut.line().contains("interrupted before discovery finished"));
        let mut total = Summary::default();
        total.absorb(cut);
        assert!(total.source_incomplete, "summing polls keeps it");
        assert!(Summary::default().success());
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12 << 20), "12.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
