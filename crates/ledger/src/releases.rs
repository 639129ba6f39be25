//! Releases at the source: recordings whose copy was proven (stored, verified, indexed) and
//! whose delete date at Genesys Cloud was then set, so the source stops keeping them.
//!
//! A release is written *before* the source is asked ([`ReleaseState::Intended`], with the
//! proof it rests on) and confirmed after the source's answer ([`ReleaseState::Released`]):
//! a crash between the two leaves an intended row, which the next run proves and sends again
//! (setting the same kind of date twice is harmless), and which `verify` treats as released.

use std::collections::{HashMap, HashSet};

use super::{Ledger, LedgerEntry, LedgerError, RecordStatus};

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseState {
    /// Proven and about to be (or perhaps) sent to the source; not confirmed yet.
    Intended,
    /// The source confirmed the delete date.
    Released,
    /// Taken back (`release --undo`): the source's delete date was pushed out again.
    Undone,
    /// Refused by the source (its message in [`ReleaseRecord::last_error`]): no date was set.
    /// Not sent again unless asked (`release --retry-refused`).
    Refused,
}

impl ReleaseState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Intended => "intended",
            ReleaseState::Released => "released",
            ReleaseState::Undone => "undone",
            ReleaseState::Refused => "refused",
        }
    }

    /// Parses [`ReleaseState::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intended" => ReleaseState::Intended,
            "released" => ReleaseState::Released,
            "undone" => ReleaseState::Undone,
            "refused" => ReleaseState::Refused,
            _ => return None,
        })
    }
}

/// A release as the ledger records it: the proof it rests on and what the source was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// Recording id (the ledger's, `~file` for one of several files).
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Object key of the archived copy.
    pub key: String,
    /// Bytes of the archived copy.
    pub size: u64,
    /// MD5 hex of the archived copy.
    pub md5: String,
    /// SHA-256 hex of the archived copy.
    pub sha256: String,
    /// The custody index part that lists it.
    pub index_seq: u64,
    /// That part's SHA-256, as read from the store when the release was proven.
    pub index_sha256: String,
    /// The delete date set at the source (RFC 3339): asked (intended), confirmed (released),
    /// or set instead (undone).
    pub delete_date: String,
    /// Where it stands.
    pub state: ReleaseState,
    /// When the proof was recorded (RFC 3339, UTC).
    pub proven_at: String,
    /// When the source confirmed the delete date.
    pub released_at: Option<String>,
    /// When the release was taken back.
    pub undone_at: Option<String>,
    /// Why the source refused it ([`ReleaseState::Refused`]).
    pub last_error: Option<String>,
}

/// Whether a conversation is settled for good, as a release needs it: every file it has is
/// archived and no file can still come late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The ledger has no resolution of the conversation (adopted rows, compat listings).
    Unknown,
    /// Its last resolution did not account for every recording.
    Incomplete,
    /// Its late window is open: a recheck is due at this time (epoch ms).
    LateWindowOpen {
        /// When the recheck is due.
        due_ms: i64,
    },
    /// Files of it are not archived (failed, quarantined, pending, or never claimed).
    FilesNotArchived {
        /// Those files' recording ids.
        files: Vec<String>,
    },
    /// Settled: nothing of it is missing.
    Settled,
}

/// An archived or not-yet-archived recording considered for release, with what the ledger
/// knows about its conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCandidate {
    /// The recording's row.
    pub entry: LedgerEntry,
    /// The custody index part listing it, when one does.
    pub index_seq: Option<u64>,
    /// An earlier release left unconfirmed (a crash after it was proven).
    pub intended: Option<ReleaseRecord>,
    /// Its conversation.
    pub settlement: Settlement,
    /// Its conversation's end (RFC 3339) as the ledger's resolution recorded it, when known.
    pub conversation_end: Option<String>,
}

/// The backend side of releases.
#[async_trait::async_trait]
pub(crate) trait ReleaseStore {
    /// Recording rows not released (no release, or one intended and not confirmed; refused
    /// ones with `refused`), by recording id after `after`, with their index part. An undone
    /// release is not taken again: the operator took it back on purpose.
    async fn release_rows(
        &self,
        after: Option<String>,
        limit: u32,
        refused: bool,
    ) -> Result<Vec<(LedgerEntry, Option<u64>)>, LedgerError>;
    /// Every recording row of these conversations: (conversation, recording, status).
    async fn conversation_members(
        &self,
        conversation_ids: &[String],
    ) -> Result<Vec<(String, String, RecordStatus)>, LedgerError>;
    /// Records a proven release as intended (a refused one becomes intended again); false
    /// when the recording is released or undone.
    async fn put_release(&self, r: ReleaseRecord) -> Result<bool, LedgerError>;
    /// Marks an intended release released with the date the source confirmed.
    async fn confirm_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError>;
    /// Forgets an intended release asking `delete_date` (never sent).
    async fn drop_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError>;
    /// Marks an intended release asking `delete_date` refused, with the source's message.
    async fn refuse_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
        message: &str,
    ) -> Result<bool, LedgerError>;
    /// Marks a released (or intended) release undone, with the delete date set instead.
    async fn undo_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError>;
    /// Records a release read back from index part `listed_in` (a ledger rebuilt from the
    /// store), replacing what the ledger has for the recording.
    async fn restore_release(&self, r: ReleaseRecord, listed_in: u64) -> Result<(), LedgerError>;
    /// The releases index part `seq` lists, by recording id.
    async fn listed_releases(&self, seq: u64) -> Result<Vec<ReleaseRecord>, LedgerError>;
    /// Releases recorded, by recording id.
    async fn releases(
        &self,
        recording_ids: Option<Vec<String>>,
    ) -> Result<Vec<ReleaseRecord>, LedgerError>;
}

impl Ledger {
    /// Up to `limit` rows not released yet, by recording id after `after`, each with its index
    /// part, an unconfirmed earlier release, and whether its conversation is settled for good
    /// ([`Settlement`]).
    /// With `refused`, rows whose release the source refused are taken again.
    pub async fn release_candidates(
        &self,
        after: Option<&str>,
        limit: u32,
        refused: bool,
    ) -> Result<Vec<ReleaseCandidate>, LedgerError> {
        let rows = self
            .inner
            .release_rows(after.map(str::to_string), limit, refused)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let convs: Vec<String> = rows
            .iter()
            .map(|(e, _)| e.conversation_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let (settled, ends) = self.settlements(&convs).await?;
        let ids: Vec<String> = rows.iter().map(|(e, _)| e.recording_id.clone()).collect();
        let mut intended: HashMap<String, ReleaseRecord> = self
            .inner
            .releases(Some(ids))
            .await?
            .into_iter()
            .filter(|r| r.state == ReleaseState::Intended)
            .map(|r| (r.recording_id.clone(), r))
            .collect();
        Ok(rows
            .into_iter()
            .map(|(entry, index_seq)| ReleaseCandidate {
                settlement: settled
                    .get(&entry.conversation_id)
                    .cloned()
                    .unwrap_or(Settlement::Unknown),
                intended: intended.remove(&entry.recording_id),
                conversation_end: ends.get(&entry.conversation_id).cloned().flatten(),
                index_seq,
                entry,
            })
            .collect())
    }

    /// Whether each conversation is settled for good, and its recorded end.
    #[allow(clippy::type_complexity)]
    async fn settlements(
        &self,
        conversation_ids: &[String],
    ) -> Result<(HashMap<String, Settlement>, HashMap<String, Option<String>>), LedgerError> {
        let rows = self.inner.conversations(conversation_ids).await?;
        let members = self.inner.conversation_members(conversation_ids).await?;
        let files: Vec<String> = rows.iter().flat_map(|r| r.files.clone()).collect();
        let statuses = if files.is_empty() {
            HashMap::new()
        } else {
            self.inner.statuses(&files).await?
        };
        let mut out = HashMap::new();
        let mut ends = HashMap::new();
        for r in rows {
            ends.insert(r.conversation_id.clone(), r.end_time.clone());
            let settlement = if !r.complete {
                Settlement::Incomplete
            } else if let Some(due) = r.recheck_due {
                // Due or not, a recheck still to be made may find a late file.
                Settlement::LateWindowOpen { due_ms: due }
            } else {
                let mut missing: Vec<String> = r
                    .files
                    .iter()
                    .filter(|f| statuses.get(*f) != Some(&RecordStatus::Archived))
                    .cloned()
                    .collect();
                missing.extend(
                    members
                        .iter()
                        .filter(|(c, _, s)| *c == r.conversation_id && *s != RecordStatus::Archived)
                        .map(|(_, id, _)| id.clone()),
                );
                missing.sort();
                missing.dedup();
                if missing.is_empty() {
                    Settlement::Settled
                } else {
                    Settlement::FilesNotArchived { files: missing }
                }
            };
            out.insert(r.conversation_id, settlement);
        }
        Ok((out, ends))
    }

    /// Records a proven release before the source is asked ([`ReleaseState::Intended`]);
    /// false when the recording is released or taken back already. An intended release
    /// proven again keeps its first delete date and proof time (an earlier PUT may have set
    /// that date) until the source confirms the new one.
    pub async fn release_proven(&self, record: ReleaseRecord) -> Result<bool, LedgerError> {
        self.inner.put_release(record).await
    }

    /// Confirms an intended release with the delete date the source answered.
    pub async fn release_confirmed(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        self.inner.confirm_release(recording_id, delete_date).await
    }

    /// Records that the source refused the intended release asking `delete_date`: no date
    /// was set. False when the row no longer asks that date (another run changed it).
    pub async fn release_refused(
        &self,
        recording_id: &str,
        delete_date: &str,
        message: &str,
    ) -> Result<bool, LedgerError> {
        self.inner
            .refuse_intended(recording_id, delete_date, message)
            .await
    }

    /// Forgets the intended release asking `delete_date`, never sent (a run that could not
    /// send it). False when the row no longer asks that date.
    pub async fn release_withdrawn(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        self.inner.drop_intended(recording_id, delete_date).await
    }

    /// Records that a release was taken back at the source: its delete date is now
    /// `delete_date` (still a date: the row stays, and `verify` keeps watching its copy).
    pub async fn release_undone(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        self.inner.undo_release(recording_id, delete_date).await
    }

    /// The releases (confirmed or taken back) index part `seq` lists, by recording id. A
    /// release is listed by the first part opened after it was confirmed, and again by the
    /// first after it was taken back.
    pub async fn listed_releases(&self, seq: u64) -> Result<Vec<ReleaseRecord>, LedgerError> {
        self.inner.listed_releases(seq).await
    }

    /// Records a release the custody index lists in part `listed_in` (a ledger rebuilt from
    /// the store): a later part's line (an undo) replaces an earlier one's.
    pub async fn restore_release(
        &self,
        record: ReleaseRecord,
        listed_in: u64,
    ) -> Result<(), LedgerError> {
        self.inner.restore_release(record, listed_in).await
    }

    /// Every release recorded (all states), by recording id.
    pub async fn releases(&self) -> Result<Vec<ReleaseRecord>, LedgerError> {
        self.inner.releases(None).await
    }
}
