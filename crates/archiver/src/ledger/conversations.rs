//! Conversations in the ledger: what discovery found for each finished conversation it
//! resolved (its files, whether every recording was accounted for), so later polls and
//! reruns skip the settled ones instead of spending batch jobs on them again.

use std::collections::{HashMap, HashSet};

use genesys_media::{KnownConversations, ResolvedConversation};

use super::{Ledger, LedgerError, RecordStatus};

/// One conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConversationRow {
    pub(crate) conversation_id: String,
    pub(crate) end_time: Option<String>,
    pub(crate) files: Vec<String>,
    pub(crate) complete: bool,
}

impl Ledger {
    /// Records what discovery found for resolved conversations (replacing earlier rows).
    pub async fn conversations_resolved(
        &self,
        conversations: &[ResolvedConversation],
    ) -> Result<(), LedgerError> {
        let rows = conversations
            .iter()
            .map(|c| ConversationRow {
                conversation_id: c.conversation_id.clone(),
                end_time: c
                    .end
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                files: c.files.clone(),
                complete: c.complete,
            })
            .collect();
        self.inner.put_conversations(rows).await
    }

    /// Of `conversation_ids`, those settled: resolved before with every recording accounted
    /// for, and each file with a URL archived. A failed or quarantined file keeps its
    /// conversation unsettled, so a rerun finds it again and reports (or retries) it.
    pub async fn settled_conversations(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashSet<String>, LedgerError> {
        let rows: Vec<ConversationRow> = self
            .inner
            .conversations(conversation_ids)
            .await?
            .into_iter()
            .filter(|r| r.complete)
            .collect();
        let files: Vec<String> = rows.iter().flat_map(|r| r.files.clone()).collect();
        let statuses: HashMap<String, RecordStatus> = if files.is_empty() {
            HashMap::new()
        } else {
            self.inner.statuses(&files).await?
        };
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.files
                    .iter()
                    .all(|f| statuses.get(f) == Some(&RecordStatus::Archived))
            })
            .map(|r| r.conversation_id)
            .collect())
    }

    /// This ledger as discovery's memory of conversations.
    pub fn known_conversations(&self) -> std::sync::Arc<dyn KnownConversations> {
        std::sync::Arc::new(LedgerConversations(self.clone()))
    }
}

/// The ledger as [`KnownConversations`]: a ledger error answers "not settled" (the
/// conversation is resolved again: calls spent, nothing skipped).
#[derive(Debug, Clone)]
struct LedgerConversations(Ledger);

#[async_trait::async_trait]
impl KnownConversations for LedgerConversations {
    async fn settled(&self, conversation_ids: &[String]) -> HashSet<String> {
        match self.0.settled_conversations(conversation_ids).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not read conversations from the ledger; resolving them again");
                HashSet::new()
            }
        }
    }

    async fn resolved(&self, conversations: Vec<ResolvedConversation>) {
        if let Err(e) = self.0.conversations_resolved(&conversations).await {
            tracing::warn!(error = %e, "could not record resolved conversations; the next poll resolves them again");
        }
    }

    async fn held(&self, recording_ids: &[String]) -> HashSet<String> {
        match self.0.inner.statuses(recording_ids).await {
            Ok(s) => s
                .into_iter()
                .filter(|(_, status)| *status == RecordStatus::Archived)
                .map(|(id, _)| id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read recordings from the ledger; requesting their media again");
                HashSet::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(id: &str, files: &[&str], complete: bool) -> ResolvedConversation {
        ResolvedConversation {
            conversation_id: id.into(),
            end: Some(chrono::Utc::now()),
            files: files.iter().map(|f| f.to_string()).collect(),
            complete,
        }
    }

    /// Settled: complete, and every file archived. Unknown, incomplete, or with a file
    /// failed, in quarantine or still pending: resolved again.
    #[tokio::test]
    async fn a_conversation_is_settled_once_every_file_is_archived() {
        let l = Ledger::in_memory().unwrap();
        let lease = std::time::Duration::from_secs(60);
        for r in ["a1", "a2", "b1", "c1", "d1"] {
            let rec = test_support::bare_recording("c", r);
            l.claim(&rec, &format!("k/{r}"), "me", lease).await.unwrap();
        }
        for r in ["a1", "a2", "b1", "d1"] {
            l.archived(r, "me", &format!("k/{r}"), 1, "md5", 1)
                .await
                .unwrap();
        }
        l.failed("c1", "me", "403", false, 1).await.unwrap();
        l.conversations_resolved(&[
            resolved("A", &["a1", "a2"], true),
            resolved("B", &["b1", "b2"], true), // b2 never claimed
            resolved("C", &["c1"], true),       // failed: a rerun must find it
            resolved("D", &["d1"], false),      // a recording was still uploading
            resolved("E", &[], true),           // no recording at all
        ])
        .await
        .unwrap();
        let ids: Vec<String> = ["A", "B", "C", "D", "E", "F"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut settled: Vec<String> = l
            .settled_conversations(&ids)
            .await
            .unwrap()
            .into_iter()
            .collect();
        settled.sort();
        assert_eq!(settled, ["A", "E"]);
        // Resolved again later, now complete: replaced.
        l.conversations_resolved(&[resolved("D", &["d1"], true)])
            .await
            .unwrap();
        assert!(l.settled_conversations(&ids).await.unwrap().contains("D"));
    }
}
