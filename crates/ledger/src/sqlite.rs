//! The SQLite backend (rusqlite, bundled SQLite): WAL, `synchronous = FULL`, versioned
//! migrations in `PRAGMA user_version`, and an exclusive process lock on `<file>.lock`.
//!
//! Longer than ~800 lines on purpose: it is one `impl Backend` (one statement or transaction
//! per method), which Rust keeps in one block; its migrations, chunks and tests are beside it.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::custody::find_sql;

mod chunks;
mod migrations;
mod releases;
#[cfg(test)]
mod tests;

use super::group_commit::{GroupCommit, WriteError};
use super::{
    AdoptedObject, Backend, Claim, Decision, FindQuery, Finish, IndexPart, LedgerEntry,
    LedgerError, RecordInfo, RecordStatus, RowState, decide,
};
pub(super) use migrations::MIGRATIONS;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";
const CONVERSATION_COLUMNS: &str =
    "conversation_id, end_time, files, complete, recheck_due, conversation";

/// A conversation row from [`CONVERSATION_COLUMNS`].
fn conversation_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<super::conversations::ConversationRow> {
    let files: String = r.get(2)?;
    Ok(super::conversations::ConversationRow {
        conversation_id: r.get(0)?,
        end_time: r.get(1)?,
        // An unreadable list keeps the conversation unsettled.
        files: serde_json::from_str(&files).unwrap_or_else(|_| vec![String::new()]),
        complete: r.get(3)?,
        recheck_due: r.get(4)?,
        conversation: r.get(5)?,
    })
}
const COLUMNS: &str = "recording_id, conversation_id, object_key, status, size, md5, attempts, last_error, media_type, start_time, end_time, lease_owner, updated_at, sha256, facts, lease_until";

#[derive(Debug)]
pub(super) struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
    group: Arc<GroupCommit>,
    path: String,
    exclusive: bool,
    _lock: Option<File>,
}

impl SqliteLedger {
    /// Opens `path`; with `lock`, takes the process lock first (failing if another process
    /// holds it).
    pub(super) fn open(path: &Path, lock: bool) -> Result<Self, LedgerError> {
        let p = path.display().to_string();
        let lock_file = if lock {
            let lp = format!("{p}.lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lp)
                .map_err(|e| LedgerError::new(&p, format!("cannot open lock file {lp}: {e}")))?;
            match f.try_lock() {
                Ok(()) => Some(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LedgerError::new(
                        &p,
                        format!(
                            "in use by another genesys-archiver process (lock {lp}); run one \
                             process per SQLite ledger, or share a PostgreSQL ledger between instances"
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(LedgerError::new(&p, format!("cannot lock {lp}: {e}")));
                }
            }
        } else {
            None
        };
        let conn = Connection::open(path).map_err(|e| LedgerError::with_source(&p, e))?;
        Self::init(conn, p, lock, lock_file)
    }

    pub(super) fn in_memory() -> Result<Self, LedgerError> {
        let conn =
            Connection::open_in_memory().map_err(|e| LedgerError::with_source(":memory:", e))?;
        Self::init(conn, ":memory:".into(), true, None)
    }

    fn init(
        mut conn: Connection,
        path: String,
        exclusive: bool,
        lock: Option<File>,
    ) -> Result<Self, LedgerError> {
        let p = path.clone();
        let err = |e| LedgerError::with_source(&p, e);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&err)?;
        if version as usize > MIGRATIONS.len() {
            return Err(LedgerError::new(
                &path,
                format!(
                    "schema version {version} is newer than this program knows ({}); upgrade genesys-archiver",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(&err)?;
            tx.execute_batch(m).map_err(&err)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            group: Arc::default(),
            path,
            exclusive,
            _lock: lock,
        })
    }

    /// Runs a write through group commit: it shares a transaction with the writes of other
    /// workers queued meanwhile, and returns once that transaction committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        self.group.write(&self.conn, f).await.map_err(|e| match e {
            WriteError::Sql(e) => LedgerError::with_source(&self.path, e),
            WriteError::Commit(m) => {
                LedgerError::new(&self.path, format!("the write was not committed: {m}"))
            }
            WriteError::Task(m) => LedgerError::new(&self.path, format!("ledger task failed: {m}")),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(|e| LedgerError::with_source(&path, e))
        })
        .await
        .unwrap_or_else(|e| {
            Err(LedgerError::new(
                &self.path,
                format!("ledger task failed: {e}"),
            ))
        })
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let status: String = r.get(3)?;
    Ok(LedgerEntry {
        recording_id: r.get(0)?,
        conversation_id: r.get(1)?,
        key: r.get(2)?,
        status: RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed),
        size: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
        md5: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        media_type: r.get(8)?,
        start_time: r.get(9)?,
        end_time: r.get(10)?,
        lease_owner: r.get(11)?,
        updated_at: r.get(12)?,
        sha256: r.get(13)?,
        facts: super::parse_facts(r.get(14)?),
        lease_until_ms: r.get(15)?,
    })
}

/// Stores what analytics said about a claimed recording and its search terms.
fn write_facts(tx: &Connection, info: &RecordInfo) -> rusqlite::Result<()> {
    if info.facts.is_none() {
        return Ok(());
    }
    tx.execute(
        "UPDATE recordings SET facts = ?2 WHERE recording_id = ?1",
        params![info.recording_id, info.facts],
    )?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO search_terms (name, value, recording_id) VALUES (?1, ?2, ?3)",
    )?;
    for (n, v) in &info.terms {
        ins.execute(params![n, v, info.recording_id])?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Backend for SqliteLedger {
    fn location(&self) -> &str {
        &self.path
    }

    fn commit_counts(&self) -> Option<(u64, u64)> {
        Some(self.group.counts())
    }

    async fn schema_version(&self) -> Result<u32, LedgerError> {
        self.run(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .await
    }

    async fn claim(
        &self,
        info: RecordInfo,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Claim, LedgerError> {
        let owner = owner.to_string();
        let exclusive = self.exclusive;
        self.write(move |c| {
            let tx = c;
            let row = tx
                .query_row(
                    "SELECT status, object_key, last_error, lease_owner, lease_until
                     FROM recordings WHERE recording_id = ?1",
                    params![info.recording_id],
                    |r| {
                        let s: String = r.get(0)?;
                        Ok(RowState {
                            status: RecordStatus::parse(&s).unwrap_or(RecordStatus::Failed),
                            key: r.get(1)?,
                            last_error: r.get(2)?,
                            lease_owner: r.get(3)?,
                            lease_until_ms: r.get(4)?,
                        })
                    },
                )
                .optional()?;
            let now = now_ms();
            let claim = match decide(row.as_ref(), &owner, now, exclusive) {
                Decision::Answer(a) => a,
                Decision::Insert => {
                    tx.execute(
                        "INSERT INTO recordings (recording_id, conversation_id, object_key, status,
                           lease_owner, lease_until, media_type, start_time, end_time)
                         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8)",
                        params![
                            info.recording_id,
                            info.conversation_id,
                            info.key,
                            owner,
                            now + lease_ms,
                            info.media_type,
                            info.start_time,
                            info.end_time
                        ],
                    )?;
                    write_facts(tx, &info)?;
                    Claim::Claimed
                }
                Decision::Resume => {
                    tx.execute(
                        &format!(
                            "UPDATE recordings SET status = 'pending', conversation_id = ?2,
                               object_key = ?3, lease_owner = ?4, lease_until = ?5,
                               media_type = COALESCE(?6, media_type),
                               start_time = COALESCE(?7, start_time),
                               end_time = COALESCE(?8, end_time), updated_at = {NOW}
                             WHERE recording_id = ?1"
                        ),
                        params![
                            info.recording_id,
                            info.conversation_id,
                            info.key,
                            owner,
                            now + lease_ms,
                            info.media_type,
                            info.start_time,
                            info.end_time
                        ],
                    )?;
                    write_facts(tx, &info)?;
                    Claim::Resumed
                }
            };
            Ok(claim)
        })
        .await
    }

    async fn renew(
        &self,
        recording_id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, LedgerError> {
        let (r, o) = (recording_id.to_string(), owner.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE recordings SET lease_until = ?3
                 WHERE recording_id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                params![r, o, now_ms() + lease_ms],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn finish(
        &self,
        recording_id: &str,
        status: RecordStatus,
        f: Finish,
    ) -> Result<bool, LedgerError> {
        let r = recording_id.to_string();
        self.write(move |c| {
            c.execute(
                &format!(
                    "UPDATE recordings SET status = ?2, object_key = COALESCE(?3, object_key),
                       size = COALESCE(?4, size), md5 = COALESCE(?5, md5), last_error = ?6,
                       attempts = attempts + ?7, lease_owner = NULL, lease_until = NULL,
                       sha256 = CASE WHEN ?2 = 'archived' THEN ?9 ELSE sha256 END,
                       index_seq = CASE WHEN ?2 = 'archived' THEN NULL ELSE index_seq END,
                       updated_at = {NOW}
                     WHERE recording_id = ?1 AND status = 'pending' AND lease_owner = ?8"
                ),
                params![
                    r,
                    status.as_str(),
                    f.key,
                    f.size.map(|s| s as i64),
                    f.md5,
                    f.error,
                    f.attempts,
                    f.owner,
                    f.sha256
                ],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn give_up(&self, recording_id: &str, reason: &str) -> Result<bool, LedgerError> {
        let (r, why) = (recording_id.to_string(), reason.to_string());
        self.write(move |c| {
            c.execute(
                &format!(
                    "UPDATE recordings SET status = 'quarantined', last_error = ?2,
                       updated_at = {NOW}
                     WHERE recording_id = ?1 AND status = 'failed'"
                ),
                params![r, why],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn release(&self, recording_id: &str, owner: &str) -> Result<(), LedgerError> {
        let (r, o) = (recording_id.to_string(), owner.to_string());
        self.write(move |c| {
            c.execute(
                &format!(
                    "UPDATE recordings SET lease_owner = NULL, lease_until = NULL, updated_at = {NOW}
                     WHERE recording_id = ?1 AND lease_owner = ?2 AND status = 'pending'"
                ),
                params![r, o],
            )
        })
        .await
        .map(|_| ())
    }

    async fn adopt(&self, o: AdoptedObject) -> Result<bool, LedgerError> {
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO recordings (recording_id, conversation_id, object_key, status, size,
                       md5, media_type, start_time, end_time, sha256)
                     VALUES (?1, ?2, ?3, 'archived', ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(recording_id) DO UPDATE SET status = 'archived',
                       object_key = excluded.object_key, size = COALESCE(excluded.size, size),
                       md5 = COALESCE(excluded.md5, md5), last_error = NULL,
                       lease_owner = NULL, lease_until = NULL, sha256 = excluded.sha256,
                       index_seq = NULL,
                       media_type = COALESCE(media_type, excluded.media_type),
                       start_time = COALESCE(start_time, excluded.start_time),
                       end_time = COALESCE(end_time, excluded.end_time), updated_at = {NOW}
                     WHERE status <> 'archived'"
                ),
                params![
                    o.recording_id,
                    o.conversation_id,
                    o.key,
                    o.size.map(|s| s as i64),
                    o.md5,
                    o.media_type,
                    o.start_time,
                    o.end_time,
                    o.sha256
                ],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn entries(&self, status: Option<RecordStatus>) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.run(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM recordings WHERE ?1 IS NULL OR status = ?1 ORDER BY recording_id"
            ))?;
            let rows = st.query_map(params![status.map(RecordStatus::as_str)], entry_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn entry(&self, recording_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        let r = recording_id.to_string();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM recordings WHERE recording_id = ?1"),
                params![r],
                entry_from_row,
            )
            .optional()
        })
        .await
    }

    async fn set_status(
        &self,
        recording_id: &str,
        from: RecordStatus,
        to: RecordStatus,
    ) -> Result<bool, LedgerError> {
        let r = recording_id.to_string();
        self.write(move |c| {
            c.execute(
                &format!(
                    "UPDATE recordings SET status = ?3, updated_at = {NOW}
                     WHERE recording_id = ?1 AND status = ?2"
                ),
                params![r, from.as_str(), to.as_str()],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<String>, LedgerError> {
        let n = name.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT value FROM checkpoints WHERE name = ?1",
                params![n],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn set_checkpoint(&self, name: &str, value: &str) -> Result<(), LedgerError> {
        let (n, v) = (name.to_string(), value.to_string());
        self.write(move |c| {
            c.execute(
                "INSERT INTO checkpoints (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![n, v],
            )
        })
        .await
        .map(|_| ())
    }

    async fn upload_started(
        &self,
        recording_id: &str,
        owner: &str,
        upload: &sink::StartedUpload,
    ) -> Result<(), LedgerError> {
        let (r, o) = (recording_id.to_string(), owner.to_string());
        let (k, u) = (upload.key.clone(), upload.upload_id.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO uploads (upload_id, object_key, recording_id, owner)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(upload_id) DO NOTHING",
                params![u, k, r, o],
            )
        })
        .await
        .map(|_| ())
    }

    async fn uploads_ended(&self, upload_ids: &[String]) -> Result<(), LedgerError> {
        let ids = upload_ids.to_vec();
        self.write(move |c| {
            for id in &ids {
                c.execute("DELETE FROM uploads WHERE upload_id = ?1", params![id])?;
            }
            Ok(())
        })
        .await
    }

    async fn put_conversations(
        &self,
        rows: Vec<super::conversations::ConversationRow>,
    ) -> Result<(), LedgerError> {
        self.write(move |c| {
            let tx = c;
            for r in &rows {
                let files = serde_json::to_string(&r.files).unwrap_or_else(|_| "[]".into());
                tx.execute(
                    &format!(
                        "INSERT INTO conversations (conversation_id, end_time, files, complete,
                           recheck_due, conversation)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT(conversation_id) DO UPDATE SET end_time = excluded.end_time,
                           files = excluded.files, complete = excluded.complete,
                           recheck_due = excluded.recheck_due,
                           conversation = excluded.conversation,
                           resolved_at = {NOW}"
                    ),
                    params![
                        r.conversation_id,
                        r.end_time,
                        files,
                        r.complete,
                        r.recheck_due,
                        r.conversation
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn conversations(
        &self,
        ids: &[String],
    ) -> Result<Vec<super::conversations::ConversationRow>, LedgerError> {
        let ids = ids.to_vec();
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE conversation_id = ?1"
            ))?;
            let mut out = Vec::new();
            for id in &ids {
                if let Some(row) = st.query_row(params![id], conversation_row).optional()? {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn due_rechecks(
        &self,
        present_ms: i64,
        limit: usize,
    ) -> Result<Vec<super::conversations::ConversationRow>, LedgerError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations
                 WHERE recheck_due IS NOT NULL AND recheck_due <= ?1
                 ORDER BY recheck_due, conversation_id LIMIT ?2"
            ))?;
            let rows = st
                .query_map(params![present_ms, limit as i64], conversation_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn rechecks_ahead(&self, present_ms: i64) -> Result<(u64, Option<i64>), LedgerError> {
        self.run(move |c| {
            let (n, last): (i64, Option<i64>) = c.query_row(
                "SELECT count(*), max(recheck_due) FROM conversations WHERE recheck_due > ?1",
                params![present_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((n as u64, last))
        })
        .await
    }

    async fn statuses(
        &self,
        recording_ids: &[String],
    ) -> Result<std::collections::HashMap<String, RecordStatus>, LedgerError> {
        let ids = recording_ids.to_vec();
        self.run(move |c| {
            let mut st =
                c.prepare_cached("SELECT status FROM recordings WHERE recording_id = ?1")?;
            let mut out = std::collections::HashMap::new();
            for id in ids {
                let s: Option<String> = st.query_row(params![id], |r| r.get(0)).optional()?;
                if let Some(s) = s.as_deref().and_then(RecordStatus::parse) {
                    out.insert(id, s);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find(&self, q: FindQuery) -> Result<Vec<LedgerEntry>, LedgerError> {
        let (sql, args) = find_sql(&q, COLUMNS, |n| format!("?{n}"));
        self.run(move |c| {
            let mut st = c.prepare(&sql)?;
            st.query_map(rusqlite::params_from_iter(args), entry_from_row)?
                .collect()
        })
        .await
    }

    async fn index_parts(&self) -> Result<Vec<IndexPart>, LedgerError> {
        self.run(|c| {
            let mut st = c.prepare(
                "SELECT seq, object_key, previous, sha256, entries FROM index_parts ORDER BY seq",
            )?;
            st.query_map([], |r| {
                Ok(IndexPart {
                    seq: r.get::<_, i64>(0)? as u64,
                    key: r.get(1)?,
                    previous: r.get(2)?,
                    sha256: r.get(3)?,
                    entries: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect()
        })
        .await
    }

    async fn open_index_part(
        &self,
        part: IndexPart,
        limit: u32,
    ) -> Result<Option<u64>, LedgerError> {
        self.write(move |c| {
            let tx = c;
            let seq = part.seq as i64;
            let exists = tx
                .query_row("SELECT 1 FROM index_parts WHERE seq = ?1", params![seq], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Ok(None);
            }
            let objects = tx.execute(
                "UPDATE recordings SET index_seq = ?1 WHERE recording_id IN (
                   SELECT recording_id FROM recordings
                   WHERE status = 'archived' AND index_seq IS NULL
                   ORDER BY updated_at, recording_id LIMIT ?2)",
                params![seq, limit],
            )?;
            // Releases confirmed or taken back since the last part (see `releases`).
            let releases = tx.execute(
                "UPDATE releases SET listed_in = ?1 WHERE recording_id IN (
                   SELECT recording_id FROM releases
                   WHERE state IN ('released', 'undone') AND listed_in IS NULL
                   ORDER BY recording_id LIMIT ?2)",
                params![seq, limit],
            )?;
            let n = objects + releases;
            if n == 0 {
                return Ok(Some(0));
            }
            tx.execute(
                "INSERT INTO index_parts (seq, object_key, previous, entries) VALUES (?1, ?2, ?3, ?4)",
                params![seq, part.key, part.previous, n as i64],
            )?;
            Ok(Some(n as u64))
        })
        .await
    }

    async fn index_part_page(
        &self,
        seq: u64,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM recordings
                 WHERE index_seq = ?1 AND (?3 IS NULL OR recording_id > ?3)
                 ORDER BY recording_id LIMIT ?2"
            ))?;
            st.query_map(params![seq as i64, limit, after], entry_from_row)?
                .collect()
        })
        .await
    }

    async fn insert_index_part(&self, part: IndexPart) -> Result<bool, LedgerError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO index_parts (seq, object_key, previous, sha256, entries)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(seq) DO NOTHING",
                params![
                    part.seq as i64,
                    part.key,
                    part.previous,
                    part.sha256,
                    part.entries as i64
                ],
            )
        })
        .await
        .map(|n| n == 1)
    }

    async fn move_index_part(&self, from: u64, to: u64, key: &str) -> Result<bool, LedgerError> {
        let key = key.to_string();
        self.write(move |c| {
            let moved = c.execute(
                "UPDATE index_parts SET seq = ?2, object_key = ?3
                 WHERE seq = ?1 AND sha256 IS NULL
                   AND NOT EXISTS (SELECT 1 FROM index_parts WHERE seq = ?2)",
                params![from as i64, to as i64, key],
            )?;
            if moved == 1 {
                c.execute(
                    "UPDATE recordings SET index_seq = ?2 WHERE index_seq = ?1",
                    params![from as i64, to as i64],
                )?;
                c.execute(
                    "UPDATE releases SET listed_in = ?2 WHERE listed_in = ?1",
                    params![from as i64, to as i64],
                )?;
            }
            Ok(moved == 1)
        })
        .await
    }

    async fn restore_indexed(
        &self,
        seq: u64,
        entries: Vec<super::custody::IndexedObject>,
    ) -> Result<u64, LedgerError> {
        self.write(move |c| {
            let mut n = 0u64;
            let mut st = c.prepare_cached(
                "UPDATE recordings SET index_seq = ?1,
                   md5 = COALESCE(md5, ?4), sha256 = COALESCE(sha256, ?5)
                 WHERE recording_id = ?2 AND object_key = ?3 AND status = 'archived'
                   AND index_seq IS NULL
                   AND (size IS NULL OR ?6 IS NULL OR size = ?6)
                   AND (md5 IS NULL OR ?4 IS NULL OR lower(md5) = lower(?4))
                   AND (sha256 IS NULL OR ?5 IS NULL OR lower(sha256) = lower(?5))",
            )?;
            let mut facts = c.prepare_cached(
                "UPDATE recordings SET facts = ?2 WHERE recording_id = ?1 AND facts IS NULL",
            )?;
            let mut terms = c.prepare_cached(
                "INSERT OR IGNORE INTO search_terms (name, value, recording_id) VALUES (?1, ?2, ?3)",
            )?;
            for e in &entries {
                let marked = st.execute(params![
                    seq as i64,
                    e.recording_id,
                    e.key,
                    e.md5,
                    e.sha256,
                    e.size.map(|s| s as i64)
                ])? as u64;
                if marked > 0 && !e.facts.is_empty() {
                    let json = serde_json::to_string(&e.facts).ok();
                    if facts.execute(params![e.recording_id, json])? > 0 {
                        for (name, value) in e.facts.terms() {
                            terms.execute(params![name, value, e.recording_id])?;
                        }
                    }
                }
                n += marked;
            }
            Ok(n)
        })
        .await
    }

    async fn close_index_part(&self, seq: u64, sha256: &str) -> Result<(), LedgerError> {
        let sha = sha256.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE index_parts SET sha256 = ?2 WHERE seq = ?1",
                params![seq as i64, sha],
            )
            .map(|_| ())
        })
        .await
    }

    async fn abandoned_uploads(&self) -> Result<Vec<sink::StartedUpload>, LedgerError> {
        let now = now_ms();
        self.run(move |c| {
            let mut st = c.prepare(
                "SELECT u.object_key, u.upload_id FROM uploads u
                 WHERE NOT EXISTS (SELECT 1 FROM recordings r
                   WHERE r.recording_id = u.recording_id AND r.status = 'pending'
                     AND r.lease_owner = u.owner AND r.lease_until > ?1)
                 ORDER BY u.started_at, u.upload_id",
            )?;
            st.query_map(params![now], |r| {
                Ok(sink::StartedUpload {
                    key: r.get(0)?,
                    upload_id: r.get(1)?,
                })
            })?
            .collect()
        })
        .await
    }
}
