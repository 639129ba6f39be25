//! The inventory audit: every recording the org retains (the retention query, independent
//! of analytics) checked against the ledger, and every orphan recording reported. What
//! analytics never listed, or listed before a file was attached, shows up here; with
//! [`archive_missing`] the missing ones are resolved through their conversations and archived.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use genesys_media::models::AnalyticsConversation;
use genesys_media::{BATCH_MAX, DiscoveryQuery, GenesysClient, OrphanRecording, RetainedRecording};
use sink::ObjectSink;

use crate::{ArchiverConfig, EventHandler, Ledger, LedgerError, RecordStatus, Summary};

/// A recording the org retains that the archive does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRecording {
    /// What the retention query said of it.
    pub recording: RetainedRecording,
    /// Its ledger row's status and last error, when it has one (failed, in quarantine,
    /// pending); `None`: the ledger never saw it.
    pub ledger: Option<(RecordStatus, Option<String>)>,
}

/// What [`audit_inventory`] found.
#[derive(Debug, Clone, Default)]
pub struct InventoryReport {
    /// Recordings the retention query listed.
    pub retained: u64,
    /// Of those, archived (the ledger holds them as archived).
    pub held: u64,
    /// Of those, created at or after the audit's `until`: not judged (the archive may not
    /// have reached them yet).
    pub too_recent: u64,
    /// Of those, created before the audit's `from` (outside what the archive covers): not
    /// judged.
    pub before_range: u64,
    /// Of those, not archived: each is a gap to close.
    pub missing: Vec<MissingRecording>,
    /// Recordings not attached to any conversation (cannot be archived until re-attached).
    pub orphans: Vec<OrphanRecording>,
    /// Why the orphans could not be listed (e.g. the client lacks `recording:orphan:view`):
    /// then `orphans` is empty and says nothing.
    pub orphans_error: Option<String>,
    /// API calls the audit spent.
    pub api_calls: u64,
}

impl InventoryReport {
    /// Clean: nothing missing and the orphan listing was read.
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.orphans_error.is_none()
    }
}

/// Errors of the audit.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The retention query failed.
    #[error("the retention query failed: {0}")]
    Source(#[from] genesys_media::Error),
    /// The ledger could not be read.
    #[error("the ledger could not be read: {0}")]
    Ledger(#[from] LedgerError),
}

/// Lists every recording the org retains (`retentionThresholdDays=0`) and every orphan, and
/// checks against the ledger each retained recording created in `[from, until)` (what the
/// archive covers and has had time to reach); the others are counted, not judged.
pub async fn audit_inventory(
    client: &GenesysClient,
    ledger: &Ledger,
    from: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
) -> Result<InventoryReport, InventoryError> {
    let calls_before = total_calls(client);
    let retained = client.retained_recordings(0).await?;
    let mut report = InventoryReport {
        retained: retained.len() as u64,
        ..InventoryReport::default()
    };
    let mut judged = Vec::new();
    for r in retained {
        let created = r
            .creation_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        // An unreadable creation time is judged (never skip on doubt).
        if created.is_some_and(|c| c >= until) {
            report.too_recent += 1;
        } else if created.zip(from).is_some_and(|(c, f)| c < f) {
            report.before_range += 1;
        } else {
            judged.push(r);
        }
    }
    for chunk in judged.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|r| r.recording_id.clone()).collect();
        let statuses = ledger.statuses(&ids).await?;
        for r in chunk {
            let state = match statuses.get(&r.recording_id) {
                Some(RecordStatus::Archived) => None,
                Some(status) => Some(Some((
                    *status,
                    ledger
                        .entry(&r.recording_id)
                        .await?
                        .and_then(|e| e.last_error),
                ))),
                // No row under the bare id: a recording of several files has rows
                // `rid~part2`, `rid~ch0`...
                None => not_held(ledger, r).await?,
            };
            match state {
                None => report.held += 1,
                Some(ledger) => report.missing.push(MissingRecording {
                    recording: r.clone(),
                    ledger,
                }),
            }
        }
    }
    match client.orphan_recordings().await {
        Ok(o) => report.orphans = o,
        Err(e) => report.orphans_error = Some(e.to_string()),
    }
    report.api_calls = total_calls(client).saturating_sub(calls_before);
    Ok(report)
}

fn total_calls(client: &GenesysClient) -> u64 {
    client.metrics().snapshot().total_calls()
}

/// Whether the ledger holds every file of `r` as archived (its row under the bare id, or its
/// rows `rid~part2`, `rid~ch0`... for a recording of several files): `None` when it does,
/// else why not (the first row not archived, or no row at all).
async fn not_held(
    ledger: &Ledger,
    r: &RetainedRecording,
) -> Result<Option<Option<(RecordStatus, Option<String>)>>, LedgerError> {
    let rows: Vec<crate::LedgerEntry> = ledger
        .find(&crate::FindQuery {
            conversation: Some(r.conversation_id.clone()),
            ..crate::FindQuery::default()
        })
        .await?
        .into_iter()
        .filter(|e| {
            e.recording_id == r.recording_id
                || e.recording_id
                    .strip_prefix(&r.recording_id)
                    .is_some_and(|rest| rest.starts_with('~'))
        })
        .collect();
    Ok(
        match rows.iter().find(|e| e.status != RecordStatus::Archived) {
            None if !rows.is_empty() => None,
            None => Some(None),
            Some(e) => Some(Some((e.status, e.last_error.clone()))),
        },
    )
}

/// Resolves the conversations of `missing` (one batch item per conversation, at most 100
/// per job) and archives what they hold: files already archived are skipped through the
/// ledger, the missing ones are downloaded, verified and recorded like any other. The
/// conversations are recorded as resolved under `cfg`'s late window.
pub async fn archive_missing(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    missing: &[MissingRecording],
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
) -> Summary {
    // One stub per conversation: its id, and the latest creation time of its missing
    // recordings as its end (they exist, so it has ended).
    let mut by_conversation: BTreeMap<String, Option<String>> = BTreeMap::new();
    for m in missing {
        let end = by_conversation
            .entry(m.recording.conversation_id.clone())
            .or_default();
        if m.recording.creation_time > *end {
            end.clone_from(&m.recording.creation_time);
        }
    }
    let conversations: Vec<AnalyticsConversation> = by_conversation
        .into_iter()
        .filter(|(id, _)| !id.is_empty())
        .map(|(conversation_id, created)| {
            let at = created.or_else(|| Some(Utc::now().to_rfc3339()));
            AnalyticsConversation {
                conversation_id,
                // The key template's date and the row's times come from here: the creation
                // time is the best the retention query gives.
                conversation_start: at.clone(),
                conversation_end: at,
                ..AnalyticsConversation::default()
            }
        })
        .collect();
    // The ledger tells which files are archived already (no media requested again), but a
    // stub's resolution never replaces the conversation's row: its end is made up, and the
    // late window must run from the real one.
    let known: Option<Arc<dyn genesys_media::KnownConversations>> = cfg
        .ledger
        .as_ref()
        .map(|l| Arc::new(HeldOnly(l.known_conversations())) as _);
    let query = DiscoveryQuery::interval(Utc::now(), Utc::now());
    // Resolved chunk by chunk before archiving (a few chunks at most: what the audit found
    // missing); a chunk that cannot be resolved ends the stream with its error.
    let mut items: Vec<genesys_media::Result<genesys_media::Discovered>> = Vec::new();
    for chunk in conversations.chunks(BATCH_MAX) {
        match client
            .resolve_listed(&query, chunk.to_vec(), known.as_deref())
            .await
        {
            Ok(resolved) => items.extend(resolved.into_iter().map(Ok)),
            Err(e) => {
                items.push(Err(e));
                break;
            }
        }
    }
    let items = futures::stream::iter(items);
    crate::archive(client, sink, items, cfg, events).await
}

/// The daemon's audit: when `every` has passed since the last completed one (kept in the
/// ledger as `<checkpoint>.inventory`), audits the recordings created since the daemon's
/// start and up to `overlap + settle` (at least an hour) ago, reports it
/// ([`crate::Event::Inventory`]) and archives what is missing. An audit that fails is logged
/// and tried again at the next poll.
pub(crate) async fn daemon_audit(
    client: &GenesysClient,
    sink: &Arc<dyn ObjectSink>,
    cfg: &ArchiverConfig,
    poll: &crate::PollSettings,
    every: std::time::Duration,
    events: &Arc<dyn EventHandler>,
) -> Result<Summary, crate::ContinuousError> {
    let Some(ledger) = cfg.ledger.as_ref() else {
        return Ok(Summary::default());
    };
    let name = format!("{}.inventory", poll.checkpoint);
    let last = ledger.checkpoint_time(&name).await?;
    let now = client.now();
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    if last.is_some_and(|l| now - l < every) {
        return Ok(Summary::default());
    }
    let reach = chrono::Duration::from_std(poll.overlap + poll.settle)
        .unwrap_or(chrono::Duration::zero())
        .max(chrono::Duration::hours(1));
    // Up to where the daemon's own polls have reached (its checkpoint), less the reach: what
    // lies after is the polls' to archive, not the audit's to find missing.
    let checkpoint = ledger.checkpoint_time(&poll.checkpoint).await?;
    let until = checkpoint.map_or(now - reach, |c| c.min(now - reach));
    let report = match audit_inventory(client, ledger, Some(poll.start), until).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "inventory audit failed; the next poll tries again");
            return Ok(Summary::default());
        }
    };
    events.handle(&crate::Event::Inventory {
        retained: report.retained,
        held: report.held,
        missing: report.missing.len() as u64,
        orphans: report.orphans.len() as u64,
        orphans_error: report.orphans_error.clone(),
        api_calls: report.api_calls,
    });
    for m in &report.missing {
        tracing::warn!(
            recording_id = %m.recording.recording_id,
            conversation_id = %m.recording.conversation_id,
            "retained at the source and not archived; archiving it"
        );
    }
    let mut summary = if report.missing.is_empty() {
        Summary::default()
    } else {
        archive_missing(
            client.clone(),
            sink.clone(),
            &report.missing,
            cfg.clone(),
            events.clone(),
        )
        .await
    };
    if poll.archive_orphans && !report.orphans.is_empty() {
        summary.absorb(
            archive_orphans(
                client.clone(),
                sink.clone(),
                &report.orphans,
                cfg.clone(),
                events.clone(),
            )
            .await,
        );
    }
    // Done only when every missing recording is archived or has a ledger row the retry pass
    // takes up; otherwise the next poll audits again.
    if summary.discovery_error.is_none() && summary.pending == 0 && summary.unrecorded == 0 {
        ledger
            .set_checkpoint(
                &name,
                &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .await?;
    } else {
        tracing::warn!(
            "the inventory audit's missing recordings were not all handled; the next poll audits again"
        );
    }
    Ok(summary)
}

/// A memory of conversations that answers only which files are held: nothing is settled, and
/// resolutions are not recorded.
#[derive(Debug)]
struct HeldOnly(Arc<dyn genesys_media::KnownConversations>);

#[async_trait::async_trait]
impl genesys_media::KnownConversations for HeldOnly {
    async fn settled(&self, _: &[String]) -> std::collections::HashSet<String> {
        std::collections::HashSet::new()
    }

    async fn resolved(&self, _: Vec<genesys_media::ResolvedConversation>) {}

    async fn held(&self, recording_ids: &[String]) -> std::collections::HashSet<String> {
        self.0.held(recording_ids).await
    }
}

/// Of `missing` (an audit's finding), how many the ledger still does not hold as archived
/// (every file of a recording of several).
pub async fn still_missing(
    ledger: &Ledger,
    missing: &[MissingRecording],
) -> Result<u64, LedgerError> {
    let mut n = 0;
    for m in missing {
        if not_held(ledger, &m.recording).await?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// Archives the media of orphan recordings (not attached to any conversation) through
/// `GET /api/v2/orphanrecordings/{orphanId}/media`, under the conversation id
/// [`genesys_media::ORPHAN_CONVERSATION`] with the orphan's id as the recording id: verified
/// and recorded like any other file, so an orphan never re-attached is still kept. One that
/// is re-attached later is archived again under its conversation (the audit finds it).
pub async fn archive_orphans(
    client: GenesysClient,
    sink: Arc<dyn ObjectSink>,
    orphans: &[OrphanRecording],
    cfg: ArchiverConfig,
    events: Arc<dyn EventHandler>,
) -> Summary {
    // Those archived before cost nothing (no media request).
    let held = match &cfg.ledger {
        Some(l) => {
            let ids: Vec<String> = orphans.iter().map(|o| o.id.clone()).collect();
            l.statuses(&ids).await.unwrap_or_default()
        }
        None => Default::default(),
    };
    let todo: Vec<OrphanRecording> = orphans
        .iter()
        .filter(|o| held.get(&o.id) != Some(&RecordStatus::Archived))
        .cloned()
        .collect();
    let items = match client.orphan_recordings_media(&todo).await {
        Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e)],
    };
    crate::archive(client, sink, futures::stream::iter(items), cfg, events).await
}
