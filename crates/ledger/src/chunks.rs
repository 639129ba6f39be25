//! Work shared between instances through the ledger: a *listing lease* (one instance lists
//! each poll's window) and *chunks* (up to 100 listed conversations each, claimed with a lease
//! by any instance, resolved and archived by it). See the archiver crate's continuous mode (`ScaleOut`).

use std::collections::HashSet;
use std::time::Duration;

use genesys_media::models::AnalyticsConversation;
use genesys_media::{KnownConversations, ResolvedConversation};

use super::{Ledger, LedgerError, lease_ms};

/// A chunk of listed conversations, as claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its id in the ledger.
    pub id: i64,
    /// The conversations, as analytics listed them (without phone numbers unless the
    /// operator keeps them).
    pub conversations: Vec<AnalyticsConversation>,
    /// Earlier attempts that ended in an error.
    pub attempts: u32,
}

/// The chunks of one listing name not finished yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkBacklog {
    /// Chunks waiting or being worked.
    pub chunks: u64,
    /// Conversations in them.
    pub conversations: u64,
    /// Of the chunks, those an instance holds a live lease on (being worked now).
    pub leased: u64,
    /// Of the chunks, those any instance may claim now (not leased, no backoff left); the
    /// rest wait out a retry's backoff.
    pub due: u64,
    /// The earliest conversation start among them (RFC 3339).
    pub earliest_start: Option<String>,
    /// The last error of a chunk that failed at least once, if any.
    pub last_error: Option<String>,
}

/// A chunk row as stored (conversations as JSON).
#[derive(Debug, Clone)]
pub(crate) struct ChunkRow {
    pub(crate) id: i64,
    pub(crate) conversations: String,
    pub(crate) attempts: u32,
}

/// What a backend keeps for shared work. Times are measured on the ledger's clock (the
/// database server's for PostgreSQL), leases and delays given in milliseconds.
#[async_trait::async_trait]
pub(crate) trait ChunkStore: Send + Sync {
    /// Takes (or renews) the listing lease `name` for `owner` when nobody else holds it and
    /// the last completed listing ended at least `gap_ms` ago.
    async fn take_listing(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
        gap_ms: i64,
    ) -> Result<bool, LedgerError>;
    /// Gives the listing lease back; `listed`: the listing completed (starts the gap).
    async fn end_listing(&self, name: &str, owner: &str, listed: bool) -> Result<(), LedgerError>;
    /// Stores a chunk and its members; returns its id.
    async fn add_chunk(
        &self,
        name: &str,
        conversations: String,
        earliest_start: Option<String>,
        ids: Vec<String>,
    ) -> Result<i64, LedgerError>;
    /// Claims the oldest chunk of `name` that is due and not leased (or whose lease expired).
    async fn claim_chunk(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ChunkRow>, LedgerError>;
    /// Extends `owner`'s lease; false when the lease was lost.
    async fn renew_chunk(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool, LedgerError>;
    /// Removes a finished chunk and its members when `owner` still holds it; false when it
    /// does not (taken over, kept for a retry, or gone).
    async fn finish_chunk(&self, id: i64, owner: &str) -> Result<bool, LedgerError>;
    /// Keeps a chunk for later with these conversations (a subset), due in `delay_ms`; an
    /// `error` counts as a failed attempt.
    async fn retry_chunk(
        &self,
        id: i64,
        owner: &str,
        conversations: String,
        ids: Vec<String>,
        error: Option<String>,
        delay_ms: i64,
    ) -> Result<(), LedgerError>;
    /// Of `ids`, the conversations waiting in a chunk of `name`.
    async fn queued(&self, name: &str, ids: &[String]) -> Result<HashSet<String>, LedgerError>;
    /// Whether an instance holds a live lease on the listing `name` (it is listing now).
    async fn listing_held(&self, name: &str) -> Result<bool, LedgerError>;
    /// How many listing leases whose name starts with `prefix` are live and held by an owner
    /// other than `owner`.
    async fn others_holding(&self, prefix: &str, owner: &str) -> Result<u64, LedgerError>;
    /// The unfinished chunks of `name`.
    async fn chunk_backlog(&self, name: &str) -> Result<ChunkBacklog, LedgerError>;
}

fn earliest_start(conversations: &[AnalyticsConversation]) -> Option<String> {
    conversations
        .iter()
        .filter_map(|c| c.conversation_start.as_deref())
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .min()
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
}

fn ids_of(conversations: &[AnalyticsConversation]) -> Vec<String> {
    conversations
        .iter()
        .map(|c| c.conversation_id.clone())
        .collect()
}

fn to_json(conversations: &[AnalyticsConversation]) -> Result<String, LedgerError> {
    serde_json::to_string(conversations)
        .map_err(|e| LedgerError::new("chunk", format!("cannot encode a chunk: {e}")))
}

impl Ledger {
    /// Takes (or renews) the listing lease `name` for `owner`: granted when no other instance
    /// holds it and the last completed listing ended at least `gap` ago. One instance lists
    /// each poll's window; the others work the chunks it writes.
    pub async fn take_listing(
        &self,
        name: &str,
        owner: &str,
        lease: Duration,
        gap: Duration,
    ) -> Result<bool, LedgerError> {
        self.inner
            .take_listing(name, owner, lease_ms(lease), lease_ms(gap))
            .await
    }

    /// Gives the listing lease back; `listed` when the listing completed.
    pub async fn end_listing(
        &self,
        name: &str,
        owner: &str,
        listed: bool,
    ) -> Result<(), LedgerError> {
        self.inner.end_listing(name, owner, listed).await
    }

    /// Stores listed conversations (at most 100, one batch job) as a chunk any instance may
    /// claim; returns its id. Durable before this returns: the listing's checkpoint may move
    /// past them.
    pub async fn add_chunk(
        &self,
        name: &str,
        conversations: &[AnalyticsConversation],
    ) -> Result<i64, LedgerError> {
        let ids = ids_of(conversations);
        self.inner
            .add_chunk(
                name,
                to_json(conversations)?,
                earliest_start(conversations),
                ids,
            )
            .await
    }

    /// Claims the oldest due chunk of `name` for `owner` for `lease`. A chunk whose stored
    /// form cannot be read is kept with the error (never dropped) and the next one is tried.
    pub async fn claim_chunk(
        &self,
        name: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Chunk>, LedgerError> {
        loop {
            let Some(row) = self.inner.claim_chunk(name, owner, lease_ms(lease)).await? else {
                return Ok(None);
            };
            match serde_json::from_str(&row.conversations) {
                Ok(conversations) => {
                    return Ok(Some(Chunk {
                        id: row.id,
                        conversations,
                        attempts: row.attempts,
                    }));
                }
                Err(e) => {
                    let error = format!("the chunk's conversations cannot be read: {e}");
                    tracing::warn!(chunk = row.id, error = %error, "chunk kept for a person to look at");
                    self.inner
                        .retry_chunk(
                            row.id,
                            owner,
                            row.conversations,
                            Vec::new(),
                            Some(error),
                            lease_ms(Duration::from_secs(24 * 3600)),
                        )
                        .await?;
                }
            }
        }
    }

    /// Extends the lease on a claimed chunk; false when another instance took it over.
    pub async fn renew_chunk(
        &self,
        id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, LedgerError> {
        self.inner.renew_chunk(id, owner, lease_ms(lease)).await
    }

    /// A chunk whose conversations were all resolved and their recordings handled, by `owner`
    /// whose lease it still is (or whose lease ran out with nobody taking the chunk over).
    /// False, and nothing changed, when another instance took the chunk over (or it was kept
    /// for a retry, or finished): its view of the chunk may be newer (a recording it saw still
    /// uploading), so the chunk is left to it.
    pub async fn finish_chunk(&self, id: i64, owner: &str) -> Result<bool, LedgerError> {
        self.inner.finish_chunk(id, owner).await
    }

    /// Keeps `conversations` of a chunk for another try after `delay` (still in progress at
    /// the source, or resolving failed: `error`, which counts as an attempt).
    pub async fn retry_chunk(
        &self,
        id: i64,
        owner: &str,
        conversations: &[AnalyticsConversation],
        error: Option<String>,
        delay: Duration,
    ) -> Result<(), LedgerError> {
        let ids = ids_of(conversations);
        self.inner
            .retry_chunk(
                id,
                owner,
                to_json(conversations)?,
                ids,
                error,
                lease_ms(delay),
            )
            .await
    }

    /// The unfinished chunks of `name`.
    pub async fn chunk_backlog(&self, name: &str) -> Result<ChunkBacklog, LedgerError> {
        self.inner.chunk_backlog(name).await
    }

    /// Whether an instance is listing `name` now (holds a live listing lease).
    pub async fn listing_held(&self, name: &str) -> Result<bool, LedgerError> {
        self.inner.listing_held(name).await
    }

    /// How many live leases on listings named `prefix...` are held by owners other than
    /// `owner` (a shared backfill's instances hold one each while they work it).
    pub async fn others_holding(&self, prefix: &str, owner: &str) -> Result<u64, LedgerError> {
        self.inner.others_holding(prefix, owner).await
    }

    /// This ledger as the memory of the instance listing `name`: settled conversations, and
    /// those waiting in a chunk of `name`, are not listed into a chunk again. One waiting in
    /// a chunk of another listing is listed again (that chunk may never be worked: its
    /// listing's name may not run again); the recordings' claims keep it from being
    /// downloaded twice.
    pub fn listing_memory(
        &self,
        name: &str,
        late: super::LateWindow,
    ) -> std::sync::Arc<dyn KnownConversations> {
        std::sync::Arc::new(QueuedOrSettled {
            settled: self.known_conversations_with(late),
            ledger: self.clone(),
            name: name.to_string(),
        })
    }
}

/// Settled conversations plus those queued in a chunk.
#[derive(Debug)]
struct QueuedOrSettled {
    settled: std::sync::Arc<dyn KnownConversations>,
    ledger: Ledger,
    name: String,
}

#[async_trait::async_trait]
impl KnownConversations for QueuedOrSettled {
    async fn settled(&self, conversation_ids: &[String]) -> HashSet<String> {
        let mut out = self.settled.settled(conversation_ids).await;
        match self.ledger.inner.queued(&self.name, conversation_ids).await {
            Ok(q) => out.extend(q),
            // Listed into a chunk again: calls spent, nothing skipped.
            Err(e) => tracing::warn!(error = %e, "could not read queued conversations"),
        }
        out
    }

    async fn resolved(&self, conversations: Vec<ResolvedConversation>) {
        self.settled.resolved(conversations).await
    }

    async fn held(&self, recording_ids: &[String]) -> HashSet<String> {
        self.settled.held(recording_ids).await
    }
}
