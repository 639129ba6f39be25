//! `verify --chain`: the walk of the custody index in the store (every part in order, each
//! carrying its predecessor's digest, its signature when keys are given) and of every object
//! the parts list, and the [`ChainReport`] it gives.

use std::collections::BTreeMap;

use futures::StreamExt;
use sink::ObjectSink;

use crate::IndexPart;
use crate::custody::{PartHeader, parse_part_releases, read_digests, read_part, stored_parts};

/// What [`verify_chain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Parts read.
    pub parts: u64,
    /// Object entries checked (an object archived again is listed, and checked, again).
    pub objects: u64,
    /// Entries whose object's size, MD5 and SHA-256 match.
    pub verified: u64,
    /// Entries that no longer match because a later part lists the key again (a recording
    /// archived again): the later entry is the one that counts.
    pub superseded: u64,
    /// Entries without a SHA-256 (adopted objects): checked by size and MD5 only.
    pub md5_only: u64,
    /// Release lines read (releases at the source recorded in the index), each checked
    /// against the object and part it rests on.
    pub releases: u64,
    /// Every break of the chain or mismatch, one line each.
    pub problems: Vec<String>,
    /// The last part's sequence number and SHA-256: record it to detect a removed tail later.
    pub head: Option<(u64, String)>,
    /// Every part in the store in order: sequence number, key and SHA-256 (an auditor keeps
    /// any of them as an anchor, `--expect-head`).
    pub part_digests: Vec<(u64, String, String)>,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// Parts whose signature checked.
    pub signed: u64,
    /// Each key that signed parts (hex), with the first and last part it signed, oldest
    /// key first.
    pub signed_by: Vec<(String, u64, u64)>,
}

impl ChainReport {
    /// Whether the chain is whole and every object matches.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the index under `prefix`: every part from 1 without gaps, each carrying the SHA-256
/// of the one before; then reads every object the parts list (`concurrency` at a time)
/// and compares its size, MD5 and SHA-256 with the entry. With `ledger`, a part the ledger
/// recorded but the store lacks (or holds with other bytes) is a problem too, which catches a
/// removed tail, and so is a part the ledger never wrote. The ledger's parts are read after
/// the store is listed, so a part an archiver writes while this runs is known to both. Memory
/// stays bounded by one part, whatever the archive's size.
///
/// With `keys` (public keys, oldest first: after a rotation, the retired ones then the
/// current one), every part must carry a signature by one of them over its bytes' digest and
/// its predecessor's, never by a key older than the previous part's, and the signed head must
/// name a part the store holds with those bytes: then a writer without the secret key can
/// neither add, alter nor remove a part unnoticed (short of putting back an older head it
/// kept), and a retired key cannot add parts after its successor signed one. `expect` are anchors an auditor kept
/// (sequence number, SHA-256): each must match the store's part.
pub async fn verify_chain(
    sink: &dyn ObjectSink,
    prefix: &str,
    ledger: Option<&crate::Ledger>,
    keys: &[crate::IndexVerifier],
    expect: &[(u64, String)],
    concurrency: usize,
) -> Result<ChainReport, sink::SinkError> {
    let mut report = ChainReport::default();
    // First pass: each part's header and digest. seq -> (key, sha256, header)
    let mut parts: BTreeMap<u64, (String, String, PartHeader)> = BTreeMap::new();
    for (key, found) in stored_parts(sink, prefix).await? {
        match found {
            Ok((sha, header)) => {
                if let Some((other, ..)) = parts.get(&header.seq) {
                    report.problems.push(format!(
                        "part {} appears twice: {other} and {key}",
                        header.seq
                    ));
                    continue;
                }
                parts.insert(header.seq, (key, sha, header));
            }
            Err(e) => report.problems.push(format!("{key}: {e}")),
        }
    }
    report.parts = parts.len() as u64;
    // Read after the listing: a part written meanwhile is in the ledger by now.
    let anchor: Option<Vec<IndexPart>> = match ledger {
        Some(l) => match l.index_parts().await {
            Ok(p) => Some(p),
            Err(e) => {
                report
                    .problems
                    .push(format!("the ledger's index parts cannot be read: {e}"));
                None
            }
        },
        None => None,
    };
    let anchor = anchor.as_deref();
    let mut previous: Option<(u64, String, String)> = None;
    for (seq, (key, sha, header)) in &parts {
        let expected_seq = previous.as_ref().map_or(1, |p| p.0 + 1);
        if *seq != expected_seq {
            report.problems.push(format!(
                "parts {expected_seq} to {} missing before {key}",
                seq - 1
            ));
        } else if header.previous.as_deref() != previous.as_ref().map(|p| p.2.as_str()) {
            report.problems.push(format!(
                "{key}: carries previous digest {} but part {} ({}) has {}",
                header.previous.as_deref().unwrap_or("none"),
                seq.saturating_sub(1),
                previous.as_ref().map_or("none", |p| p.1.as_str()),
                previous.as_ref().map_or("none", |p| p.2.as_str()),
            ));
        }
        previous = Some((*seq, key.clone(), sha.clone()));
    }
    report.head = previous.as_ref().map(|p| (p.0, p.2.clone()));
    report.part_digests = parts
        .iter()
        .map(|(seq, (key, sha, _))| (*seq, key.clone(), sha.clone()))
        .collect();
    for (seq, sha) in expect {
        match parts.get(seq) {
            None => report.problems.push(format!(
                "part {seq}, expected with SHA-256 {sha}, is not in the store"
            )),
            Some((key, got, _)) if !got.eq_ignore_ascii_case(sha) => report.problems.push(format!(
                "{key}: SHA-256 {got}, but part {seq} was expected with {sha}"
            )),
            Some(_) => {}
        }
    }
    if !keys.is_empty() {
        let claims = parts
            .iter()
            .map(|(seq, (key, sha, h))| (*seq, (key.clone(), sha.clone(), h.previous.clone())))
            .collect();
        let check = crate::custody_signed::check_signatures(sink, prefix, &claims, keys).await;
        report.problems.extend(check.problems);
        report.signed = check.signed;
        report.signed_by = check
            .ranges
            .iter()
            .zip(keys)
            .filter_map(|(r, k)| r.map(|(first, last)| (k.hex(), first, last)))
            .collect();
        report.signatures_checked = true;
    }
    if let Some(anchor) = anchor {
        // A part the ledger never opened: not written by this archive (appended by hand, or
        // by a writer with bucket access only).
        if !anchor.is_empty() {
            for (seq, (key, ..)) in &parts {
                if !anchor.iter().any(|a| a.seq == *seq) {
                    report.problems.push(format!(
                        "{key}: part {seq} is in the store but the ledger never wrote it"
                    ));
                }
            }
        }
        for a in anchor.iter().filter(|a| a.sha256.is_some()) {
            match parts.get(&a.seq) {
                None => report.problems.push(format!(
                    "part {} ({}) is in the ledger but not in the store",
                    a.seq, a.key
                )),
                Some((key, sha, _)) if Some(sha) != a.sha256.as_ref() => {
                    report.problems.push(format!(
                        "{key}: SHA-256 {sha}, but the ledger recorded {} when it was written",
                        a.sha256.as_deref().unwrap_or_default()
                    ))
                }
                Some(_) => {}
            }
        }
    }
    // Second pass, one part at a time: every object listed. A mismatch waits in `open` until
    // the end, in case a later part lists the key again (then the earlier entry is superseded).
    let mut open: BTreeMap<String, String> = BTreeMap::new();
    // Each key's latest listing: (part key, MD5, SHA-256); one small line per object (the
    // archive's key count bounds it, as the ledger's rows do).
    let mut listed: BTreeMap<String, (String, Option<String>, Option<String>)> = BTreeMap::new();
    let mut relisted: Vec<String> = Vec::new();
    let digests: BTreeMap<u64, String> = parts
        .iter()
        .map(|(seq, (_, sha, _))| (*seq, sha.clone()))
        .collect();
    for (key, _, header) in parts.values() {
        let (entries, releases) = match read_part(sink, key)
            .await
            .and_then(|b| parse_part_releases(&b))
        {
            Ok((_, entries, releases)) => (entries, releases),
            Err(e) => {
                report
                    .problems
                    .push(format!("{key}: cannot be read again: {e}"));
                continue;
            }
        };
        if header.entries != entries.len() as u64 {
            report.problems.push(format!(
                "{key}: header says {} entries, the part holds {}",
                header.entries,
                entries.len()
            ));
        }
        if header.releases != releases.len() as u64 {
            report.problems.push(format!(
                "{key}: header says {} releases, the part holds {}",
                header.releases,
                releases.len()
            ));
        }
        for e in &entries {
            // A key listed again must carry the digests it was listed with: an entry that
            // drops them, or names others, would otherwise stand in for the checksummed one.
            if let Some((earlier_key, md5, sha)) = listed.get(&e.key) {
                let other_md5 = md5.is_some() && e.md5.as_ref() != md5.as_ref();
                let other_sha = sha.is_some() && e.sha256.as_ref() != sha.as_ref();
                if other_md5 || other_sha {
                    relisted.push(format!(
                        "{}: listed again by {key} with {} than {earlier_key} gave (MD5 {}, SHA-256 {})",
                        e.key,
                        if e.md5.is_none() || e.sha256.is_none() {
                            "fewer digests"
                        } else {
                            "other digests"
                        },
                        md5.as_deref().unwrap_or("none"),
                        sha.as_deref().unwrap_or("none"),
                    ));
                }
            }
            listed.insert(
                e.key.clone(),
                (key.clone(), e.md5.clone(), e.sha256.clone()),
            );
            if open.remove(&e.key).is_some() {
                report.superseded += 1;
            }
        }
        report.objects += entries.len() as u64;
        // Releases rest on objects this part or an earlier one lists (`listed` holds both by
        // now) and on parts the store holds with the bytes they name.
        report
            .problems
            .extend(crate::custody_releases::check_release_lines(
                key,
                &releases,
                &listed,
                |seq| digests.get(&seq).cloned(),
            ));
        report.releases += releases.len() as u64;
        report.md5_only += entries.iter().filter(|e| e.sha256.is_none()).count() as u64;
        let checks = futures::stream::iter(entries)
            .map(|e| async move {
                let got = match sink.head(&e.key).await {
                    Ok(None) => Ok(None),
                    Ok(Some(_)) => read_digests(sink, &e.key, true).await.map(Some),
                    Err(err) => Err(err.to_string()),
                };
                (e, got)
            })
            .buffer_unordered(concurrency.max(1));
        let results: Vec<_> = checks.collect().await;
        for (e, got) in results {
            let problem = match got {
                Ok(None) => Some("listed in the index but gone from the store".to_string()),
                Ok(Some(d)) => {
                    let mut wrong = Vec::new();
                    if e.size.is_some_and(|s| s != d.length) {
                        wrong.push(format!(
                            "size {} (listed {})",
                            d.length,
                            e.size.unwrap_or(0)
                        ));
                    }
                    if e.md5.as_deref().is_some_and(|m| m != d.md5_hex()) {
                        wrong.push(format!("MD5 {}", d.md5_hex()));
                    }
                    if e.sha256.is_some() && e.sha256 != d.sha256_hex() {
                        wrong.push(format!("SHA-256 {}", d.sha256_hex().unwrap_or_default()));
                    }
                    (!wrong.is_empty())
                        .then(|| format!("altered since it was archived: {}", wrong.join(", ")))
                }
                Err(err) => Some(format!("cannot be read: {err}")),
            };
            match problem {
                None => report.verified += 1,
                Some(p) => {
                    open.insert(e.key.clone(), p);
                }
            }
        }
    }
    report
        .problems
        .extend(open.into_iter().map(|(k, p)| format!("{k}: {p}")));
    report.problems.extend(relisted);
    report.problems.sort();
    Ok(report)
}
