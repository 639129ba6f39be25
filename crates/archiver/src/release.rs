//! Release at the source: once a recording's copy is proven (see [`crate::release_proof`]),
//! set its delete date at Genesys Cloud to now + grace, so the source stops keeping what the
//! archive holds. Recording by recording, never by query: the bulk recording jobs select by
//! analytics query and include recordings up to 48 h late, so they could delete a file that
//! was never copied.
//!
//! Each release is recorded in the ledger as *intended* (with its proof) before the source is
//! asked, and *released* once the source's answer confirms the date; a run cut short leaves
//! intended rows, which the next run proves again and sends again.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_media::GenesysClient;
use ledger::{Ledger, LedgerError, ReleaseCandidate, ReleaseRecord, ReleaseState};
use sink::ObjectSink;

use crate::release_proof::{Hold, IndexReader, LedgerFacts, Proven, ledger_check, store_check};
use crate::signing::IndexVerifier;

/// Rows read from the ledger at a time.
const PAGE: u32 = 500;

/// The least grace the source accepts: a delete date must be more than a day ahead.
pub const MIN_GRACE: Duration = Duration::from_secs(24 * 3600 + 3600);

/// What a release run may release, and how.
#[derive(Debug, Clone)]
pub struct ReleasePolicy {
    /// Only recordings whose conversation ended at least this long ago.
    pub older_than: Duration,
    /// The delete date set: now + grace (at least [`MIN_GRACE`]).
    pub grace: Duration,
    /// Re-read every object and compare its MD5 and SHA-256 (otherwise HEAD: size and the
    /// digests the store reports).
    pub rehash: bool,
    /// Require Object Lock on each object until at least now + this (more than the grace:
    /// the lock must outlast the source's copy).
    pub require_lock_for: Option<Duration>,
    /// With Object Lock required, require this mode (`COMPLIANCE`; `GOVERNANCE` can be
    /// bypassed by a privileged user); `None` accepts either.
    pub lock_mode: Option<String>,
    /// Public keys (oldest first): when given, the index part listing a recording must carry
    /// a signature by one of them.
    pub public_keys: Vec<IndexVerifier>,
    /// Set delete dates; without it, only report what would be released (a dry run spends
    /// only the deletion-protection checks).
    pub execute: bool,
    /// The release's own share of the API budget: delete dates set per minute at most.
    pub per_minute: u32,
    /// Send at most this many delete dates (recordings) in this run.
    pub limit: Option<u64>,
    /// Stop (with work left, `limited`) once the run has taken this long: the daemon's bound
    /// on a poll's release, proofs included.
    pub deadline: Option<Duration>,
    /// Stop at the next recording once this is cancelled (a shutdown).
    pub shutdown: Option<tokio_util::sync::CancellationToken>,
    /// Send again the releases the source refused before.
    pub retry_refused: bool,
    /// Who holds the release lease while delete dates are set (one release or undo at a
    /// time per ledger).
    pub owner: String,
    /// Called with the report so far after each page of rows (a release at the default
    /// rate takes a day per 86,000 recordings): the binary shows it.
    pub progress: Option<Progress>,
}

/// A progress callback of a release run ([`ReleasePolicy::progress`]).
#[derive(Clone)]
pub struct Progress(std::sync::Arc<dyn Fn(&ReleaseReport) + Send + Sync>);

impl Progress {
    /// Wraps `f`, called with the report so far.
    pub fn new(f: impl Fn(&ReleaseReport) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self {
            older_than: Duration::from_secs(30 * 24 * 3600),
            grace: Duration::from_secs(7 * 24 * 3600),
            rehash: false,
            require_lock_for: None,
            lock_mode: None,
            public_keys: Vec::new(),
            execute: false,
            per_minute: 60,
            limit: None,
            deadline: None,
            shutdown: None,
            retry_refused: false,
            owner: crate::default_instance_id(),
            progress: None,
        }
    }
}

/// What a release run found and did. Counts are per ledger row (one file of a recording).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// Whether delete dates were set (`false`: a dry run).
    pub executed: bool,
    /// The delete date set (or that would be set), RFC 3339.
    pub delete_date: String,
    /// Rows considered (every row not released yet).
    pub considered: u64,
    /// Rows proven fit for release.
    pub eligible: u64,
    /// Their bytes.
    pub eligible_bytes: u64,
    /// Of those, per day of the conversation's end: (rows, bytes).
    pub eligible_by_day: BTreeMap<String, (u64, u64)>,
    /// Rows released in this run (the source confirmed the date).
    pub released: u64,
    /// Their bytes.
    pub released_bytes: u64,
    /// Rows held, by reason ([`Hold::code`]): with the eligible ones, every row considered
    /// (`considered == eligible + held`).
    pub held: BTreeMap<String, u64>,
    /// Recordings the source refused a delete date for, with its message.
    pub refused: Vec<String>,
    /// Recordings whose delete date may or may not be set (no confirming answer): recorded
    /// as intended, proven and sent again by the next run.
    pub unconfirmed: Vec<String>,
    /// Recordings an earlier run recorded a release for (their delete date may be set at the
    /// source) whose copy is not proven now: urgent.
    pub at_risk: Vec<String>,
    /// Whether the run stopped early (its limit, deadline or a shutdown) with recordings
    /// left for the next run.
    pub limited: bool,
    /// Whether the run stopped because its release lease was lost (another instance took
    /// it): not clean.
    pub lease_lost: bool,
    /// Deletion-protection queries made.
    pub protection_calls: u64,
    /// Delete-date PUTs made.
    pub put_calls: u64,
}

impl ReleaseReport {
    /// True when nothing was refused, left unconfirmed or found at risk.
    pub fn clean(&self) -> bool {
        self.refused.is_empty()
            && self.unconfirmed.is_empty()
            && self.at_risk.is_empty()
            && !self.lease_lost
    }

    fn hold(&mut self, h: &Hold, n: u64) {
        if n == 0 {
            return;
        }
        *self.held.entry(h.code()).or_default() += n;
    }
}

/// Why a release run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The ledger failed: nothing after it was released or counted.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The deletion-protection check failed: nothing is released without it.
    #[error("the deletion-protection check failed: {0}")]
    Protection(genesys_media::Error),
    /// The policy cannot be used.
    #[error("{0}")]
    Policy(String),
    /// Another instance is releasing or undoing on this ledger.
    #[error(
        "another instance holds the release lease of this ledger (a release or undo is running); try again when it ends"
    )]
    Busy,
}

/// The release lease: one release or undo at a time per ledger.
pub(crate) const RELEASE_LEASE: &str = "release";
/// How long the lease lasts unless renewed (it is renewed before each delete date).
pub(crate) const LEASE_FOR: Duration = Duration::from_secs(300);

/// Paces the writes at the source of a release or an undo (`per_minute`) and keeps the
/// release lease while they go: renewed when a third of it has passed.
pub(crate) struct LeaseKeeper {
    per_minute: u32,
    /// Made at the first write: an interval's first tick is at once, and one made early would
    /// let a second write through at once after a long look at the ledger.
    pace: Option<tokio::time::Interval>,
    renewed: tokio::time::Instant,
}

impl LeaseKeeper {
    /// A keeper of the lease just taken, pacing `per_minute` writes.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            pace: None,
            renewed: tokio::time::Instant::now(),
        }
    }

    /// Waits for the next write's turn and renews the lease when due; false when the lease
    /// was lost (another run holds it now).
    pub(crate) async fn next(&mut self, ledger: &Ledger, owner: &str) -> Result<bool, LedgerError> {
        let per_minute = self.per_minute;
        let pace = self.pace.get_or_insert_with(|| {
            let mut i = tokio::time::interval(Duration::from_secs(60) / per_minute);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        pace.tick().await;
        if self.renewed.elapsed() >= LEASE_FOR / 3 {
            if !ledger
                .take_listing(RELEASE_LEASE, owner, LEASE_FOR, Duration::ZERO)
                .await?
            {
                return Ok(false);
            }
            self.renewed = tokio::time::Instant::now();
        }
        Ok(true)
    }
}
/// The longest grace, lock or keep-for taken (dates beyond are refused, not overflowed).
pub(crate) const MAX_SPAN: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// The source recording id of a ledger row (`rid~file` for one of several files).
pub(crate) fn source_id(ledger_id: &str) -> &str {
    ledger_id.split('~').next().unwrap_or(ledger_id)
}

/// Runs a release over every row of `ledger` not released yet (see the module docs).
pub async fn release(
    client: &GenesysClient,
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    policy: &ReleasePolicy,
) -> Result<ReleaseReport, ReleaseError> {
    if policy.grace < MIN_GRACE {
        return Err(ReleaseError::Policy(format!(
            "the grace must be at least {} hours: the source accepts a delete date only more than a day ahead",
            MIN_GRACE.as_secs() / 3600
        )));
    }
    if policy.grace > MAX_SPAN
        || policy.older_than > MAX_SPAN
        || policy.require_lock_for.is_some_and(|l| l > MAX_SPAN)
    {
        return Err(ReleaseError::Policy(
            "a grace, age or lock of more than 100 years is not taken".into(),
        ));
    }
    if policy.require_lock_for.is_some_and(|l| l <= policy.grace) {
        return Err(ReleaseError::Policy(
            "the Object Lock required must outlast the grace: once the source deletes its copy, the archive's is the only one".into(),
        ));
    }
    let now = client.now();
    // Never inside the default late window, whatever the ledger's window was.
    let settle = policy.older_than.max(ledger::DEFAULT_LATE_WINDOW);
    let mut undone = HashSet::new();
    let mut earlier = HashSet::new();
    for r in ledger.releases().await? {
        let src = source_id(&r.recording_id).to_string();
        match r.state {
            ReleaseState::Undone => {
                undone.insert(src);
            }
            // Refused: no date was set.
            ReleaseState::Refused => {}
            ReleaseState::Intended | ReleaseState::Released => {
                earlier.insert(src);
            }
        }
    }
    if policy.execute
        && !ledger
            .take_listing(RELEASE_LEASE, &policy.owner, LEASE_FOR, Duration::ZERO)
            .await?
    {
        return Err(ReleaseError::Busy);
    }
    let mut run = Run {
        client,
        ledger,
        sink,
        policy,
        index: IndexReader::new(sink, ledger.index_parts().await?, &policy.public_keys),
        report: ReleaseReport {
            executed: policy.execute,
            delete_date: genesys_media::api_date(now + chrono_of(policy.grace)),
            ..ReleaseReport::default()
        },
        end_before: now - chrono_of(settle),
        undone,
        earlier,
        lease: LeaseKeeper::new(policy.per_minute),
        started: tokio::time::Instant::now(),
    };
    let outcome = run.pages().await;
    if policy.execute {
        // Given back whatever happened; a lease that lapsed is taken by the next run.
        if let Err(e) = ledger
            .end_listing(RELEASE_LEASE, &policy.owner, false)
            .await
        {
            tracing::warn!(error = %e, "could not give the release lease back; it lapses");
        }
    }
    outcome?;
    Ok(run.report)
}

impl Run<'_> {
    /// Every page of candidates, a recording's files kept together.
    async fn pages(&mut self) -> Result<(), ReleaseError> {
        let (ledger, policy) = (self.ledger, self.policy);
        let mut after: Option<String> = None;
        let mut carry: Vec<ReleaseCandidate> = Vec::new();
        loop {
            let page = ledger
                .release_candidates(after.as_deref(), PAGE, policy.retry_refused)
                .await?;
            let last_page = (page.len() as u32) < PAGE;
            if let Some(l) = page.last() {
                after = Some(l.entry.recording_id.clone());
            }
            carry.extend(page);
            // A recording's files are released together: keep its last one's group for the next
            // page, which may hold more of its files.
            let keep = if last_page {
                0
            } else {
                let last = carry
                    .last()
                    .map(|c| source_id(&c.entry.recording_id).to_string())
                    .unwrap_or_default();
                carry
                    .iter()
                    .rev()
                    .take_while(|c| source_id(&c.entry.recording_id) == last)
                    .count()
            };
            let rest = carry.split_off(carry.len() - keep);
            let batch = std::mem::replace(&mut carry, rest);
            let more = self.batch(batch).await?;
            if let Some(p) = &self.policy.progress {
                (p.0)(&self.report);
            }
            if !more {
                self.report.limited = !self.report.lease_lost;
                break;
            }
            if last_page {
                break;
            }
        }
        Ok(())
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

struct Run<'a> {
    client: &'a GenesysClient,
    ledger: &'a Ledger,
    sink: &'a dyn ObjectSink,
    policy: &'a ReleasePolicy,
    index: IndexReader<'a>,
    report: ReleaseReport,
    /// Conversations must have ended before this (`--older-than`, never inside the late
    /// window).
    end_before: DateTime<Utc>,
    /// Source recordings with a release taken back: never released again by a run.
    undone: HashSet<String>,
    /// Source recordings with a release recorded (some file released or intended).
    earlier: HashSet<String>,
    /// Paces the writes at the source and keeps the release lease.
    lease: LeaseKeeper,
    started: tokio::time::Instant,
}

impl Run<'_> {
    /// Holds a recording: each failing file under its reason (`holds`), the `passing` ones
    /// as `OtherFileHeld`. When an earlier run may have set a delete date for it (a release
    /// recorded for it), says so: its copy is not proven now.
    fn held(&mut self, rid: &str, files: &[ReleaseCandidate], holds: &[Hold], passing: u64) {
        for h in holds {
            self.report.hold(h, 1);
        }
        self.report.hold(&Hold::OtherFileHeld, passing);
        let earlier = files.iter().any(|c| c.intended.is_some()) || self.earlier.contains(rid);
        if let (true, Some(h)) = (earlier, holds.first()) {
            self.report.at_risk.push(format!(
                "{rid}: an earlier run recorded a release (its delete date may be set at the source), but its copy is not proven now ({}): restore the copy or take the release back (release --undo)",
                h.code()
            ));
        }
    }

    /// Proves and (with `execute`) releases one batch of rows; false when the limit stops
    /// the run. Cheap ledger checks first; then, a hundred recordings at a time, one
    /// deletion-protection query and each recording's index and store proof, made just
    /// before its delete date is set.
    async fn batch(&mut self, batch: Vec<ReleaseCandidate>) -> Result<bool, ReleaseError> {
        let mut groups: BTreeMap<String, Vec<ReleaseCandidate>> = BTreeMap::new();
        for c in batch {
            groups
                .entry(source_id(&c.entry.recording_id).to_string())
                .or_default()
                .push(c);
        }
        // Each recording whose rows the ledger vouches for, with what it vouches.
        let mut ready: Vec<(String, Vec<ReleaseCandidate>, Vec<LedgerFacts>)> = Vec::new();
        for (rid, files) in groups {
            self.report.considered += files.len() as u64;
            if self.undone.contains(&rid) {
                let holds = vec![Hold::TakenBack; files.len()];
                self.held(&rid, &files, &holds, 0);
                continue;
            }
            let checked: Vec<Result<LedgerFacts, Hold>> = files
                .iter()
                .map(|c| ledger_check(c, self.end_before))
                .collect();
            let holds: Vec<Hold> = checked.iter().filter_map(|r| r.clone().err()).collect();
            match checked.into_iter().collect::<Result<Vec<_>, Hold>>() {
                Ok(facts) => ready.push((rid, files, facts)),
                Err(_) => {
                    let passing = (files.len() - holds.len()) as u64;
                    self.held(&rid, &files, &holds, passing);
                }
            }
        }
        for chunk in ready.chunks(genesys_media::PROTECTION_QUERY_MAX) {
            let convs: Vec<String> = chunk
                .iter()
                .flat_map(|(_, f, _)| f.iter().map(|c| c.entry.conversation_id.clone()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            self.report.protection_calls +=
                convs.len().div_ceil(genesys_media::PROTECTION_QUERY_MAX) as u64;
            let protected = self
                .client
                .protected_conversations(&convs)
                .await
                .map_err(ReleaseError::Protection)?;
            for (rid, files, facts) in chunk {
                if self
                    .policy
                    .deadline
                    .is_some_and(|d| self.started.elapsed() >= d)
                    || self
                        .policy
                        .shutdown
                        .as_ref()
                        .is_some_and(|s| s.is_cancelled())
                {
                    return Ok(false);
                }
                if files
                    .iter()
                    .any(|c| protected.contains(&c.entry.conversation_id))
                {
                    let holds = vec![Hold::Protected; files.len()];
                    self.held(rid, files, &holds, 0);
                    continue;
                }
                if self.policy.execute
                    && self
                        .policy
                        .limit
                        .is_some_and(|l| self.report.put_calls >= l)
                {
                    return Ok(false);
                }
                let mut proven = Vec::with_capacity(files.len());
                let mut holds = Vec::new();
                for (c, f) in files.iter().zip(facts) {
                    match self.prove(c.clone(), f.clone()).await {
                        Ok(p) => proven.push(p),
                        Err(h) => holds.push(h),
                    }
                }
                if !holds.is_empty() {
                    self.held(rid, files, &holds, proven.len() as u64);
                    continue;
                }
                for p in &proven {
                    self.report.eligible += 1;
                    self.report.eligible_bytes += p.size;
                    let day = self
                        .report
                        .eligible_by_day
                        .entry(p.end.format("%Y-%m-%d").to_string())
                        .or_default();
                    day.0 += 1;
                    day.1 += p.size;
                }
                if self.policy.execute && !self.execute(rid, proven).await? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The index and store checks of one row whose ledger `facts` were checked, Object Lock
    /// measured from now.
    async fn prove(&mut self, c: ReleaseCandidate, facts: LedgerFacts) -> Result<Proven, Hold> {
        let (size, md5, sha256, seq, end) = facts;
        let e = &c.entry;
        let index_sha256 = self
            .index
            .check(seq, &e.recording_id, &e.key, size, &md5, &sha256)
            .await?;
        let lock = self.policy.require_lock_for.map(|d| {
            (
                self.client.now() + chrono_of(d),
                self.policy.lock_mode.as_deref(),
            )
        });
        store_check(
            self.sink,
            &e.key,
            size,
            &md5,
            &sha256,
            lock,
            self.policy.rehash,
        )
        .await?;
        Ok(Proven {
            candidate: c,
            size,
            md5,
            sha256,
            index_seq: seq,
            index_sha256,
            end,
        })
    }

    /// Paces, renews the release lease, records the proof, sets the delete date (now +
    /// grace) at the source, and confirms it.
    /// False when the run must stop (its lease was lost).
    async fn execute(&mut self, rid: &str, files: Vec<Proven>) -> Result<bool, ReleaseError> {
        if !self.lease.next(self.ledger, &self.policy.owner).await? {
            self.report.lease_lost = true;
            return Ok(false);
        }
        let delete_date = self.client.now() + chrono_of(self.policy.grace);
        let date = genesys_media::api_date(delete_date);
        let mut recorded: Vec<&str> = Vec::new();
        for p in &files {
            let e = &p.candidate.entry;
            let fresh = self
                .ledger
                .release_proven(ReleaseRecord {
                    recording_id: e.recording_id.clone(),
                    conversation_id: e.conversation_id.clone(),
                    key: e.key.clone(),
                    size: p.size,
                    md5: p.md5.clone(),
                    sha256: p.sha256.clone(),
                    index_seq: p.index_seq,
                    index_sha256: p.index_sha256.clone(),
                    delete_date: date.clone(),
                    state: ReleaseState::Intended,
                    proven_at: String::new(),
                    released_at: None,
                    undone_at: None,
                    last_error: None,
                })
                .await?;
            if !fresh {
                // Released or taken back by another run meanwhile: nothing is sent, and the
                // proofs this run recorded for the other files are withdrawn.
                for id in recorded {
                    self.ledger.release_withdrawn(id, &date).await?;
                }
                self.report.unconfirmed.push(format!(
                    "{rid}: its release changed in the ledger meanwhile (another run?); not sent"
                ));
                return Ok(true);
            }
            recorded.push(&e.recording_id);
        }
        let earlier_put = files.iter().any(|p| p.candidate.intended.is_some());
        let conv = &files[0].candidate.entry.conversation_id;
        self.report.put_calls += 1;
        match self.client.set_delete_date(conv, rid, delete_date).await {
            Ok(set) if set.confirms(delete_date) => {
                for p in &files {
                    let id = &p.candidate.entry.recording_id;
                    if self.ledger.release_confirmed(id, &date).await? {
                        self.report.released += 1;
                        self.report.released_bytes += p.size;
                    } else {
                        // Taken back (or changed) while the PUT was in flight: the source
                        // holds this run's date, the ledger another.
                        self.report.at_risk.push(format!(
                            "{id}: the source took the delete date {date}, but its release changed in the ledger meanwhile (undone?): check it and set the date again (release --undo)"
                        ));
                    }
                }
            }
            Ok(set) => self.report.unconfirmed.push(format!(
                "{rid}: the source answered delete date {} where {date} was set",
                set.delete_date
                    .map(genesys_media::api_date)
                    .unwrap_or_else(|| "none".into())
            )),
            Err(genesys_media::Error::Status {
                status, message, ..
            }) if (400..500).contains(&status) && status != 429 && status != 409 => {
                if earlier_put {
                    // An earlier run's PUT may have set a date: the record stays.
                    self.report.unconfirmed.push(format!(
                        "{rid}: refused by the source now ({status}: {message}), but an earlier run's delete date may stand: kept as intended"
                    ));
                } else {
                    // Refused and never sent before: no date was set. Recorded as refused,
                    // so later runs do not send it again unless asked.
                    let why = format!("{status}: {message}");
                    for p in &files {
                        self.ledger
                            .release_refused(&p.candidate.entry.recording_id, &date, &why)
                            .await?;
                    }
                    self.report
                        .refused
                        .push(format!("{rid}: refused by the source ({why})"));
                }
            }
            Err(e) => self.report.unconfirmed.push(format!(
                "{rid}: {e} (recorded as intended; the next run sends it again)"
            )),
        }
        Ok(true)
    }
}
