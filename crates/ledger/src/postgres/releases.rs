//! Releases at the source in the PostgreSQL ledger.

use tokio_postgres::Row;

use super::{PgLedger, entry_from_row};
use crate::releases::{ReleaseRecord, ReleaseState, ReleaseStore};
use crate::{LedgerEntry, LedgerError, RecordStatus};

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

fn release_columns() -> String {
    format!(
        "recording_id, conversation_id, object_key, size, md5, sha256, index_seq, index_sha256, \
         delete_date, state, to_char(proven_at AT TIME ZONE 'UTC', {TS}), \
         to_char(released_at AT TIME ZONE 'UTC', {TS}), to_char(undone_at AT TIME ZONE 'UTC', {TS}), \
         last_error"
    )
}

fn release_from_row(r: &Row) -> ReleaseRecord {
    let state: String = r.get(9);
    ReleaseRecord {
        recording_id: r.get(0),
        conversation_id: r.get(1),
        key: r.get(2),
        size: r.get::<_, i64>(3) as u64,
        md5: r.get(4),
        sha256: r.get(5),
        index_seq: r.get::<_, i64>(6) as u64,
        index_sha256: r.get(7),
        delete_date: r.get(8),
        // An unknown state reads as intended: treated as possibly released, never as nothing.
        state: ReleaseState::parse(&state).unwrap_or(ReleaseState::Intended),
        proven_at: r.get(10),
        released_at: r.get(11),
        undone_at: r.get(12),
        last_error: r.get(13),
    }
}

#[async_trait::async_trait]
impl ReleaseStore for PgLedger {
    async fn release_rows(
        &self,
        after: Option<String>,
        limit: u32,
        refused: bool,
    ) -> Result<Vec<(LedgerEntry, Option<u64>)>, LedgerError> {
        let cols = super::COLUMNS
            .split(", ")
            .map(|c| {
                if c.starts_with("to_char(updated_at") {
                    c.replace("updated_at", "r.updated_at")
                } else if c.contains('(') || c.contains(')') {
                    c.to_string()
                } else {
                    format!("r.{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let limit = limit as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {cols}, r.index_seq FROM recordings r
                      WHERE ($1::text IS NULL OR r.recording_id > $1)
                        AND NOT EXISTS (SELECT 1 FROM releases x
                                         WHERE x.recording_id = r.recording_id
                                           AND (x.state IN ('released', 'undone')
                                                OR (x.state = 'refused' AND NOT $3)))
                      ORDER BY r.recording_id LIMIT $2"
                ),
                &[&after, &limit, &refused],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    entry_from_row(r),
                    r.get::<_, Option<i64>>(16).map(|s| s as u64),
                )
            })
            .collect())
    }

    async fn conversation_members(
        &self,
        conversation_ids: &[String],
    ) -> Result<Vec<(String, String, RecordStatus)>, LedgerError> {
        let rows = self
            .query(
                "SELECT conversation_id, recording_id, status FROM recordings
                  WHERE conversation_id = ANY($1)",
                &[&conversation_ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: String = r.get(2);
                (
                    r.get(0),
                    r.get(1),
                    // An unreadable status is not archived.
                    RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed),
                )
            })
            .collect())
    }

    async fn put_release(&self, r: ReleaseRecord) -> Result<bool, LedgerError> {
        let (size, seq) = (r.size as i64, r.index_seq as i64);
        let n = self
            .execute(
                "INSERT INTO releases (recording_id, conversation_id, object_key, size, md5,
                   sha256, index_seq, index_sha256, delete_date, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'intended')
                 ON CONFLICT (recording_id) DO UPDATE SET
                   conversation_id = excluded.conversation_id, object_key = excluded.object_key,
                   size = excluded.size, md5 = excluded.md5, sha256 = excluded.sha256,
                   index_seq = excluded.index_seq, index_sha256 = excluded.index_sha256,
                   delete_date = CASE WHEN releases.state = 'refused' THEN excluded.delete_date
                                      ELSE releases.delete_date END,
                   proven_at = CASE WHEN releases.state = 'refused' THEN now()
                                    ELSE releases.proven_at END,
                   state = 'intended', last_error = NULL
                 WHERE releases.state IN ('intended', 'refused')",
                &[
                    &r.recording_id,
                    &r.conversation_id,
                    &r.key,
                    &size,
                    &r.md5,
                    &r.sha256,
                    &seq,
                    &r.index_sha256,
                    &r.delete_date,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn confirm_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                "UPDATE releases SET state = 'released', delete_date = $2, listed_in = NULL,
                   released_at = now()
                  WHERE recording_id = $1 AND state = 'intended'",
                &[&recording_id, &delete_date],
            )
            .await?;
        Ok(n == 1)
    }

    async fn drop_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                "DELETE FROM releases
                  WHERE recording_id = $1 AND state = 'intended' AND delete_date = $2",
                &[&recording_id, &delete_date],
            )
            .await?;
        Ok(n == 1)
    }

    async fn refuse_intended(
        &self,
        recording_id: &str,
        delete_date: &str,
        message: &str,
    ) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                "UPDATE releases SET state = 'refused', last_error = $3
                  WHERE recording_id = $1 AND state = 'intended' AND delete_date = $2",
                &[&recording_id, &delete_date, &message],
            )
            .await?;
        Ok(n == 1)
    }

    async fn undo_release(
        &self,
        recording_id: &str,
        delete_date: &str,
    ) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                "UPDATE releases SET state = 'undone', delete_date = $2, listed_in = NULL,
                   undone_at = now()
                  WHERE recording_id = $1 AND state IN ('intended', 'released')",
                &[&recording_id, &delete_date],
            )
            .await?;
        Ok(n == 1)
    }

    async fn restore_release(&self, r: ReleaseRecord, listed_in: u64) -> Result<(), LedgerError> {
        let (size, seq, listed) = (r.size as i64, r.index_seq as i64, listed_in as i64);
        self.execute(
            "INSERT INTO releases (recording_id, conversation_id, object_key, size, md5, sha256,
               index_seq, index_sha256, delete_date, state, proven_at, released_at, undone_at,
               listed_in)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::timestamptz,
               $12::text::timestamptz, $13::text::timestamptz, $14)
             ON CONFLICT (recording_id) DO UPDATE SET conversation_id = excluded.conversation_id,
               object_key = excluded.object_key, size = excluded.size, md5 = excluded.md5,
               sha256 = excluded.sha256, index_seq = excluded.index_seq,
               index_sha256 = excluded.index_sha256, delete_date = excluded.delete_date,
               state = excluded.state, proven_at = excluded.proven_at,
               released_at = excluded.released_at, undone_at = excluded.undone_at,
               listed_in = excluded.listed_in, last_error = NULL",
            &[
                &r.recording_id,
                &r.conversation_id,
                &r.key,
                &size,
                &r.md5,
                &r.sha256,
                &seq,
                &r.index_sha256,
                &r.delete_date,
                &r.state.as_str(),
                &r.proven_at,
                &r.released_at,
                &r.undone_at,
                &listed,
            ],
        )
        .await?;
        Ok(())
    }

    async fn listed_releases(&self, seq: u64) -> Result<Vec<ReleaseRecord>, LedgerError> {
        let cols = release_columns();
        let rows = self
            .query(
                &format!("SELECT {cols} FROM releases WHERE listed_in = $1 ORDER BY recording_id"),
                &[&(seq as i64)],
            )
            .await?;
        Ok(rows.iter().map(release_from_row).collect())
    }

    async fn releases(
        &self,
        recording_ids: Option<Vec<String>>,
    ) -> Result<Vec<ReleaseRecord>, LedgerError> {
        let cols = release_columns();
        let rows = match recording_ids {
            None => {
                self.query(
                    &format!("SELECT {cols} FROM releases ORDER BY recording_id"),
                    &[],
                )
                .await?
            }
            Some(ids) => {
                self.query(
                    &format!(
                        "SELECT {cols} FROM releases WHERE recording_id = ANY($1)
                          ORDER BY recording_id"
                    ),
                    &[&ids],
                )
                .await?
            }
        };
        Ok(rows.iter().map(release_from_row).collect())
    }
}
