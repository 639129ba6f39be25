//! The PostgreSQL ledger's grouped writes (group commit through `group.rs`) and claims: the
//! claim's statements run in whatever transaction the caller holds, shared with other writes
//! or (after a deadlock) alone.

use tokio_postgres::{Client, GenericClient};

use super::group::WriteError;
use super::{NOW_MS, PgLedger};
use crate::{Claim, Decision, LedgerError, RecordInfo, RecordStatus, RowState, decide};

impl PgLedger {
    /// Runs `f` in a transaction shared with the other claims and outcomes queued meanwhile
    /// (group commit); its result comes back once that transaction committed.
    pub(super) async fn grouped<T: Send + 'static>(
        &self,
        f: impl for<'c> FnOnce(
            &'c Client,
        )
            -> futures::future::BoxFuture<'c, Result<T, tokio_postgres::Error>>
        + Send
        + 'static,
    ) -> Result<T, GroupedError> {
        use std::sync::atomic::Ordering;
        let rx = self.group.queue(f);
        {
            let mut guard = self.client.lock().await;
            match self.connected(&mut guard).await {
                Ok(c) => {
                    if self.in_group.swap(true, Ordering::SeqCst) {
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    self.group.commit(c).await;
                    self.in_group.store(false, Ordering::SeqCst);
                }
                Err(e) => self.group.abort(&e.message).await,
            }
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(WriteError::Sql(e))) => Err(GroupedError::Sql(e)),
            Ok(Err(WriteError::Commit(m))) => {
                Err(GroupedError::Ledger(LedgerError::new(&self.location, m)))
            }
            Err(_) => Err(GroupedError::Ledger(LedgerError::new(
                &self.location,
                "the shared transaction ended without an answer",
            ))),
        }
    }

    /// A grouped write's outcome as the ledger reports it (its own statement error made a
    /// ledger error).
    pub(super) fn ledger_result<T>(&self, r: Result<T, GroupedError>) -> Result<T, LedgerError> {
        r.map_err(|e| match e {
            GroupedError::Sql(e) => self.err(e),
            GroupedError::Ledger(e) => e,
        })
    }

    /// A claim in a transaction of its own (after a grouped one met a deadlock).
    pub(super) async fn claim_alone(
        &self,
        info: &RecordInfo,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Claim, LedgerError> {
        let mut guard = self.client.lock().await;
        let c = self.connected(&mut guard).await?;
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        let claim = claim_in(&tx, info, owner, lease_ms)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(claim)
    }
}

/// Why a grouped write failed.
pub(super) enum GroupedError {
    /// Its own statements failed (rolled back alone).
    Sql(tokio_postgres::Error),
    /// The shared transaction failed, or the connection.
    Ledger(LedgerError),
}

/// Claims `info` for `owner` inside the caller's transaction (see [`Backend::claim`]).
pub(super) async fn claim_in(
    c: &impl GenericClient,
    info: &RecordInfo,
    owner: &str,
    lease_ms: i64,
) -> Result<Claim, tokio_postgres::Error> {
    // A new recording: insert it with our lease. A conflicting insert by another instance
    // waits for that transaction and then inserts nothing.
    let inserted = c
        .execute(
            &format!(
                "INSERT INTO recordings (recording_id, conversation_id, object_key, status,
                   lease_owner, lease_until, media_type, start_time, end_time)
                 VALUES ($1, $2, $3, 'pending', $4, {NOW_MS} + $5::bigint, $6, $7, $8)
                 ON CONFLICT (recording_id) DO NOTHING"
            ),
            &[
                &info.recording_id,
                &info.conversation_id,
                &info.key,
                &owner,
                &lease_ms,
                &info.media_type,
                &info.start_time,
                &info.end_time,
            ],
        )
        .await?;
    if inserted == 1 {
        write_facts(c, info).await?;
        return Ok(Claim::Claimed);
    }
    let row = c
        .query_opt(
            &format!(
                "SELECT status, object_key, last_error, lease_owner, lease_until, {NOW_MS}
                 FROM recordings WHERE recording_id = $1 FOR UPDATE SKIP LOCKED"
            ),
            &[&info.recording_id],
        )
        .await?;
    let Some(row) = row else {
        // Locked by another instance's claim transaction right now (nothing was written).
        return Ok(Claim::Busy {
            owner: "another instance (claiming now)".into(),
        });
    };
    let status: String = row.get(0);
    let state = RowState {
        status: RecordStatus::parse(&status).unwrap_or(RecordStatus::Failed),
        key: row.get(1),
        last_error: row.get(2),
        lease_owner: row.get(3),
        lease_until_ms: row.get(4),
    };
    let now: i64 = row.get(5);
    Ok(match decide(Some(&state), owner, now, false) {
        Decision::Answer(a) => a,
        d @ (Decision::Insert | Decision::Resume) => {
            c.execute(
                "UPDATE recordings SET status = 'pending', conversation_id = $2,
                   object_key = $3, lease_owner = $4, lease_until = $5::bigint + $6::bigint,
                   media_type = COALESCE($7, media_type),
                   start_time = COALESCE($8, start_time),
                   end_time = COALESCE($9, end_time), updated_at = now()
                 WHERE recording_id = $1",
                &[
                    &info.recording_id,
                    &info.conversation_id,
                    &info.key,
                    &owner,
                    &now,
                    &lease_ms,
                    &info.media_type,
                    &info.start_time,
                    &info.end_time,
                ],
            )
            .await?;
            write_facts(c, info).await?;
            if d == Decision::Resume {
                Claim::Resumed
            } else {
                Claim::Claimed
            }
        }
    })
}

/// Stores what analytics said about a claimed recording and its search terms.
async fn write_facts(
    tx: &impl GenericClient,
    info: &RecordInfo,
) -> Result<(), tokio_postgres::Error> {
    if info.facts.is_none() {
        return Ok(());
    }
    tx.execute(
        "UPDATE recordings SET facts = $2 WHERE recording_id = $1",
        &[&info.recording_id, &info.facts],
    )
    .await?;
    if !info.terms.is_empty() {
        let names: Vec<&str> = info.terms.iter().map(|(n, _)| n.as_str()).collect();
        let values: Vec<&str> = info.terms.iter().map(|(_, v)| v.as_str()).collect();
        tx.execute(
            "INSERT INTO search_terms (name, value, recording_id)
             SELECT n, v, $3 FROM unnest($1::text[], $2::text[]) AS t(n, v)
             ON CONFLICT DO NOTHING",
            &[&names, &values, &info.recording_id],
        )
        .await?;
    }
    Ok(())
}
