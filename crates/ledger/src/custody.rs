//! What the ledger knows for people and auditors: finding recordings by what analytics said
//! about them, and the parts of the chain-of-custody index (the archiver crate's `write_index`).

use super::{Finish, Ledger, LedgerEntry, LedgerError, RecordStatus};
use genesys_media::ConversationFacts;

/// What [`Ledger::find`] looks for; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindQuery {
    /// A user (agent) id that took part.
    pub agent: Option<String>,
    /// A queue id of the conversation.
    pub queue: Option<String>,
    /// A wrap-up code id.
    pub wrap_up_code: Option<String>,
    /// A calling or dialled number (stored only when personal data is kept).
    pub number: Option<String>,
    /// The conversation id.
    pub conversation: Option<String>,
    /// Recordings that started at or after this time (RFC 3339, UTC, milliseconds).
    pub from: Option<String>,
    /// Recordings that started before this time (RFC 3339, UTC, milliseconds).
    pub to: Option<String>,
    /// Only rows with this status.
    pub status: Option<RecordStatus>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

impl FindQuery {
    /// The search terms the query needs, as (name, value) pairs; `number` matches `ani` or
    /// `dnis` and is handled apart.
    pub(crate) fn terms(&self) -> Vec<(&'static str, &str)> {
        [
            ("agent", &self.agent),
            ("queue", &self.queue),
            ("wrapup", &self.wrap_up_code),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.as_deref().map(|v| (n, v)))
        .collect()
    }
}

/// One part of the chain-of-custody index, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPart {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// Object key of the part.
    pub key: String,
    /// SHA-256 hex of the previous part's bytes (`None` for the first part).
    pub previous: Option<String>,
    /// SHA-256 hex of this part's bytes, once written.
    pub sha256: Option<String>,
    /// Objects the part lists.
    pub entries: u64,
}

/// A verified write, as [`Ledger::archived_object`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Key written.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// MD5 hex of the bytes.
    pub md5: String,
    /// SHA-256 hex of the bytes, when computed.
    pub sha256: Option<String>,
}

impl Ledger {
    /// Records a verified upload like [`Ledger::archived`], with its SHA-256.
    pub async fn archived_object(
        &self,
        recording_id: &str,
        owner: &str,
        stored: &StoredObject,
        attempts: u32,
    ) -> Result<(), LedgerError> {
        self.finish(
            recording_id,
            RecordStatus::Archived,
            Finish {
                owner: owner.to_string(),
                key: Some(stored.key.clone()),
                size: Some(stored.size),
                md5: Some(stored.md5.clone()),
                sha256: stored.sha256.clone(),
                error: None,
                attempts,
            },
        )
        .await
    }

    /// The rows matching `q`, by start time: what the archive holds for an agent, a queue, a
    /// number or a conversation over a period, answered without a call to the source.
    pub async fn find(&self, q: &FindQuery) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.inner.find(q.clone()).await
    }

    /// Every index part recorded, by sequence number.
    pub async fn index_parts(&self) -> Result<Vec<IndexPart>, LedgerError> {
        self.inner.index_parts().await
    }

    /// Opens index part `part.seq` with up to `limit` archived rows no part lists yet;
    /// `None` when another instance opened that part first, `Some(0)` when nothing waits.
    pub async fn open_index_part(
        &self,
        part: IndexPart,
        limit: u32,
    ) -> Result<Option<u64>, LedgerError> {
        self.inner.open_index_part(part, limit).await
    }

    /// The rows index part `seq` lists, by recording id (all at once: see
    /// [`Ledger::index_part_page`] to page through a large part).
    pub async fn index_part_entries(&self, seq: u64) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut out: Vec<LedgerEntry> = Vec::new();
        loop {
            let after = out.last().map(|e| e.recording_id.clone());
            let page = self.index_part_page(seq, after, 1000).await?;
            let n = page.len();
            out.extend(page);
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// Up to `limit` rows of index part `seq`, by recording id, after recording `after`
    /// (keyset paging: each page is a walk of the ledger's index, whatever the part's size).
    pub async fn index_part_page(
        &self,
        seq: u64,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.inner.index_part_page(seq, after, limit).await
    }

    /// Records a part found written in the store, with its digest, when the ledger does not
    /// know it (a ledger rebuilt after a loss takes up the chain where the store has it);
    /// false when the ledger has a part with that number.
    pub async fn insert_index_part(&self, part: IndexPart) -> Result<bool, LedgerError> {
        self.inner.insert_index_part(part).await
    }

    /// Moves the opened part `from` (not written yet) and its rows to `to` under `key`: the
    /// store holds foreign bytes under `from`'s key. False when `to` exists already.
    pub async fn move_index_part(
        &self,
        from: u64,
        to: u64,
        key: &str,
    ) -> Result<bool, LedgerError> {
        self.inner.move_index_part(from, to, key).await
    }

    /// Records that index part `seq` was written with these bytes' SHA-256.
    pub async fn close_index_part(&self, seq: u64, sha256: &str) -> Result<(), LedgerError> {
        self.inner.close_index_part(seq, sha256).await
    }
}

/// What an index part says of one object, for [`Ledger::restore_indexed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedObject {
    /// Recording id (ledger id).
    pub recording_id: String,
    /// Key.
    pub key: String,
    /// Bytes.
    pub size: Option<u64>,
    /// MD5 hex.
    pub md5: Option<String>,
    /// SHA-256 hex.
    pub sha256: Option<String>,
    /// What analytics said of the conversation (agents, queues, wrap-up codes...), restored
    /// where the row lacks it so `find` answers after a rebuild.
    pub facts: ConversationFacts,
}

impl Ledger {
    /// After a rebuild: marks the archived rows part `seq` lists as indexed by it and takes
    /// their digests from it where the rebuilt row lacks them (the object's own metadata may
    /// not hold them), so `verify --rehash` checks every byte again and the next part does not
    /// list them once more without digests. A row whose key, size or MD5 disagrees with the
    /// entry is left alone: the next part lists it as the ledger has it, and `verify --chain`
    /// reports the difference.
    pub async fn restore_indexed(
        &self,
        seq: u64,
        entries: Vec<IndexedObject>,
    ) -> Result<u64, LedgerError> {
        self.inner.restore_indexed(seq, entries).await
    }
}

/// The SQL of [`Ledger::find`] for both backends: `columns` to select, `ph(n)` the n-th
/// placeholder (1-based). Returns the statement and its text parameters in order.
pub(crate) fn find_sql(
    q: &FindQuery,
    columns: &str,
    ph: impl Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut params: Vec<String> = Vec::new();
    let next = |v: &str, params: &mut Vec<String>| {
        params.push(v.to_string());
        ph(params.len())
    };
    let mut sql = format!("SELECT {columns} FROM recordings WHERE 1 = 1");
    if let Some(c) = &q.conversation {
        sql += &format!(" AND conversation_id = {}", next(c, &mut params));
    }
    if let Some(f) = &q.from {
        sql += &format!(" AND start_time >= {}", next(f, &mut params));
    }
    if let Some(t) = &q.to {
        sql += &format!(" AND start_time < {}", next(t, &mut params));
    }
    if let Some(s) = q.status {
        sql += &format!(" AND status = {}", next(s.as_str(), &mut params));
    }
    for (name, value) in q.terms() {
        let n = next(name, &mut params);
        let v = next(value, &mut params);
        sql += &format!(
            " AND EXISTS (SELECT 1 FROM search_terms t WHERE t.name = {n} AND t.value = {v}
               AND t.recording_id = recordings.recording_id)"
        );
    }
    if let Some(number) = &q.number {
        let bare = number.strip_prefix("tel:").unwrap_or(number);
        let a = next(bare, &mut params);
        let b = next(&format!("tel:{bare}"), &mut params);
        sql += &format!(
            " AND EXISTS (SELECT 1 FROM search_terms t WHERE t.name IN ('ani', 'dnis')
               AND t.value IN ({a}, {b}) AND t.recording_id = recordings.recording_id)"
        );
    }
    sql += " ORDER BY start_time, recording_id";
    if let Some(l) = q.limit {
        sql += &format!(" LIMIT {l}");
    }
    (sql, params)
}
