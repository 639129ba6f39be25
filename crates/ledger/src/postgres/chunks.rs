//! Shared work in the PostgreSQL ledger: leases measured on the server's clock, chunks claimed
//! with `FOR UPDATE SKIP LOCKED` so instances never wait for each other's claims.

use std::collections::HashSet;

use super::{NOW_MS, PgLedger};
use crate::LedgerError;
use crate::chunks::{ChunkBacklog, ChunkRow, ChunkStore};

#[async_trait::async_trait]
impl ChunkStore for PgLedger {
    async fn take_listing(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
        gap_ms: i64,
    ) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                &format!(
                    "INSERT INTO listings (name, owner, lease_until)
                     VALUES ($1, $2, {NOW_MS} + $3::bigint)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                       lease_until = excluded.lease_until
                     WHERE (listings.lease_until < {NOW_MS} OR listings.owner = excluded.owner)
                       AND (listings.listed_at IS NULL
                            OR listings.listed_at <= {NOW_MS} - $4::bigint)"
                ),
                &[&name, &owner, &lease_ms, &gap_ms],
            )
            .await?;
        Ok(n == 1)
    }

    async fn end_listing(&self, name: &str, owner: &str, listed: bool) -> Result<(), LedgerError> {
        self.execute(
            &format!(
                "UPDATE listings SET lease_until = 0,
                   listed_at = CASE WHEN $3 THEN {NOW_MS} ELSE listed_at END
                 WHERE name = $1 AND owner = $2"
            ),
            &[&name, &owner, &listed],
        )
        .await?;
        Ok(())
    }

    async fn add_chunk(
        &self,
        name: &str,
        conversations: String,
        earliest_start: Option<String>,
        ids: Vec<String>,
    ) -> Result<i64, LedgerError> {
        let members = ids.len() as i32;
        let rows = self
            .query(
                "WITH c AS (
                   INSERT INTO chunks (name, conversations, members, earliest_start)
                   VALUES ($1, $2, $3, $4) RETURNING id
                 ), m AS (
                   INSERT INTO chunk_members (conversation_id, chunk_id)
                   SELECT unnest($5::text[]), c.id FROM c
                   ON CONFLICT (conversation_id) DO UPDATE SET chunk_id = excluded.chunk_id
                 )
                 SELECT id FROM c",
                &[&name, &conversations, &members, &earliest_start, &ids],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
    }

    async fn claim_chunk(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ChunkRow>, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "UPDATE chunks SET lease_owner = $2, lease_until = {NOW_MS} + $3::bigint
                     WHERE id = (SELECT id FROM chunks WHERE name = $1
                                 AND not_before <= {NOW_MS} AND lease_until < {NOW_MS}
                                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING id, conversations, attempts"
                ),
                &[&name, &owner, &lease_ms],
            )
            .await?;
        Ok(rows.first().map(|r| ChunkRow {
            id: r.get(0),
            conversations: r.get(1),
            attempts: r.get::<_, i32>(2) as u32,
        }))
    }

    async fn renew_chunk(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool, LedgerError> {
        let n = self
            .execute(
                &format!(
                    "UPDATE chunks SET lease_until = {NOW_MS} + $3::bigint
                     WHERE id = $1 AND lease_owner = $2"
                ),
                &[&id, &owner, &lease_ms],
            )
            .await?;
        Ok(n == 1)
    }

    async fn finish_chunk(&self, id: i64, owner: &str) -> Result<bool, LedgerError> {
        // Only the owner's (see the SQLite backend). The members go only with the chunk row
        // this statement deleted: a claim by another instance committed meanwhile makes the
        // row's delete match nothing (it is checked again on the newest row), and then the
        // members stay too.
        let n = self
            .execute(
                "WITH c AS (
                   DELETE FROM chunks WHERE id = $1 AND lease_owner = $2 RETURNING id
                 ), m AS (
                   DELETE FROM chunk_members WHERE chunk_id IN (SELECT id FROM c)
                 )
                 SELECT id FROM c",
                &[&id, &owner],
            )
            .await?;
        Ok(n == 1)
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
        let members = ids.len() as i32;
        let failed = error.is_some();
        // One statement: the chunk row and its members change together, and the members only
        // when the update matched (a chunk another instance took over or finished is not
        // touched: members pointing at it would look queued forever).
        self.execute(
            &format!(
                "WITH u AS (
                   UPDATE chunks SET conversations = $3,
                     members = CASE WHEN $4 > 0 THEN $4 ELSE members END,
                     attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
                     last_error = COALESCE($6, last_error),
                     not_before = {NOW_MS} + $7::bigint,
                     lease_owner = NULL, lease_until = 0
                   WHERE id = $1 AND (lease_owner = $2 OR lease_owner IS NULL)
                   RETURNING id
                 ), d AS (
                   DELETE FROM chunk_members WHERE chunk_id = $1 AND $4 > 0
                     AND conversation_id <> ALL($8::text[]) AND EXISTS (SELECT 1 FROM u)
                 )
                 INSERT INTO chunk_members (conversation_id, chunk_id)
                 SELECT m, $1 FROM unnest($8::text[]) AS m WHERE EXISTS (SELECT 1 FROM u)
                 ON CONFLICT (conversation_id) DO UPDATE SET chunk_id = excluded.chunk_id"
            ),
            &[
                &id,
                &owner,
                &conversations,
                &members,
                &failed,
                &error,
                &delay_ms,
                &ids,
            ],
        )
        .await?;
        Ok(())
    }

    async fn queued(&self, name: &str, ids: &[String]) -> Result<HashSet<String>, LedgerError> {
        let rows = self
            .query(
                "SELECT m.conversation_id FROM chunk_members m JOIN chunks k ON k.id = m.chunk_id
                 WHERE m.conversation_id = ANY($1) AND k.name = $2",
                &[&ids, &name],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn listing_held(&self, name: &str) -> Result<bool, LedgerError> {
        let rows = self
            .query(
                &format!("SELECT 1 FROM listings WHERE name = $1 AND lease_until >= {NOW_MS}"),
                &[&name],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn others_holding(&self, prefix: &str, owner: &str) -> Result<u64, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "SELECT count(*) FROM listings
                     WHERE left(name, length($1)) = $1 AND owner IS DISTINCT FROM $2
                       AND lease_until >= {NOW_MS}"
                ),
                &[&prefix, &owner],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn chunk_backlog(&self, name: &str) -> Result<ChunkBacklog, LedgerError> {
        let rows = self
            .query(
                &format!(
                    "SELECT count(*), COALESCE(sum(members), 0)::bigint, min(earliest_start),
                       (SELECT last_error FROM chunks WHERE name = $1 AND last_error IS NOT NULL
                        ORDER BY id DESC LIMIT 1),
                       count(*) FILTER (WHERE lease_until >= {NOW_MS}),
                       count(*) FILTER (WHERE lease_until < {NOW_MS} AND not_before <= {NOW_MS})
                     FROM chunks WHERE name = $1"
                ),
                &[&name],
            )
            .await?;
        let r = rows
            .first()
            .ok_or_else(|| LedgerError::new(&self.location, "no row from an aggregate"))?;
        Ok(ChunkBacklog {
            chunks: r.get::<_, i64>(0) as u64,
            conversations: r.get::<_, i64>(1) as u64,
            earliest_start: r.get(2),
            last_error: r.get(3),
            leased: r.get::<_, i64>(4) as u64,
            due: r.get::<_, i64>(5) as u64,
        })
    }
}
