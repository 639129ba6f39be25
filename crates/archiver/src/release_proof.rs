//! The proof a release rests on, checked per recording at release time: the ledger's word
//! (archived, digests, conversation settled for good, old enough), the custody index (listed
//! in a written part whose bytes in the store are the ones the ledger recorded, signed when
//! keys are given) and the store (the object there now, its size and digests, its Object
//! Lock). Any check that cannot be made counts as failed: nothing is released on a doubt.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ledger::{IndexPart, RecordStatus, ReleaseCandidate, Settlement};
use sink::{Md5Digest, ObjectSink};

use crate::custody::{IndexEntry, read_digests, read_part};
use crate::custody_signed::{read_small, sig_key};
use crate::signing::{IndexVerifier, PartClaim, SignedClaim};

/// Why a recording is not released. Every recording considered and not released is counted
/// under one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hold {
    /// Not archived (pending, failed or quarantined).
    NotArchived(RecordStatus),
    /// Its conversation (or the recording, when the conversation's end is not recorded)
    /// ended less than `--older-than` ago.
    TooRecent,
    /// Its end time is unknown or unreadable.
    EndUnknown,
    /// The ledger has no resolution of its conversation.
    ConversationUnknown,
    /// Its conversation's last resolution did not account for every recording.
    ConversationIncomplete,
    /// Its conversation's late window is open (a recheck is still to be made).
    LateWindowOpen,
    /// Another file of its conversation is not archived.
    ConversationFilesNotArchived,
    /// The ledger lacks its size, MD5 or SHA-256 (adopted without a download).
    DigestsUnknown,
    /// No custody index part lists it yet.
    NotIndexed,
    /// Its index part is not written, or not in the store with the bytes the ledger
    /// recorded, or does not list it with its key, size and digests.
    IndexDisagrees,
    /// Its index part is not signed by one of the public keys given.
    IndexNotSigned,
    /// The object is not in the store.
    ObjectMissing,
    /// The object in the store is not the one archived (size, MD5 metadata or ETag, or its
    /// bytes when re-read).
    ObjectDiffers,
    /// The object is not under Object Lock until the required date.
    NotLocked,
    /// Its conversation is under deletion protection (legal hold).
    Protected,
    /// Another file of the same recording is held (a recording is released whole).
    OtherFileHeld,
    /// Without `--rehash`, the store reports no digest of its own that vouches for the bytes
    /// (a multipart upload's ETag is not an MD5): only re-reading them proves them.
    NoStoreDigest,
    /// Its release was taken back (`release --undo`): never released again by a run.
    TakenBack,
    /// The store could not be asked (an error): nothing is assumed.
    StoreError,
}

impl Hold {
    /// A short, stable name for reports and metrics.
    pub fn code(&self) -> String {
        match self {
            Hold::NotArchived(s) => format!("not-archived-{s}"),
            Hold::TooRecent => "too-recent".into(),
            Hold::EndUnknown => "end-unknown".into(),
            Hold::ConversationUnknown => "conversation-unknown".into(),
            Hold::ConversationIncomplete => "conversation-incomplete".into(),
            Hold::LateWindowOpen => "late-window-open".into(),
            Hold::ConversationFilesNotArchived => "conversation-files-not-archived".into(),
            Hold::DigestsUnknown => "digests-unknown".into(),
            Hold::NotIndexed => "not-indexed".into(),
            Hold::IndexDisagrees => "index-disagrees".into(),
            Hold::IndexNotSigned => "index-not-signed".into(),
            Hold::ObjectMissing => "object-missing".into(),
            Hold::ObjectDiffers => "object-differs".into(),
            Hold::NotLocked => "not-locked".into(),
            Hold::Protected => "deletion-protected".into(),
            Hold::OtherFileHeld => "other-file-held".into(),
            Hold::NoStoreDigest => "no-store-digest".into(),
            Hold::TakenBack => "taken-back".into(),
            Hold::StoreError => "store-error".into(),
        }
    }
}

/// A recording file proven fit for release, with the proof to record.
#[derive(Debug, Clone)]
pub(crate) struct Proven {
    pub(crate) candidate: ReleaseCandidate,
    pub(crate) size: u64,
    pub(crate) md5: String,
    pub(crate) sha256: String,
    pub(crate) index_seq: u64,
    pub(crate) index_sha256: String,
    pub(crate) end: DateTime<Utc>,
}

/// What the ledger alone says: the first reason to hold, or the proven digests.
/// What the ledger vouches for of a row fit for release: size, MD5, SHA-256, the index
/// part listing it, and the end its age is measured from.
pub(crate) type LedgerFacts = (u64, String, String, u64, DateTime<Utc>);

pub(crate) fn ledger_check(
    c: &ReleaseCandidate,
    end_before: DateTime<Utc>,
) -> Result<LedgerFacts, Hold> {
    let e = &c.entry;
    if e.status != RecordStatus::Archived {
        return Err(Hold::NotArchived(e.status));
    }
    match &c.settlement {
        Settlement::Settled => {}
        Settlement::Unknown => return Err(Hold::ConversationUnknown),
        Settlement::Incomplete => return Err(Hold::ConversationIncomplete),
        Settlement::LateWindowOpen { .. } => return Err(Hold::LateWindowOpen),
        Settlement::FilesNotArchived { .. } => return Err(Hold::ConversationFilesNotArchived),
    }
    // The conversation's end when the ledger recorded it (it ends after its recordings), else
    // the recording's.
    let parse = |t: Option<&str>| {
        t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let end = parse(c.conversation_end.as_deref())
        .into_iter()
        .chain(parse(e.end_time.as_deref()))
        .max()
        .ok_or(Hold::EndUnknown)?;
    if end > end_before {
        return Err(Hold::TooRecent);
    }
    let (Some(size), Some(md5), Some(sha)) = (e.size, e.md5.clone(), e.sha256.clone()) else {
        return Err(Hold::DigestsUnknown);
    };
    let seq = c.index_seq.ok_or(Hold::NotIndexed)?;
    Ok((size, md5, sha, seq, end))
}

/// One index part as read from the store, once per run.
struct ReadPart {
    /// Whether its bytes are the ones the ledger recorded (and signed, when keys are given).
    verdict: Result<(), Hold>,
    /// Its object lines by recording id.
    entries: HashMap<String, IndexEntry>,
    sha256: String,
}

/// The custody index as a release run reads it: each part at most once.
pub(crate) struct IndexReader<'a> {
    sink: &'a dyn ObjectSink,
    parts: HashMap<u64, IndexPart>,
    keys: &'a [IndexVerifier],
    read: HashMap<u64, ReadPart>,
}

impl<'a> IndexReader<'a> {
    pub(crate) fn new(
        sink: &'a dyn ObjectSink,
        parts: Vec<IndexPart>,
        keys: &'a [IndexVerifier],
    ) -> Self {
        Self {
            sink,
            parts: parts.into_iter().map(|p| (p.seq, p)).collect(),
            keys,
            read: HashMap::new(),
        }
    }

    /// Whether part `seq` lists `recording_id` with this key, size and digests, in bytes the
    /// store holds as the ledger recorded them; the part's SHA-256 when it does.
    pub(crate) async fn check(
        &mut self,
        seq: u64,
        recording_id: &str,
        key: &str,
        size: u64,
        md5: &str,
        sha256: &str,
    ) -> Result<String, Hold> {
        if !self.read.contains_key(&seq) {
            let part = self.load(seq).await;
            self.read.insert(seq, part);
        }
        let part = &self.read[&seq];
        part.verdict.clone()?;
        match part.entries.get(recording_id) {
            Some(e)
                if e.key == key
                    && e.size == Some(size)
                    && e.md5.as_deref() == Some(md5)
                    && e.sha256.as_deref() == Some(sha256) =>
            {
                Ok(part.sha256.clone())
            }
            _ => Err(Hold::IndexDisagrees),
        }
    }

    async fn load(&self, seq: u64) -> ReadPart {
        let fail = |h: Hold| ReadPart {
            verdict: Err(h),
            entries: HashMap::new(),
            sha256: String::new(),
        };
        let Some(p) = self.parts.get(&seq) else {
            return fail(Hold::IndexDisagrees);
        };
        let Some(recorded) = p.sha256.clone() else {
            return fail(Hold::IndexDisagrees);
        };
        let bytes = match read_part(self.sink, &p.key).await {
            Ok(b) => b,
            Err(_) => return fail(Hold::IndexDisagrees),
        };
        let sha = hex::encode(integrity::sha256_of(&bytes));
        if sha != recorded {
            return fail(Hold::IndexDisagrees);
        }
        if !self.keys.is_empty() {
            let expected = PartClaim {
                seq,
                key: p.key.clone(),
                sha256: sha.clone(),
                previous: p.previous.clone(),
            };
            let signed = match read_small(self.sink, &sig_key(&p.key)).await {
                Ok(Some(b)) => serde_json::from_slice::<SignedClaim>(&b).ok(),
                _ => None,
            };
            let ok = signed.is_some_and(|s| {
                s.claim == expected && self.keys.iter().any(|k| k.check_part(&s).is_ok())
            });
            if !ok {
                return fail(Hold::IndexNotSigned);
            }
        }
        let entries = bytes
            .split(|b| *b == b'\n')
            .skip(1)
            .filter_map(|l| serde_json::from_slice::<IndexEntry>(l).ok())
            .filter(|e| e.kind == "object")
            .map(|e| (e.recording_id.clone(), e))
            .collect();
        ReadPart {
            verdict: Ok(()),
            entries,
            sha256: sha,
        }
    }
}

/// What the store holds under the key now: there, same size, and its bytes vouched for:
/// without `rehash` by the store's own digest (a plain-MD5 ETag) equal to the ledger's MD5,
/// the `md5` metadata not contradicting it; with `rehash` by reading them (MD5
/// and SHA-256). Locked until `lock.0` (in mode `lock.1`, when given) when asked.
pub(crate) async fn store_check(
    sink: &dyn ObjectSink,
    key: &str,
    size: u64,
    md5: &str,
    sha256: &str,
    lock: Option<(DateTime<Utc>, Option<&str>)>,
    rehash: bool,
) -> Result<(), Hold> {
    let meta = match sink.head(key).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(Hold::ObjectMissing),
        Err(_) => return Err(Hold::StoreError),
    };
    if meta.size != size {
        return Err(Hold::ObjectDiffers);
    }
    let ours = Md5Digest::from_hex(md5).ok_or(Hold::ObjectDiffers)?;
    let recorded = meta.metadata.get("md5").map(|m| Md5Digest::from_hex(m));
    if recorded.is_some_and(|m| m != Some(ours)) {
        return Err(Hold::ObjectDiffers);
    }
    if !rehash {
        // A plain-MD5 ETag (single PUT, no KMS) is the store's own digest of the bytes.
        // Under SSE-KMS an ETag is not an MD5 and a multipart one is not one at all: then
        // only re-reading the bytes proves them.
        let etag = meta.etag.as_deref().and_then(Md5Digest::from_hex);
        if etag.is_some_and(|t| t != ours) {
            return Err(Hold::ObjectDiffers);
        }
        // The `md5` metadata is what the writer said, not the store's own digest: it may
        // contradict, never vouch.
        if etag != Some(ours) {
            return Err(Hold::NoStoreDigest);
        }
    }
    if let Some((until, mode)) = lock {
        let locked = meta.retention.as_ref().is_some_and(|r| {
            r.retain_until_epoch_s >= until.timestamp()
                && mode.is_none_or(|m| r.mode.eq_ignore_ascii_case(m))
        });
        if !locked {
            return Err(Hold::NotLocked);
        }
    }
    if rehash {
        let d = read_digests(sink, key, true)
            .await
            .map_err(|_| Hold::StoreError)?;
        if d.length != size || d.md5 != ours || d.sha256.map(hex::encode).as_deref() != Some(sha256)
        {
            return Err(Hold::ObjectDiffers);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::LedgerEntry;

    fn candidate(recording_end: &str, conversation_end: Option<&str>) -> ReleaseCandidate {
        ReleaseCandidate {
            entry: LedgerEntry {
                recording_id: "r1".into(),
                conversation_id: "c1".into(),
                key: "k1".into(),
                status: RecordStatus::Archived,
                size: Some(3),
                md5: Some("m".into()),
                attempts: 1,
                last_error: None,
                media_type: None,
                start_time: None,
                end_time: Some(recording_end.into()),
                lease_owner: None,
                updated_at: "2026-01-01T00:00:00Z".into(),
                sha256: Some("s".into()),
                facts: Default::default(),
                lease_until_ms: None,
            },
            index_seq: Some(1),
            intended: None,
            settlement: Settlement::Settled,
            conversation_end: conversation_end.map(str::to_string),
        }
    }

    /// The age is the conversation's: a recording that ended long ago in a conversation that
    /// ended recently is too recent; without the conversation's end, the recording's counts.
    #[test]
    fn the_age_is_the_conversations() {
        let before: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let recent = "2026-07-01T00:00:00Z";
        assert_eq!(
            ledger_check(&candidate(old, Some(recent)), before).unwrap_err(),
            Hold::TooRecent
        );
        assert!(ledger_check(&candidate(old, Some(old)), before).is_ok());
        assert!(ledger_check(&candidate(old, None), before).is_ok());
        assert_eq!(
            ledger_check(&candidate(recent, None), before).unwrap_err(),
            Hold::TooRecent
        );
        assert_eq!(
            ledger_check(&candidate("garbled", None), before).unwrap_err(),
            Hold::EndUnknown
        );
    }
}
