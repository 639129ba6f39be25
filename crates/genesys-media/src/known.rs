//! What the caller already holds: finished conversations discovery need not resolve again.
//!
//! A daemon re-reads an overlap window on every poll and a rerun re-reads a whole interval;
//! without memory each read would submit batch jobs for conversations whose recordings are
//! all archived. With a [`KnownConversations`] (the archiver keeps one in its ledger),
//! discovery asks which finished conversations of each analytics page are *settled* and
//! resolves only the others; it tells the memory what each resolved conversation held.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::models::AnalyticsConversation;

/// What discovery found for one conversation it resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConversation {
    /// Conversation id.
    pub conversation_id: String,
    /// When it ended.
    pub end: Option<DateTime<Utc>>,
    /// The files found with a media URL (their
    /// [`DiscoveredRecording::ledger_id`](crate::DiscoveredRecording::ledger_id)s), also those
    /// the query's media-type filter leaves out.
    pub files: Vec<String>,
    /// Every recording of it is accounted for: none pending (uploading, restoring), none
    /// unresolved. Files without a URL (archived, deleted at the source) were reported as
    /// unavailable and count as accounted for.
    pub complete: bool,
    /// The conversation as analytics listed it (or as the caller carried it in): what a
    /// later re-resolution of it (a recheck for files that appear late) starts from.
    pub conversation: Box<AnalyticsConversation>,
}

/// The caller's memory of conversations. Errors are the implementation's to handle: when in
/// doubt, [`KnownConversations::settled`] answers "not settled" and the conversation is
/// resolved again (costing calls, never skipping a recording).
#[async_trait::async_trait]
pub trait KnownConversations: Send + Sync + fmt::Debug {
    /// Of `conversation_ids` (finished conversations), those that are settled: resolved
    /// before, complete, and each of their files archived or failed for good.
    async fn settled(&self, conversation_ids: &[String]) -> HashSet<String>;

    /// Conversations discovery has just resolved.
    async fn resolved(&self, conversations: Vec<ResolvedConversation>);

    /// Of these recording ids (of a conversation being resolved), those already archived:
    /// the per-recording source does not request their media again (one call each). The
    /// default holds none.
    async fn held(&self, recording_ids: &[String]) -> HashSet<String> {
        let _ = recording_ids;
        HashSet::new()
    }
}
