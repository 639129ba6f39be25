//! How an orphan recording (one not attached to any conversation) is named among discovered
//! recordings: shared by the inventory (which finds orphans) and the resolver (which refreshes
//! their media through the orphan endpoint).

/// The conversation id under which an orphan recording is archived (it has none): its key
/// and ledger row name the orphan's id as the recording.
pub const ORPHAN_CONVERSATION: &str = "orphan";

/// Whether `rec` is an orphan recording's media (see
/// [`crate::GenesysClient::orphan_recordings_media`]).
pub(crate) fn is_orphan(rec: &crate::DiscoveredRecording) -> bool {
    rec.conversation_id == ORPHAN_CONVERSATION
}
