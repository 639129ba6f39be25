//! Around a release run: the daemon's release after each poll, and taking releases back
//! (`release --undo`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_media::GenesysClient;
use ledger::{Ledger, ReleaseState};
use sink::ObjectSink;

use crate::release::{
    LEASE_FOR, LeaseKeeper, MAX_SPAN, MIN_GRACE, RELEASE_LEASE, ReleaseError, ReleasePolicy,
    release, source_id,
};

/// The daemon's release after a poll: one [`release`] run bounded by the policy's limit and
/// deadline, stopped by a shutdown, under the instance's id, reported as an
/// [`crate::Event::Release`] and in the log. A failure is logged and the next
/// poll runs again: nothing is counted released that was not confirmed.
pub(crate) async fn daemon_release(
    client: &GenesysClient,
    sink: &std::sync::Arc<dyn ObjectSink>,
    cfg: &crate::ArchiverConfig,
    policy: &ReleasePolicy,
    events: &std::sync::Arc<dyn crate::EventHandler>,
) {
    let Some(ledger) = cfg.ledger.as_ref() else {
        return;
    };
    let policy = ReleasePolicy {
        shutdown: Some(cfg.shutdown.clone()),
        owner: cfg.instance_id.clone(),
        ..policy.clone()
    };
    let event = match release(client, ledger, sink.as_ref(), &policy).await {
        Ok(r) => {
            for a in &r.at_risk {
                tracing::error!(recording = %a, "release at risk");
            }
            for f in r.refused.iter().chain(&r.unconfirmed) {
                tracing::warn!(recording = %f, "release not confirmed");
            }
            crate::Event::Release {
                eligible: r.eligible,
                released: r.released,
                held: r.held.clone(),
                at_risk: r.at_risk.len() as u64,
                refused: r.refused.len() as u64,
                unconfirmed: r.unconfirmed.len() as u64,
                api_calls: r.protection_calls + r.put_calls,
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "release failed; the next poll tries again");
            crate::Event::Release {
                eligible: 0,
                released: 0,
                held: BTreeMap::new(),
                at_risk: 0,
                refused: 0,
                unconfirmed: 0,
                api_calls: 0,
                error: Some(e.to_string()),
            }
        }
    };
    events.handle(&event);
}

/// What [`undo_releases`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UndoReport {
    /// The delete date set instead (RFC 3339), as of the run's start (each PUT sets now +
    /// keep-for; the ledger keeps each recording's own).
    pub delete_date: String,
    /// Recordings whose delete date was pushed out (ledger rows marked undone).
    pub undone: u64,
    /// Recordings the source refused or did not confirm, with why: still released.
    pub failed: Vec<String>,
    /// Delete-date PUTs made.
    pub put_calls: u64,
}

/// Takes back the releases recorded since `since` (released since then; intended ones
/// whatever their time, since their PUT may have been made): sets each recording's delete date
/// at the source to now + `keep_for`, which must be later than the date the release asked,
/// and records the release undone with that date once the source confirms. The date still
/// stands, so the ledger keeps the row and `verify` keeps watching the copy; an undone
/// recording is not released again by later runs. Refused releases set no date and are left
/// alone. (The platform documents no way to clear a delete date; a later one is.)
pub async fn undo_releases(
    client: &GenesysClient,
    ledger: &Ledger,
    since: DateTime<Utc>,
    keep_for: Duration,
    per_minute: u32,
    owner: &str,
) -> Result<UndoReport, ReleaseError> {
    if keep_for < MIN_GRACE || keep_for > MAX_SPAN {
        return Err(ReleaseError::Policy(
            "the new delete date must be at least 25 hours and at most 100 years ahead".into(),
        ));
    }
    let when = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let mut groups: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for r in ledger.releases().await? {
        let take = match r.state {
            ReleaseState::Intended => true,
            // An unreadable time is taken back too: never left released on a doubt.
            ReleaseState::Released => r
                .released_at
                .as_deref()
                .and_then(when)
                .is_none_or(|t| t >= since),
            ReleaseState::Undone | ReleaseState::Refused => false,
        };
        if take {
            groups
                .entry((
                    r.conversation_id.clone(),
                    source_id(&r.recording_id).to_string(),
                ))
                .or_default()
                .push((r.recording_id, r.delete_date));
        }
    }
    if !ledger
        .take_listing(RELEASE_LEASE, owner, LEASE_FOR, Duration::ZERO)
        .await?
    {
        return Err(ReleaseError::Busy);
    }
    let outcome = undo_groups(client, ledger, groups, keep_for, per_minute, owner).await;
    if let Err(e) = ledger.end_listing(RELEASE_LEASE, owner, false).await {
        tracing::warn!(error = %e, "could not give the release lease back; it lapses");
    }
    outcome
}

async fn undo_groups(
    client: &GenesysClient,
    ledger: &Ledger,
    groups: BTreeMap<(String, String), Vec<(String, String)>>,
    keep_for: Duration,
    per_minute: u32,
    owner: &str,
) -> Result<UndoReport, ReleaseError> {
    let keep = chrono::Duration::from_std(keep_for).unwrap_or(chrono::Duration::MAX);
    let mut report = UndoReport {
        delete_date: genesys_media::api_date(client.now() + keep),
        ..UndoReport::default()
    };
    let mut lease = LeaseKeeper::new(per_minute);
    for ((conv, rid), rows) in groups {
        if !lease.next(ledger, owner).await? {
            return Err(ReleaseError::Busy);
        }
        let date = client.now() + keep;
        let text = genesys_media::api_date(date);
        // Never earlier than what the release asked: an undo must not bring a deletion closer.
        let asked = rows
            .iter()
            .filter_map(|(_, d)| DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&Utc))
            .max();
        if asked.is_some_and(|a| a >= date) {
            report.failed.push(format!(
                "{rid}: its release asked delete date {}, later than now + keep-for ({text}): not moved closer",
                asked.map(genesys_media::api_date).unwrap_or_default()
            ));
            continue;
        }
        report.put_calls += 1;
        match client.set_delete_date(&conv, &rid, date).await {
            Ok(set) if set.confirms(date) => {
                for (id, _) in &rows {
                    if ledger.release_undone(id, &text).await? {
                        report.undone += 1;
                    } else {
                        report.failed.push(format!(
                            "{id}: the source took delete date {text}, but its release changed in the ledger meanwhile"
                        ));
                    }
                }
            }
            Ok(_) => report.failed.push(format!(
                "{rid}: the source did not confirm the new delete date"
            )),
            Err(e) => report.failed.push(format!("{rid}: {e}")),
        }
    }
    Ok(report)
}
