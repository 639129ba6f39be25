//! Conversations in the ledger: what discovery found for each finished conversation it
//! resolved (its files, whether every recording was accounted for), so later polls and
//! reruns skip the settled ones instead of spending batch jobs on them again.
//!
//! Files can reach a conversation after it ended (the Edge uploads late, an orphan is
//! re-attached), without being announced as uploading. So a conversation resolved within its
//! *late window* (`end + window`) is not settled for good: its row keeps a *recheck due*
//! time (`end + window`) and the analytics conversation, and once that time has passed it is
//! resolved again (driven from here, not from analytics reading it again) before it settles.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_media::models::AnalyticsConversation;
use genesys_media::{KnownConversations, ResolvedConversation};

use super::{Ledger, LedgerError, RecordStatus};

/// One conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConversationRow {
    pub(crate) conversation_id: String,
    pub(crate) end_time: Option<String>,
    pub(crate) files: Vec<String>,
    pub(crate) complete: bool,
    /// When it must be resolved again (epoch ms), while its late window is open.
    pub(crate) recheck_due: Option<i64>,
    /// The analytics conversation (JSON) a recheck resolves, kept while one is due.
    pub(crate) conversation: Option<String>,
}

/// The default late window: a conversation may gain files this long after it ended (batch
/// jobs may include a recording "up to 48 hours" late, per the recording jobs' docs).
pub const DEFAULT_LATE_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// How the ledger's memory of conversations treats files that appear after a conversation
/// was first resolved (see the module docs).
#[derive(Debug, Clone)]
pub struct LateWindow {
    /// How long after its end a conversation may still gain files; zero turns rechecks off
    /// (a conversation settles at its first complete resolution).
    pub window: Duration,
    /// The present discovery works in: rechecks due by then are resolved, and a conversation
    /// resolved before its `end + window` keeps a recheck. A daemon passes its poll's
    /// present (the source's clock minus settle), so a recheck is never early.
    pub present: DateTime<Utc>,
    /// Resolve every finished conversation again, settled or not (`archive --recheck`).
    pub recheck_all: bool,
    /// Keep phone numbers in the conversation kept for a recheck (see
    /// `ArchiverConfig::keep_phone_numbers`).
    pub keep_phone_numbers: bool,
    /// What happened, for reports and metrics.
    pub stats: Arc<LateStats>,
}

impl Default for LateWindow {
    fn default() -> Self {
        Self {
            window: DEFAULT_LATE_WINDOW,
            present: Utc::now(),
            recheck_all: false,
            keep_phone_numbers: false,
            stats: Arc::default(),
        }
    }
}

impl LateWindow {
    /// When a conversation that ended at `end` and is resolved now must be resolved again;
    /// `None` once its window has passed (or with no window). An unknown end keeps a full
    /// window from now.
    fn recheck_due(&self, end: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let window = chrono::Duration::from_std(self.window).ok()?;
        if window.is_zero() {
            return None;
        }
        let due = end.unwrap_or(self.present) + window;
        (due > self.present).then_some(due)
    }
}

/// Counters of the late window, summed over the resolutions that share them.
#[derive(Debug, Default)]
pub struct LateStats {
    rechecked: AtomicU64,
    late_files: AtomicU64,
    unrecorded: AtomicU64,
}

impl LateStats {
    /// Conversations resolved again after an earlier complete resolution (a recheck).
    pub fn rechecked(&self) -> u64 {
        self.rechecked.load(Ordering::Relaxed)
    }

    /// Files a recheck found that the earlier resolution did not list (files that came late).
    pub fn late_files(&self) -> u64 {
        self.late_files.load(Ordering::Relaxed)
    }

    /// Conversations whose resolution could not be written to the ledger: their late window
    /// is not recorded, so a poll with any must read its window again.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }
}

fn epoch_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Ledger {
    /// Records what discovery found for resolved conversations (replacing earlier rows),
    /// under the default late window.
    pub async fn conversations_resolved(
        &self,
        conversations: &[ResolvedConversation],
    ) -> Result<(), LedgerError> {
        self.conversations_resolved_with(conversations, &LateWindow::default())
            .await
    }

    /// Records what discovery found for resolved conversations (replacing earlier rows): a
    /// conversation resolved inside its late window keeps a recheck due at its end plus the
    /// window; `late.stats` counts rechecks and the files they found.
    pub async fn conversations_resolved_with(
        &self,
        conversations: &[ResolvedConversation],
        late: &LateWindow,
    ) -> Result<(), LedgerError> {
        let ids: Vec<String> = conversations
            .iter()
            .map(|c| c.conversation_id.clone())
            .collect();
        let before: HashMap<String, ConversationRow> = self
            .inner
            .conversations(&ids)
            .await?
            .into_iter()
            .map(|r| (r.conversation_id.clone(), r))
            .collect();
        let mut rows = Vec::with_capacity(conversations.len());
        for c in conversations {
            if let Some(old) = before.get(&c.conversation_id).filter(|o| o.complete) {
                late.stats.rechecked.fetch_add(1, Ordering::Relaxed);
                let new = c.files.iter().filter(|f| !old.files.contains(f)).count();
                late.stats
                    .late_files
                    .fetch_add(new as u64, Ordering::Relaxed);
            }
            // An incomplete resolution (a file still uploading, a result that could not be
            // read) stays due: whatever carried it in (the waiting set, a chunk) may be lost
            // with an unreconciled poll, and analytics may no longer list it.
            let due = late
                .recheck_due(c.end)
                .or_else(|| (!c.complete).then_some(late.present));
            let conversation = match due {
                Some(_) => {
                    let mut conv = (*c.conversation).clone();
                    if !late.keep_phone_numbers {
                        conv = conv.without_phone_numbers();
                    }
                    serde_json::to_string(&conv).ok()
                }
                None => None,
            };
            rows.push(ConversationRow {
                conversation_id: c.conversation_id.clone(),
                end_time: c
                    .end
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                files: c.files.clone(),
                complete: c.complete,
                recheck_due: due.map(epoch_ms),
                conversation,
            });
        }
        self.inner.put_conversations(rows).await
    }

    /// Of `conversation_ids`, those settled under the default late window.
    pub async fn settled_conversations(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashSet<String>, LedgerError> {
        self.settled_conversations_at(conversation_ids, Utc::now())
            .await
    }

    /// Of `conversation_ids`, those settled at `present`: resolved before with every
    /// recording accounted for, each file with a URL archived, and no recheck due by
    /// `present`. A failed or quarantined file keeps its conversation unsettled, so a rerun
    /// finds it again and reports (or retries) it; a due recheck makes it resolved again.
    pub async fn settled_conversations_at(
        &self,
        conversation_ids: &[String],
        present: DateTime<Utc>,
    ) -> Result<HashSet<String>, LedgerError> {
        let present = epoch_ms(present);
        let rows: Vec<ConversationRow> = self
            .inner
            .conversations(conversation_ids)
            .await?
            .into_iter()
            .filter(|r| r.complete && r.recheck_due.is_none_or(|d| d > present))
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

    /// Conversations whose recheck is due at `present` (at most `limit`, earliest first), as
    /// discovery takes them back in ([`genesys_media::DiscoveryQuery::waiting`]). A row whose
    /// kept conversation is missing or unreadable comes back with its id and end alone (its
    /// files are still resolved; their tags then lack the conversation's facts).
    pub async fn due_rechecks(
        &self,
        present: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AnalyticsConversation>, LedgerError> {
        let rows = self.inner.due_rechecks(epoch_ms(present), limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.conversation
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<AnalyticsConversation>(j).ok())
                    .filter(|c| c.conversation_id == r.conversation_id)
                    .unwrap_or_else(|| AnalyticsConversation {
                        conversation_id: r.conversation_id.clone(),
                        conversation_end: r.end_time.clone(),
                        ..Default::default()
                    })
            })
            .collect())
    }

    /// How many conversations are still inside their late window at `present` (a recheck
    /// due later), and when the last of those windows closes.
    pub async fn late_window_open(
        &self,
        present: DateTime<Utc>,
    ) -> Result<(u64, Option<DateTime<Utc>>), LedgerError> {
        let (n, last) = self.inner.rechecks_ahead(epoch_ms(present)).await?;
        Ok((n, last.and_then(DateTime::from_timestamp_millis)))
    }

    /// This ledger as discovery's memory of conversations, under the default late window.
    pub fn known_conversations(&self) -> Arc<dyn KnownConversations> {
        self.known_conversations_with(LateWindow::default())
    }

    /// This ledger as discovery's memory of conversations, under `late`.
    pub fn known_conversations_with(&self, late: LateWindow) -> Arc<dyn KnownConversations> {
        Arc::new(LedgerConversations(self.clone(), late))
    }
}

/// The ledger as [`KnownConversations`]: a ledger error answers "not settled" (the
/// conversation is resolved again: calls spent, nothing skipped).
#[derive(Debug, Clone)]
struct LedgerConversations(Ledger, LateWindow);

#[async_trait::async_trait]
impl KnownConversations for LedgerConversations {
    async fn settled(&self, conversation_ids: &[String]) -> HashSet<String> {
        if self.1.recheck_all {
            return HashSet::new();
        }
        match self
            .0
            .settled_conversations_at(conversation_ids, self.1.present)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not read conversations from the ledger; resolving them again");
                HashSet::new()
            }
        }
    }

    async fn resolved(&self, conversations: Vec<ResolvedConversation>) {
        if let Err(e) = self
            .0
            .conversations_resolved_with(&conversations, &self.1)
            .await
        {
            self.1
                .stats
                .unrecorded
                .fetch_add(conversations.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, "could not record resolved conversations; the poll is not reconciled and reads them again");
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
            conversation: Box::new(AnalyticsConversation {
                conversation_id: id.into(),
                ..Default::default()
            }),
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

    /// Inside its late window a settled conversation stays settled (listed, not resolved
    /// again) but keeps a recheck; once the window has passed it is due (not settled, and
    /// handed back by `due_rechecks`), and a resolution after the window settles it for good.
    /// A recheck that finds a new file counts it.
    #[tokio::test]
    async fn a_conversation_is_rechecked_once_after_its_late_window() {
        let l = Ledger::in_memory().unwrap();
        let lease = std::time::Duration::from_secs(60);
        for r in ["a1", "a2"] {
            let rec = test_support::bare_recording("A", r);
            l.claim(&rec, &format!("k/{r}"), "me", lease).await.unwrap();
            l.archived(r, "me", &format!("k/{r}"), 1, "md5", 1)
                .await
                .unwrap();
        }
        let end = Utc::now() - chrono::Duration::hours(1);
        let window = Duration::from_secs(2 * 3600);
        let at = |present: DateTime<Utc>| LateWindow {
            window,
            present,
            ..LateWindow::default()
        };
        let mut first = resolved("A", &["a1"], true);
        first.end = Some(end);
        first.conversation.conversation_end = Some(end.to_rfc3339());
        first.conversation.participants = vec![genesys_media::models::AnalyticsParticipant {
            sessions: vec![genesys_media::models::AnalyticsSession {
                ani: Some("tel:+15551234567".into()),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let early = at(end + chrono::Duration::minutes(5));
        l.conversations_resolved_with(&[first], &early)
            .await
            .unwrap();
        let ids = vec!["A".to_string()];
        let inside = end + chrono::Duration::minutes(90);
        let after = end + chrono::Duration::minutes(121);
        assert!(
            l.settled_conversations_at(&ids, inside)
                .await
                .unwrap()
                .contains("A")
        );
        assert!(l.due_rechecks(inside, 10).await.unwrap().is_empty());
        let (open, until) = l.late_window_open(inside).await.unwrap();
        assert_eq!(open, 1);
        assert_eq!(
            until.map(|u| u.timestamp_millis()),
            Some((end + chrono::Duration::hours(2)).timestamp_millis())
        );
        // Past the window: due, and the kept conversation comes back without its numbers.
        assert!(
            l.settled_conversations_at(&ids, after)
                .await
                .unwrap()
                .is_empty()
        );
        let due = l.due_rechecks(after, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].conversation_id, "A");
        assert_eq!(
            due[0].participants[0].sessions[0].ani, None,
            "phone numbers are not kept"
        );
        // The recheck finds a second file: counted, and the conversation settles for good.
        let mut again = resolved("A", &["a1", "a2"], true);
        again.end = Some(end);
        let late = at(after);
        l.conversations_resolved_with(&[again], &late)
            .await
            .unwrap();
        assert_eq!(late.stats.rechecked(), 1);
        assert_eq!(late.stats.late_files(), 1);
        assert!(l.due_rechecks(after, 10).await.unwrap().is_empty());
        assert_eq!(l.late_window_open(after).await.unwrap().0, 0);
        let far = end + chrono::Duration::days(30);
        assert!(
            l.settled_conversations_at(&ids, far)
                .await
                .unwrap()
                .contains("A")
        );
        // No window: settled at the first complete resolution, no recheck kept.
        let mut b = resolved("B", &[], true);
        b.end = Some(Utc::now());
        let off = LateWindow {
            window: Duration::ZERO,
            ..LateWindow::default()
        };
        l.conversations_resolved_with(&[b], &off).await.unwrap();
        assert_eq!(l.late_window_open(Utc::now()).await.unwrap().0, 0);
        // Resolved after its window but incomplete (a late file still uploading): it stays
        // due, so a poll that loses its waiting set cannot lose it.
        let mut c = resolved("C", &[], false);
        c.end = Some(end);
        l.conversations_resolved_with(&[c], &at(after))
            .await
            .unwrap();
        let due = l.due_rechecks(after, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].conversation_id, "C");
        // `recheck_all` answers nothing settled.
        let all = l.known_conversations_with(LateWindow {
            recheck_all: true,
            ..LateWindow::default()
        });
        assert!(all.settled(&["B".to_string()]).await.is_empty());
        assert!(
            l.known_conversations()
                .settled(&["B".to_string()])
                .await
                .contains("B")
        );
    }
}
