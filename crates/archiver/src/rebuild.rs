//! A ledger rebuilt from the store alone: every object's own metadata (ids, times, media
//! type, MD5 where it carries one), then the chain-of-custody index's entries for the digests
//! and conversation facts. What `ledger rebuild` writes to a file and what `verify` and `find`
//! use in memory when no ledger is given.

use std::collections::HashSet;

use futures::StreamExt;
use sink::{ObjectSink, SinkError};

use crate::{AdoptedObject, IndexError, Ledger, LedgerError};

/// What [`rebuild_ledger`] found.
#[derive(Debug)]
pub struct RebuildReport {
    /// Objects recorded as archived that the ledger did not know.
    pub adopted: u64,
    /// Objects the ledger knew already.
    pub unchanged: u64,
    /// Objects without recording metadata (not written by this archiver), left out.
    pub foreign: u64,
    /// Objects whose metadata (or index parts that) could not be read: `(key, error)`.
    pub unreadable: Vec<(String, String)>,
    /// Objects whose digests contradict each other (the store's own against the `md5`
    /// metadata, or either against the index entry for the key): `(key, what differs)`.
    /// Their rows keep no digest the contradiction could have come from.
    pub contradicted: Vec<(String, String)>,
    /// Keys the index lists that the store no longer holds (removed since they were
    /// indexed), each key once.
    pub absent: Vec<AbsentObject>,
    /// Index parts taken up and rows given their digests (and facts) back by them, or why
    /// the index could not be read (then rows without digests are checked by size only).
    pub index: Result<(u64, u64), IndexError>,
}

/// An object the index lists that the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentObject {
    /// Its key.
    pub key: String,
    /// Its recording id (ledger id).
    pub recording_id: String,
    /// When the recording started, as the index says (RFC 3339).
    pub start_time: Option<String>,
    /// The first index part that lists it.
    pub part: u64,
}

/// Why [`rebuild_ledger`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The store could not be listed.
    #[error("listing the store: {0}")]
    List(#[source] SinkError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Records every object under `prefix` that carries recording metadata as archived in
/// `ledger` (objects it knows already are left as they are), then takes up the index under
/// `index_prefix` (see [`crate::restore_from_index`]). One HEAD per object; memory bounded by
/// the ledger, not the listing.
pub async fn rebuild_ledger(
    ledger: &Ledger,
    sink: &dyn ObjectSink,
    prefix: &str,
    index_prefix: &str,
) -> Result<RebuildReport, RebuildError> {
    let mut report = RebuildReport {
        adopted: 0,
        unchanged: 0,
        foreign: 0,
        unreadable: Vec::new(),
        contradicted: Vec::new(),
        absent: Vec::new(),
        index: Ok((0, 0)),
    };
    // Every key listed (one short string per object, as the ledger's rows are): what the
    // index lists and the store lacks is a removal, not "nothing to check".
    let mut listed: HashSet<String> = HashSet::new();
    let mut listing = sink.list(prefix);
    while let Some(item) = listing.next().await {
        let obj = item.map_err(RebuildError::List)?;
        listed.insert(obj.key.clone());
        let meta = match sink.head(&obj.key).await {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                report.unreadable.push((obj.key.clone(), e.to_string()));
                continue;
            }
        };
        let (Some(rid), Some(cid)) = (
            meta.metadata.get("recording-id"),
            meta.metadata.get("conversation-id"),
        ) else {
            report.foreign += 1;
            continue;
        };
        // The store's own digests (the directory sink's sidecar, computed from the bytes)
        // and what the writer declared (S3 metadata written with `digests_up_front`) must
        // agree; when they do not, neither is kept.
        let agreed = (
            agree("MD5", meta.metadata.get("md5"), meta.digests.md5.as_ref()),
            agree(
                "SHA-256",
                meta.metadata.get("sha256"),
                meta.digests.sha256.as_ref(),
            ),
        );
        let (md5, sha256) = match agreed {
            (Ok(md5), Ok(sha256)) => (md5, sha256),
            (Err(why), _) | (_, Err(why)) => {
                report.contradicted.push((obj.key.clone(), why));
                (None, None)
            }
        };
        let changed = ledger
            .adopt(AdoptedObject {
                recording_id: rid.clone(),
                conversation_id: cid.clone(),
                key: obj.key.clone(),
                size: Some(meta.size),
                md5,
                sha256,
                media_type: meta.metadata.get("media-type").cloned(),
                start_time: meta.metadata.get("start-time").cloned(),
                end_time: meta.metadata.get("end-time").cloned(),
            })
            .await?;
        if changed {
            report.adopted += 1;
        } else {
            report.unchanged += 1;
        }
    }
    report.index = crate::restore_from_index(ledger, sink, index_prefix).await;
    if report.index.is_ok() {
        let mut seen: HashSet<String> = HashSet::new();
        for part in ledger.index_parts().await? {
            let entries = crate::custody::read_part(sink, &part.key)
                .await
                .and_then(|b| crate::custody::parse_part(&b));
            match entries {
                Ok((_, entries)) => {
                    for e in entries {
                        if listed.contains(&e.key) {
                            contradiction(ledger, &e, &mut report).await?;
                        }
                        if !listed.contains(&e.key) && seen.insert(e.key.clone()) {
                            report.absent.push(AbsentObject {
                                key: e.key,
                                recording_id: e.recording_id,
                                start_time: e.start_time,
                                part: part.seq,
                            });
                        }
                    }
                }
                Err(e) => report.unreadable.push((part.key.clone(), e)),
            }
        }
    }
    Ok(report)
}

/// Reports an index entry whose digests or size differ from what the rebuilt row holds for
/// its key (the row then stays unindexed: `restore_indexed` does not mark it).
async fn contradiction(
    ledger: &Ledger,
    e: &crate::IndexEntry,
    report: &mut RebuildReport,
) -> Result<(), RebuildError> {
    let Some(row) = ledger.entry(&e.recording_id).await? else {
        return Ok(());
    };
    if row.key != e.key {
        return Ok(());
    }
    let differs = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b));
    let what = if differs(&row.md5, &e.md5) {
        "MD5"
    } else if differs(&row.sha256, &e.sha256) {
        "SHA-256"
    } else if matches!((row.size, e.size), (Some(a), Some(b)) if a != b) {
        "size"
    } else {
        return Ok(());
    };
    let already = report.contradicted.iter().any(|(k, _)| k == &e.key);
    if !already {
        report.contradicted.push((
            e.key.clone(),
            format!("its {what} differs from the index's entry for it"),
        ));
    }
    Ok(())
}

/// The digest `what` of an object: the store's own (`stored`) and the writer's (`declared`)
/// when they agree, whichever there is; an error naming both when they differ.
fn agree(
    what: &str,
    declared: Option<&String>,
    stored: Option<&String>,
) -> Result<Option<String>, String> {
    let declared = declared.map(|d| d.to_ascii_lowercase());
    let stored = stored.map(|s| s.to_ascii_lowercase());
    let hex_len = if what == "MD5" { 32 } else { 64 };
    for (whose, d) in [("its metadata", &declared), ("the store", &stored)] {
        if let Some(d) = d
            .as_ref()
            .filter(|d| d.len() != hex_len || !d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!("{whose} gives {what} {d:?}, which is not one"));
        }
    }
    match (&declared, &stored) {
        (Some(d), Some(s)) if d != s => Err(format!(
            "the store keeps {what} {s} for it, its metadata says {d}"
        )),
        _ => Ok(stored.or(declared)),
    }
}
