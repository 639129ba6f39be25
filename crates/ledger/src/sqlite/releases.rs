//! Releases at the source in the SQLite ledger.

use rusqlite::{OptionalExtension, params};

use super::{COLUMNS, SqliteLedger, entry_from_row};
use crate::releases::{ReleaseRecord, ReleaseState, ReleaseStore};
use crate::{LedgerEntry, LedgerError, RecordStatus};

const RELEASE_COLUMNS: &str = "recording_id, conversation_id, object_key, size, md5, sha256, index_seq, index_sha256, delete_date, state, proven_at, released_at, undone_at, last_error";

fn release_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRecord> {
    let state: String = r.get(9)?;
    Ok(ReleaseRecord {
        recording_id: r.get(0)?,
        conversation_id: r.get(1)?,
        key: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        md5: r.get(4)?,
        sha256: r.get(5)?,
        index_seq: r.get::<_, i64>(6)? as u64,
        index_sha256: r.get(7)?,
        delete_date: r.get(8)?,
        // An unknown state reads as intended: treated as possibly released, never as nothing.
        state: ReleaseState::parse(&state).unwrap_or(ReleaseState::Intended),
        proven_at: r.get(10)?,
        released_at: r.get(11)?,
        undone_at: r.get(12)?,
        last_error: r.get(13)?,
    })
}

#[async_trait::async_trait]
impl ReleaseStore for SqliteLedger {
    async fn release_rows(
        &self,
        after: Option<String>,
        limit: u32,
        refused: bool,
    ) -> Result<Vec<(LedgerEntry, Option<u64>)>, LedgerError> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {cols}, r.index_seq FROM recordings r
                  WHERE (?1 IS NULL OR r.recording_id > ?1)
                    AND NOT EXISTS (SELECT 1 FROM releases x
                                     WHERE x.recording_id = r.recording_id
                                       AND (x.state IN ('released', 'undone')
                                            OR (x.state = 'refused' AND NOT ?3)))
                  ORDER BY r.recording_id LIMIT ?2"
            ))?;
            st.query_map(params![after, limit, refused], |r| {
                Ok((
                    entry_from_row(r)?,
                    r.get::<_, Option<i64>>(16)?.map(|s| s as u64),
                ))
            })?
            .collect()
        })
        .await
    }

    async fn conversation_members(
        &self,
        conversation_ids: &[String],
    ) -> Result<Vec<(String, String, RecordStatus)>, LedgerError> {
        let ids = conversation_ids.to_vec();
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT recording_id, status FROM recordings WHERE conversation_id = ?1",
            )?;
            let mut out = Vec::new();
            for cid in ids {
                let rows = st.query_map(params![cid], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                for row in rows {
                    let (rid, status) = row?;
                    // An unreadable status is not archived.
                    let status = RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed);
                    out.push((cid.clone(), rid, status));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_release(&self, r: ReleaseRecord) -> Result<bool, LedgerError> {
        self.write(move |c| {
            let n = c.execute(
                "INSERT INTO releases (recording_id, conversation_id, object_key, size, md5,
                   sha256, index_seq, index_sha256, delete_date, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'intended')
                 ON CONFLICT(recording_id) DO UPDATE SET conversation_id = excluded.conversation_id,
                   object_key = excluded.object_key, size = excluded.size, md5 = excluded.md5,
                   sha256 = excluded.sha256, index_seq = excluded.index_seq,
                   index_sha256 = excluded.index_sha256,
                   delete_date = CASE WHEN releases.state = 'refused' THEN excluded.delete_date
                                      ELSE releases.delete_date END,
                   proven_at = CASE WHEN releases.state = 'refused' THEN excluded.proven_at
                                    ELSE releases.proven_at END,
                   state = 'intended', last_error = NULL
                 WHERE releases.state IN ('intended', 'refused')",
                params![
                    r.recording_id,
                    r.conversation_id,
                    r.key,
                    r.size as i64,
                    r.md5,
                    r.sha256,
                    r.index_seq as i64,
                    r.index_sha256,
                    r.delete_date
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn confirm_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let (id, date) = (recording_id.to_string(), delete_date.to_string());
        self.write(move |c| {
            let n = c.execute(
                "UPDATE releases SET state = 'released', delete_date = ?2, listed_in = NULL,
                   released_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE recording_id = ?1 AND state = 'intended'",
                params![id, date],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn drop_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let (id, date) = (recording_id.to_string(), delete_date.to_string());
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM releases
                  WHERE recording_id = ?1 AND state = 'intended' AND delete_date = ?2",
                params![id, date],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn refuse_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
        message: &str,
    ) -> Result<bool, LedgerError> {
        let (id, date, msg) = (
            recording_id.to_string(),
            delete_date.to_string(),
            message.to_string(),
        );
        self.write(move |c| {
            let n = c.execute(
                "UPDATE releases SET state = 'refused', last_error = ?3
                  WHERE recording_id = ?1 AND state = 'intended' AND delete_date = ?2",
                params![id, date, msg],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn undo_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let (id, date) = (recording_id.to_string(), delete_date.to_string());
        self.write(move |c| {
            let n = c.execute(
                "UPDATE releases SET state = 'undone', delete_date = ?2, listed_in = NULL,
                   undone_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE recording_id = ?1 AND state IN ('intended', 'released')",
                params![id, date],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn restore_release(&self, r: ReleaseRecord, listed_in: u64) -> Result<(), LedgerError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO releases (recording_id, conversation_id, object_key, size, md5,
                   sha256, index_seq, index_sha256, delete_date, state, proven_at, released_at,
                   undone_at, listed_in)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT(recording_id) DO UPDATE SET conversation_id = excluded.conversation_id,
                   object_key = excluded.object_key, size = excluded.size, md5 = excluded.md5,
                   sha256 = excluded.sha256, index_seq = excluded.index_seq,
                   index_sha256 = excluded.index_sha256, delete_date = excluded.delete_date,
                   state = excluded.state, proven_at = excluded.proven_at,
                   released_at = excluded.released_at, undone_at = excluded.undone_at,
                   listed_in = excluded.listed_in, last_error = NULL",
                params![
                    r.recording_id,
                    r.conversation_id,
                    r.key,
                    r.size as i64,
                    r.md5,
                    r.sha256,
                    r.index_seq as i64,
                    r.index_sha256,
                    r.delete_date,
                    r.state.as_str(),
                    r.proven_at,
                    r.released_at,
                    r.undone_at,
                    listed_in as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn listed_releases(&self, seq: u64) -> Result<Vec<ReleaseRecord>, LedgerError> {
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases WHERE listed_in = ?1 ORDER BY recording_id"
            ))?;
            st.query_map(params![seq as i64], release_from_row)?
                .collect()
        })
        .await
    }

    async fn releases(
        &self,
        recording_ids: Option<Vec<String>>,
    ) -> Result<Vec<ReleaseRecord>, LedgerError> {
        self.run(move |c| match recording_ids {
            None => {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {RELEASE_COLUMNS} FROM releases ORDER BY recording_id"
                ))?;
                st.query_map([], release_from_row)?.collect()
            }
            Some(ids) => {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {RELEASE_COLUMNS} FROM releases WHERE recording_id = ?1"
                ))?;
                let mut out = Vec::new();
                for id in ids {
                    if let Some(r) = st.query_row(params![id], release_from_row).optional()? {
                        out.push(r);
                    }
                }
                Ok(out)
            }
        })
        .await
    }
}
