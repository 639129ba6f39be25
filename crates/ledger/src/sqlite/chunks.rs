//! Shared work in the SQLite ledger (one process, several tasks: tests, one-host setups).

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{SqliteLedger, now_ms};
use crate::LedgerError;
use crate::chunks::{ChunkBacklog, ChunkRow, ChunkStore};

/// Marks `ids` as queued in chunk `id`.
fn insert_members(c: &rusqlite::Connection, id: i64, ids: &[String]) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached(
        "INSERT OR REPLACE INTO chunk_members (conversation_id, chunk_id) VALUES (?1, ?2)",
    )?;
    for cid in ids {
        st.execute(params![cid, id])?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl ChunkStore for SqliteLedger {
    async fn take_listing(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
        gap_ms: i64,
    ) -> Result<bool, LedgerError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |c| {
            let now = now_ms();
            let n = c.execute(
                "INSERT INTO listings (name, owner, lease_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET owner = excluded.owner,
                   lease_until = excluded.lease_until
                 WHERE (listings.lease_until < ?4 OR listings.owner = excluded.owner)
                   AND (listings.listed_at IS NULL OR listings.listed_at <= ?5)",
                params![name, owner, now + lease_ms, now, now - gap_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn end_listing(&self, name: &str, owner: &str, listed: bool) -> Result<(), LedgerError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |c| {
            c.execute(
                "UPDATE listings SET lease_until = 0,
                   listed_at = CASE WHEN ?3 THEN ?4 ELSE listed_at END
                 WHERE name = ?1 AND owner = ?2",
                params![name, owner, listed, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_chunk(
        &self,
        name: &str,
        conversations: String,
        earliest_start: Option<String>,
        ids: Vec<String>,
    ) -> Result<i64, LedgerError> {
        let name = name.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO chunks (name, conversations, members, earliest_start)
                 VALUES (?1, ?2, ?3, ?4)",
                params![name, conversations, ids.len() as i64, earliest_start],
            )?;
            let id = c.last_insert_rowid();
            insert_members(c, id, &ids)?;
            Ok(id)
        })
        .await
    }

    async fn claim_chunk(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ChunkRow>, LedgerError> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |c| {
            let now = now_ms();
            c.query_row(
                "UPDATE chunks SET lease_owner = ?2, lease_until = ?3
                 WHERE id = (SELECT id FROM chunks WHERE name = ?1 AND not_before <= ?4
                             AND lease_until < ?4 ORDER BY id LIMIT 1)
                 RETURNING id, conversations, attempts",
                params![name, owner, now + lease_ms, now],
                |r| {
                    Ok(ChunkRow {
                        id: r.get(0)?,
                        conversations: r.get(1)?,
                        attempts: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn renew_chunk(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool, LedgerError> {
        let owner = owner.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE chunks SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2",
                params![id, owner, now_ms() + lease_ms],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn finish_chunk(&self, id: i64, owner: &str) -> Result<bool, LedgerError> {
        // Only the owner's: an instance that took the chunk over after this one's lease
        // expired resolved it again and may have seen more (a recording still uploading that
        // it keeps the chunk for); finishing it here would drop that.
        let owner = owner.to_string();
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM chunks WHERE id = ?1 AND lease_owner = ?2",
                params![id, owner],
            )?;
            if n == 1 {
                c.execute("DELETE FROM chunk_members WHERE chunk_id = ?1", params![id])?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn retry_chunk(
        &self,
        id: i64,
        owner: &str,
        conversations: String,
        ids: Vec<String>,
        error: Option<String>,
        delay_ms: i64,
    ) -> Result<(), LedgerError> {
        let owner = owner.to_string();
        self.write(move |c| {
            let failed = error.is_some();
            let kept = c.execute(
                "UPDATE chunks SET conversations = ?3,
                   members = CASE WHEN ?4 > 0 THEN ?4 ELSE members END,
                   attempts = attempts + CASE WHEN ?5 THEN 1 ELSE 0 END,
                   last_error = COALESCE(?6, last_error), not_before = ?7,
                   lease_owner = NULL, lease_until = 0
                 WHERE id = ?1 AND (lease_owner = ?2 OR lease_owner IS NULL)",
                params![
                    id,
                    owner,
                    conversations,
                    ids.len() as i64,
                    failed,
                    error,
                    now_ms() + delay_ms
                ],
            )?;
            // Members change only with the chunk: when the update matched nothing (another
            // instance took the chunk over, or finished and removed it), members inserted here
            // would point at a chunk nobody works, and their conversations look queued forever.
            if kept > 0 && !ids.is_empty() {
                c.execute("DELETE FROM chunk_members WHERE chunk_id = ?1", params![id])?;
                insert_members(c, id, &ids)?;
            }
            Ok(())
        })
        .await
    }

    async fn queued(&self, name: &str, ids: &[String]) -> Result<HashSet<String>, LedgerError> {
        let (name, ids) = (name.to_string(), ids.to_vec());
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT 1 FROM chunk_members m JOIN chunks k ON k.id = m.chunk_id
                 WHERE m.conversation_id = ?1 AND k.name = ?2",
            )?;
            let mut out = HashSet::new();
            for id in ids {
                if st.exists(params![id, name])? {
                    out.insert(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn listing_held(&self, name: &str) -> Result<bool, LedgerError> {
        let name = name.to_string();
        self.run(move |c| {
            c.prepare_cached("SELECT 1 FROM listings WHERE name = ?1 AND lease_until >= ?2")?
                .exists(params![name, now_ms()])
        })
        .await
    }

    async fn others_holding(&self, prefix: &str, owner: &str) -> Result<u64, LedgerError> {
        let (prefix, owner) = (prefix.to_string(), owner.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT count(*) FROM listings
                 WHERE substr(name, 1, length(?1)) = ?1 AND owner IS NOT ?2 AND lease_until >= ?3",
                params![prefix, owner, now_ms()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn chunk_backlog(&self, name: &str) -> Result<ChunkBacklog, LedgerError> {
        let name = name.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT count(*), COALESCE(sum(members), 0), min(earliest_start),
                   (SELECT last_error FROM chunks WHERE name = ?1 AND last_error IS NOT NULL
                    ORDER BY id DESC LIMIT 1),
                   COALESCE(sum(lease_until >= ?2), 0),
                   COALESCE(sum(lease_until < ?2 AND not_before <= ?2), 0)
                 FROM chunks WHERE name = ?1",
                params![name, now_ms()],
                |r| {
                    Ok(ChunkBacklog {
                        chunks: r.get::<_, i64>(0)? as u64,
                        conversations: r.get::<_, i64>(1)? as u64,
                        earliest_start: r.get(2)?,
                        last_error: r.get(3)?,
                        leased: r.get::<_, i64>(4)? as u64,
                        due: r.get::<_, i64>(5)? as u64,
                    })
                },
            )
        })
        .await
    }
}
