#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod chunks;
mod conversations;
mod custody;
mod group_commit;
mod pg_tls;
mod postgres;
mod releases;
mod sqlite;
mod uploads;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use genesys_media::{ConversationFacts, DiscoveredRecording};

pub use chunks::{Chunk, ChunkBacklog};
pub use conversations::{DEFAULT_LATE_WINDOW, LateStats, LateWindow};
pub use custody::{FindQuery, IndexPart, IndexedObject, StoredObject};
pub use postgres::redact_url;
pub use releases::{ReleaseCandidate, ReleaseRecord, ReleaseState, Settlement};
pub use uploads::{LedgerUploadLog, sweep_uploads};

/// Status of a recording in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    /// Claimed; an upload started and has not finished (or the process died).
    Pending,
    /// Stored and verified.
    Archived,
    /// The last attempt gave up; the next run retries it.
    Failed,
    /// Failed persistently (integrity); skipped until an operator releases it.
    Quarantined,
}

impl RecordStatus {
    /// The name stored in the database and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Archived => "archived",
            RecordStatus::Failed => "failed",
            RecordStatus::Quarantined => "quarantined",
        }
    }

    /// Parses [`RecordStatus::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RecordStatus::Pending,
            "archived" => RecordStatus::Archived,
            "failed" => RecordStatus::Failed,
            "quarantined" => RecordStatus::Quarantined,
            _ => return None,
        })
    }
}

impl fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Recording id.
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Object key.
    pub key: String,
    /// Status.
    pub status: RecordStatus,
    /// Bytes stored (archived only; `None` when adopted from the store without a size).
    pub size: Option<u64>,
    /// MD5 hex of the stored bytes, when known.
    pub md5: Option<String>,
    /// Download attempts over all runs.
    pub attempts: u32,
    /// Last error, for failed and quarantined rows.
    pub last_error: Option<String>,
    /// Media type (`audio`, `screen`, ...), when known.
    pub media_type: Option<String>,
    /// Recording start (RFC 3339), when known.
    pub start_time: Option<String>,
    /// Recording end (RFC 3339), when known.
    pub end_time: Option<String>,
    /// Instance holding the lease of a pending row.
    pub lease_owner: Option<String>,
    /// Last change (RFC 3339, UTC); for an archived row, when it was archived.
    pub updated_at: String,
    /// SHA-256 hex of the stored bytes (rows archived by this version on; adopted objects
    /// have none).
    pub sha256: Option<String>,
    /// What analytics said about the conversation when the recording was claimed.
    pub facts: ConversationFacts,
    /// When the lease of a pending row ends, in milliseconds since the epoch on the ledger's
    /// clock (the database server's for PostgreSQL); `None` when no lease is held.
    pub lease_until_ms: Option<i64>,
}

/// The outcome of [`Ledger::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the lease and should archive the recording.
    Claimed,
    /// The caller holds the lease of a recording with an earlier attempt that did not end in
    /// a verified object: cut short (a crash, a kill, an expired lease) or failed (an
    /// integrity failure whose object could not be removed, a quarantined recording released
    /// by an operator). An object under its key may be incomplete or unverified, so the
    /// caller must write it again rather than adopt it.
    Resumed,
    /// Already stored under this key; nothing to do.
    Archived {
        /// The key recorded for it.
        key: String,
    },
    /// Quarantined earlier; left alone until released (`quarantine retry`).
    Quarantined {
        /// The recorded reason.
        reason: String,
    },
    /// Another live instance holds the lease.
    Busy {
        /// That instance's id.
        owner: String,
    },
}

/// A ledger error, naming the database (a PostgreSQL URL is shown without its password).
#[derive(Debug, thiserror::Error)]
#[error("ledger {location}: {message}")]
pub struct LedgerError {
    pub(crate) location: String,
    pub(crate) message: String,
    #[source]
    pub(crate) source: Option<integrity::BoxError>,
    pub(crate) lease_lost: bool,
}

impl LedgerError {
    fn new(location: &str, message: impl Into<String>) -> Self {
        Self {
            location: location.to_string(),
            message: message.into(),
            source: None,
            lease_lost: false,
        }
    }

    /// The write was refused because the caller no longer holds the recording's lease
    /// (another instance took it over): the caller must stop working on it and write nothing.
    pub fn is_lease_lost(&self) -> bool {
        self.lease_lost
    }

    fn lease_lost(location: &str, recording_id: &str, owner: &str) -> Self {
        Self {
            lease_lost: true,
            ..Self::new(
                location,
                format!(
                    "recording {recording_id}: {owner} no longer holds its lease (another instance took it over); nothing was written"
                ),
            )
        }
    }

    fn with_source(
        location: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> LedgerError {
        Self {
            location: location.to_string(),
            message: e.to_string(),
            source: Some(Box::new(e)),
            lease_lost: false,
        }
    }
}

/// What a backend knows about a row when deciding a claim.
#[derive(Debug, Clone)]
pub(crate) struct RowState {
    pub(crate) status: RecordStatus,
    pub(crate) key: String,
    pub(crate) last_error: Option<String>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_until_ms: Option<i64>,
}

/// What to do with a claim request, given the row (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No row yet: insert it as pending with our lease.
    Insert,
    /// Take a row left pending by an interrupted attempt.
    Resume,
    /// Answer without writing.
    Answer(Claim),
}

/// The one claim rule both backends apply.
///
/// `exclusive` is true when no other process can use the ledger (SQLite's lock), so any lease
/// not held by `owner` belongs to a dead run.
pub(crate) fn decide(
    row: Option<&RowState>,
    owner: &str,
    now_ms: i64,
    exclusive: bool,
) -> Decision {
    let Some(row) = row else {
        return Decision::Insert;
    };
    match row.status {
        RecordStatus::Archived => Decision::Answer(Claim::Archived {
            key: row.key.clone(),
        }),
        RecordStatus::Quarantined => Decision::Answer(Claim::Quarantined {
            reason: row.last_error.clone().unwrap_or_default(),
        }),
        // An earlier attempt failed: whatever it left under the key is not trusted.
        RecordStatus::Failed => Decision::Resume,
        RecordStatus::Pending => match (&row.lease_owner, row.lease_until_ms) {
            (Some(o), Some(until)) if o != owner && until > now_ms && !exclusive => {
                Decision::Answer(Claim::Busy { owner: o.clone() })
            }
            _ => Decision::Resume,
        },
    }
}

/// The descriptive columns stored with a claim.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordInfo {
    pub(crate) recording_id: String,
    pub(crate) conversation_id: String,
    pub(crate) key: String,
    pub(crate) media_type: Option<String>,
    pub(crate) start_time: Option<String>,
    pub(crate) end_time: Option<String>,
    /// [`ConversationFacts`] as JSON, when any is known.
    pub(crate) facts: Option<String>,
    /// Search terms (name, value) for [`Ledger::find`].
    pub(crate) terms: Vec<(String, String)>,
}

impl RecordInfo {
    fn from_discovered(rec: &DiscoveredRecording, key: &str) -> Self {
        let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
            v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        Self {
            recording_id: rec.ledger_id().into_owned(),
            conversation_id: rec.conversation_id.clone(),
            key: key.to_string(),
            media_type: Some(rec.media_type.clone()).filter(|m| !m.is_empty()),
            start_time: t(rec.start_time),
            end_time: t(rec.end_time),
            facts: (!rec.facts.is_empty())
                .then(|| serde_json::to_string(rec.facts.as_ref()).ok())
                .flatten(),
            terms: rec
                .facts
                .terms()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// Parses the `facts` column (empty when absent or unreadable).
pub(crate) fn parse_facts(s: Option<String>) -> ConversationFacts {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// An object found in the store, to be recorded as archived ([`Ledger::adopt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedObject {
    /// Recording id.
    pub recording_id: String,
    /// Conversation id.
    pub conversation_id: String,
    /// Key.
    pub key: String,
    /// Size, when known.
    pub size: Option<u64>,
    /// MD5 hex, when known.
    pub md5: Option<String>,
    /// SHA-256 hex, when known (the store kept it with the object).
    pub sha256: Option<String>,
    /// Media type, when known.
    pub media_type: Option<String>,
    /// Start time (RFC 3339), when known.
    pub start_time: Option<String>,
    /// End time (RFC 3339), when known.
    pub end_time: Option<String>,
}

#[async_trait::async_trait]
pub(crate) trait Backend:
    chunks::ChunkStore + releases::ReleaseStore + Send + Sync + fmt::Debug
{
    fn location(&self) -> &str;
    async fn schema_version(&self) -> Result<u32, LedgerError>;
    async fn claim(
        &self,
        info: RecordInfo,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Claim, LedgerError>;
    async fn renew(
        &self,
        recording_id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, LedgerError>;
    /// False when the row is not `pending` under `outcome.owner`'s lease.
    async fn finish(
        &self,
        recording_id: &str,
        status: RecordStatus,
        outcome: Finish,
    ) -> Result<bool, LedgerError>;
    /// Quarantines a `failed` row with `reason`; false when it is not `failed` (any more).
    async fn give_up(&self, recording_id: &str, reason: &str) -> Result<bool, LedgerError>;
    async fn release(&self, recording_id: &str, owner: &str) -> Result<(), LedgerError>;
    async fn adopt(&self, obj: AdoptedObject) -> Result<bool, LedgerError>;
    async fn entries(&self, status: Option<RecordStatus>) -> Result<Vec<LedgerEntry>, LedgerError>;
    async fn entry(&self, recording_id: &str) -> Result<Option<LedgerEntry>, LedgerError>;
    async fn set_status(
        &self,
        recording_id: &str,
        from: RecordStatus,
        to: RecordStatus,
    ) -> Result<bool, LedgerError>;
    async fn checkpoint(&self, name: &str) -> Result<Option<String>, LedgerError>;
    async fn set_checkpoint(&self, name: &str, value: &str) -> Result<(), LedgerError>;
    /// Records an open multipart upload of `recording_id` by `owner`.
    async fn upload_started(
        &self,
        recording_id: &str,
        owner: &str,
        upload: &sink::StartedUpload,
    ) -> Result<(), LedgerError>;
    /// Forgets uploads (completed, aborted, or gone from the store).
    async fn uploads_ended(&self, upload_ids: &[String]) -> Result<(), LedgerError>;
    /// Recorded uploads whose writer no longer holds the recording's lease.
    async fn abandoned_uploads(&self) -> Result<Vec<sink::StartedUpload>, LedgerError>;
    /// Inserts or replaces conversation rows.
    async fn put_conversations(
        &self,
        rows: Vec<conversations::ConversationRow>,
    ) -> Result<(), LedgerError>;
    /// The rows of these conversations that exist.
    async fn conversations(
        &self,
        ids: &[String],
    ) -> Result<Vec<conversations::ConversationRow>, LedgerError>;
    /// Conversation rows whose recheck is due at `present_ms` (epoch ms), earliest first.
    async fn due_rechecks(
        &self,
        present_ms: i64,
        limit: usize,
    ) -> Result<Vec<conversations::ConversationRow>, LedgerError>;
    /// How many conversations have a recheck due after `present_ms`, and the latest due time.
    async fn rechecks_ahead(&self, present_ms: i64) -> Result<(u64, Option<i64>), LedgerError>;
    /// The status of each of these recordings that has a row.
    async fn statuses(
        &self,
        recording_ids: &[String],
    ) -> Result<std::collections::HashMap<String, RecordStatus>, LedgerError>;
    /// Rows matching `q`, by start time.
    async fn find(&self, q: FindQuery) -> Result<Vec<LedgerEntry>, LedgerError>;
    /// Every index part, by sequence number.
    async fn index_parts(&self) -> Result<Vec<IndexPart>, LedgerError>;
    /// Opens part `part.seq` and assigns it up to `limit` archived rows no part holds yet,
    /// oldest first. `None` when part `seq` exists already (another instance opened it);
    /// nothing is written when no row is waiting (`Some(0)`).
    async fn open_index_part(
        &self,
        part: IndexPart,
        limit: u32,
    ) -> Result<Option<u64>, LedgerError>;
    /// Up to `limit` of the rows part `seq` holds, by recording id, after `after`.
    async fn index_part_page(
        &self,
        seq: u64,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, LedgerError>;
    /// Records the SHA-256 of part `seq` as written.
    async fn close_index_part(&self, seq: u64, sha256: &str) -> Result<(), LedgerError>;
    /// Records a part found written in the store (a ledger rebuilt after a loss); false when
    /// the ledger has a part `seq` already.
    async fn insert_index_part(&self, part: IndexPart) -> Result<bool, LedgerError>;
    /// Moves the opened (unwritten) part `from` and its rows to sequence number `to` under
    /// `key`, when no part `to` exists; false otherwise.
    async fn move_index_part(&self, from: u64, to: u64, key: &str) -> Result<bool, LedgerError>;
    /// Marks archived rows as listed by part `seq` and fills their missing digests from the
    /// part's entries, where the row's key and size (and MD5 and SHA-256, when the row has
    /// them) agree and no other part claimed the row yet; returns how many rows it marked.
    async fn restore_indexed(
        &self,
        seq: u64,
        entries: Vec<custody::IndexedObject>,
    ) -> Result<u64, LedgerError>;
    /// Transactions committed and the writes they held, where the backend groups them.
    fn commit_counts(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Columns written when an attempt ends. The row is written only while `owner` holds its
/// lease (status `pending`, `lease_owner = owner`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Finish {
    pub(crate) owner: String,
    pub(crate) key: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) md5: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) sha256: Option<String>,
}

/// A handle on the ledger (SQLite or PostgreSQL). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<dyn Backend>,
}

impl Ledger {
    /// Opens the ledger named by `spec`: a `postgres://` or `postgresql://` URL, or a SQLite
    /// file path (created if missing). A SQLite file is locked for this process; a second
    /// process gets an error naming the lock. Pending migrations are applied.
    pub async fn open(spec: &str) -> Result<Self, LedgerError> {
        if is_postgres(spec) {
            Ok(Self {
                inner: Arc::new(postgres::PgLedger::connect(spec).await?),
            })
        } else {
            let path = std::path::PathBuf::from(spec);
            let l = tokio::task::spawn_blocking(move || sqlite::SqliteLedger::open(&path, true))
                .await
                .map_err(|e| LedgerError::new(spec, format!("opening failed: {e}")))??;
            Ok(Self { inner: Arc::new(l) })
        }
    }

    /// Opens the ledger for reading and operator commands without taking the SQLite
    /// process lock (a running daemon may hold it). Never used to archive.
    pub async fn open_shared(spec: &str) -> Result<Self, LedgerError> {
        if is_postgres(spec) {
            return Self::open(spec).await;
        }
        let path = std::path::PathBuf::from(spec);
        if !path.exists() {
            return Err(LedgerError::new(spec, "no such ledger file"));
        }
        let l = tokio::task::spawn_blocking(move || sqlite::SqliteLedger::open(&path, false))
            .await
            .map_err(|e| LedgerError::new(spec, format!("opening failed: {e}")))??;
        Ok(Self { inner: Arc::new(l) })
    }

    /// An in-memory SQLite ledger (tests, one-off runs).
    pub fn in_memory() -> Result<Self, LedgerError> {
        Ok(Self {
            inner: Arc::new(sqlite::SqliteLedger::in_memory()?),
        })
    }

    /// Transactions committed and the writes they held since the ledger was opened, for a
    /// backend that groups writes into shared transactions (SQLite); `None` otherwise.
    pub fn commit_counts(&self) -> Option<(u64, u64)> {
        self.inner.commit_counts()
    }

    /// Whether the ledger named by `spec` can be shared by several processes (a PostgreSQL
    /// URL; a SQLite file is locked by one process).
    pub fn can_be_shared(spec: &str) -> bool {
        is_postgres(spec)
    }

    /// Where the ledger is (file path, or URL without password).
    pub fn location(&self) -> &str {
        self.inner.location()
    }

    /// The schema version (number of migrations applied).
    pub async fn schema_version(&self) -> Result<u32, LedgerError> {
        self.inner.schema_version().await
    }

    /// Claims `rec` (to be stored under `key`) for `owner` for `lease`, unless it is archived,
    /// quarantined, or leased by another live instance. Written before any byte moves.
    pub async fn claim(
        &self,
        rec: &DiscoveredRecording,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, LedgerError> {
        self.inner
            .claim(
                RecordInfo::from_discovered(rec, key),
                owner,
                lease_ms(lease),
            )
            .await
    }

    /// Extends `owner`'s lease on a pending recording; false when the lease was lost.
    pub async fn renew(
        &self,
        recording_id: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, LedgerError> {
        self.inner.renew(recording_id, owner, lease_ms(lease)).await
    }

    /// Records a verified upload (and the attempts it took) by `owner`, releasing the lease.
    /// Fenced: refused with [`LedgerError::is_lease_lost`] when `owner` no longer holds the
    /// recording's lease (another instance took it over), so a stale instance can never
    /// overwrite the new owner's outcome.
    pub async fn archived(
        &self,
        recording_id: &str,
        owner: &str,
        key: &str,
        size: u64,
        md5: &str,
        attempts: u32,
    ) -> Result<(), LedgerError> {
        let stored = StoredObject {
            key: key.to_string(),
            size,
            md5: md5.to_string(),
            sha256: None,
        };
        self.archived_object(recording_id, owner, &stored, attempts)
            .await
    }

    /// Records that `owner`'s run gave up (`quarantine`: persistently, until released).
    /// Fenced like [`Ledger::archived`].
    pub async fn failed(
        &self,
        recording_id: &str,
        owner: &str,
        reason: &str,
        quarantine: bool,
        attempts: u32,
    ) -> Result<(), LedgerError> {
        let status = if quarantine {
            RecordStatus::Quarantined
        } else {
            RecordStatus::Failed
        };
        self.finish(
            recording_id,
            status,
            Finish {
                owner: owner.to_string(),
                error: Some(reason.to_string()),
                attempts,
                ..Finish::default()
            },
        )
        .await
    }

    async fn finish(
        &self,
        recording_id: &str,
        status: RecordStatus,
        f: Finish,
    ) -> Result<(), LedgerError> {
        let owner = f.owner.clone();
        if self.inner.finish(recording_id, status, f).await? {
            Ok(())
        } else {
            Err(LedgerError::lease_lost(
                self.location(),
                recording_id,
                &owner,
            ))
        }
    }

    /// Gives up on a `failed` recording: quarantines it with `reason` (the poll loop, at its
    /// attempt bound). Returns false when the row is no longer `failed` (another instance
    /// took it meanwhile).
    pub async fn give_up(&self, recording_id: &str, reason: &str) -> Result<bool, LedgerError> {
        self.inner.give_up(recording_id, reason).await
    }

    /// Gives a pending recording's lease back (shutdown before the upload finished); the row
    /// stays pending so the next run takes it.
    pub async fn release(&self, recording_id: &str, owner: &str) -> Result<(), LedgerError> {
        self.inner.release(recording_id, owner).await
    }

    /// Records an object found in the store as archived (the store had it before the ledger
    /// knew, or the ledger is being rebuilt). Returns true when the row changed.
    pub async fn adopt(&self, obj: AdoptedObject) -> Result<bool, LedgerError> {
        self.inner.adopt(obj).await
    }

    /// Every row, or those with `status`, ordered by recording id.
    pub async fn entries(
        &self,
        status: Option<RecordStatus>,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.inner.entries(status).await
    }

    /// One row.
    pub async fn entry(&self, recording_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        self.inner.entry(recording_id).await
    }

    /// The status of each of `recording_ids` that has a row.
    pub async fn statuses(
        &self,
        recording_ids: &[String],
    ) -> Result<std::collections::HashMap<String, RecordStatus>, LedgerError> {
        self.inner.statuses(recording_ids).await
    }

    /// The key under which `recording_id` is archived, if the ledger says it is.
    pub async fn archived_key(&self, recording_id: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .entry(recording_id)
            .await?
            .filter(|e| e.status == RecordStatus::Archived)
            .map(|e| e.key))
    }

    /// Releases quarantined recordings (all when `ids` is empty) so the next run retries
    /// them; returns the rows released, as they were.
    pub async fn release_quarantined(
        &self,
        ids: &[String],
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut out = Vec::new();
        let rows = self.entries(Some(RecordStatus::Quarantined)).await?;
        for row in rows {
            if (ids.is_empty() || ids.contains(&row.recording_id))
                && self
                    .inner
                    .set_status(
                        &row.recording_id,
                        RecordStatus::Quarantined,
                        RecordStatus::Failed,
                    )
                    .await?
            {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// A named checkpoint (continuous mode keeps the end of the last complete interval).
    pub async fn checkpoint(&self, name: &str) -> Result<Option<String>, LedgerError> {
        self.inner.checkpoint(name).await
    }

    /// A named checkpoint holding an RFC 3339 time (`None` when absent or unreadable).
    pub async fn checkpoint_time(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, LedgerError> {
        Ok(self
            .checkpoint(name)
            .await?
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    /// Sets a named checkpoint.
    pub async fn set_checkpoint(&self, name: &str, value: &str) -> Result<(), LedgerError> {
        self.inner.set_checkpoint(name, value).await
    }
}

fn is_postgres(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

fn lease_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RecordStatus, owner: Option<&str>, until: Option<i64>) -> RowState {
        RowState {
            status,
            key: "k".into(),
            last_error: Some("bad md5".into()),
            lease_owner: owner.map(str::to_string),
            lease_until_ms: until,
        }
    }

    #[test]
    fn the_claim_rule() {
        use RecordStatus::*;
        assert_eq!(decide(None, "a", 0, false), Decision::Insert);
        assert_eq!(
            decide(Some(&row(Archived, None, None)), "a", 0, false),
            Decision::Answer(Claim::Archived { key: "k".into() })
        );
        assert_eq!(
            decide(Some(&row(Quarantined, None, None)), "a", 0, false),
            Decision::Answer(Claim::Quarantined {
                reason: "bad md5".into()
            })
        );
        assert_eq!(
            decide(Some(&row(Failed, None, None)), "a", 0, false),
            Decision::Resume,
            "a failed attempt's leftovers are written over, never adopted"
        );
        // A live lease of another instance is respected...
        assert_eq!(
            decide(Some(&row(Pending, Some("b"), Some(100))), "a", 50, false),
            Decision::Answer(Claim::Busy { owner: "b".into() })
        );
        // ...an expired one is taken over, and so is our own.
        assert_eq!(
            decide(Some(&row(Pending, Some("b"), Some(100))), "a", 100, false),
            Decision::Resume
        );
        assert_eq!(
            decide(Some(&row(Pending, Some("a"), Some(100))), "a", 50, false),
            Decision::Resume
        );
        // With an exclusive ledger any other lease is from a dead run.
        assert_eq!(
            decide(Some(&row(Pending, Some("b"), Some(100))), "a", 50, true),
            Decision::Resume
        );
    }
}
