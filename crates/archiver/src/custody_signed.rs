//! Signatures of the chain-of-custody index in the store: `<part key>.sig` beside each part,
//! `<prefix>HEAD.json` naming the newest part, `<prefix>public-key.txt` (for reference: an
//! auditor checks with their own copy of the public key), and their check.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::BodyExt;
use sink::{ObjectSink, PutOptions, SinkErrorKind};

use crate::signing::{IndexSigner, IndexVerifier, PartClaim, SignedClaim};
use crate::{IndexError, IndexPart};

/// The key of a part's signature.
pub(crate) fn sig_key(part_key: &str) -> String {
    format!("{part_key}.sig")
}

/// The key of the signed head.
pub(crate) fn head_key(prefix: &str) -> String {
    format!("{prefix}HEAD.json")
}

/// The key of the public key beside the index.
pub(crate) fn public_key_key(prefix: &str) -> String {
    format!("{prefix}public-key.txt")
}

fn claim_of(part: &IndexPart) -> Option<PartClaim> {
    Some(PartClaim {
        seq: part.seq,
        key: part.key.clone(),
        sha256: part.sha256.clone()?,
        previous: part.previous.clone(),
    })
}

async fn put(
    sink: &dyn ObjectSink,
    key: &str,
    bytes: Vec<u8>,
    content_type: &str,
    create_only: bool,
) -> Result<bool, IndexError> {
    let len = bytes.len() as u64;
    let body = BodyExt::boxed(
        http_body_util::Full::new(Bytes::from(bytes)).map_err(|never| match never {}),
    );
    let opts = PutOptions {
        content_length: Some(len),
        content_type: Some(content_type.into()),
        create_only,
        ..PutOptions::default()
    };
    match sink.put(key, body, opts).await {
        Ok(_) => Ok(true),
        Err(e) if create_only && e.kind == SinkErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IndexError::Store {
            key: key.into(),
            message: e.to_string(),
        }),
    }
}

/// Reads a small object whole; `None` when it is not there.
pub(crate) async fn read_small(sink: &dyn ObjectSink, key: &str) -> Result<Option<Bytes>, String> {
    match sink.head(key).await {
        Ok(None) => return Ok(None),
        Ok(Some(_)) => {}
        Err(e) => return Err(e.to_string()),
    }
    let body = sink.get(key).await.map_err(|e| e.to_string())?;
    body.collect()
        .await
        .map(|b| Some(b.to_bytes()))
        .map_err(|e| e.to_string())
}

/// Signs `parts` (just written by this archiver) that have no signature yet (Ed25519
/// signatures are deterministic: a part signed again gets the same bytes), then the head (the
/// newest of them), and writes the public key beside the index once.
pub(crate) async fn sign_parts(
    sink: &dyn ObjectSink,
    prefix: &str,
    parts: &[IndexPart],
    signer: &IndexSigner,
) -> Result<(), IndexError> {
    let pk_key = public_key_key(prefix);
    let public = signer.verifier().to_text();
    if !put(
        sink,
        &pk_key,
        public.clone().into_bytes(),
        "text/plain",
        true,
    )
    .await?
    {
        let stored = read_small(sink, &pk_key).await.ok().flatten();
        if stored.as_deref() != Some(public.as_bytes()) {
            tracing::warn!(key = %pk_key, "another public key is beside the index; kept (a rotated key? auditors check with every key, oldest first: verify --chain --public-key OLD --public-key NEW)");
        }
    }
    let mut newest = None;
    for part in parts {
        let Some(claim) = claim_of(part) else {
            continue;
        };
        let key = sig_key(&part.key);
        if sink
            .head(&key)
            .await
            .map_err(|e| IndexError::Store {
                key: key.clone(),
                message: e.to_string(),
            })?
            .is_none()
        {
            let signed = signer.sign_part(&claim);
            let bytes = serde_json::to_vec(&signed).expect("serializable");
            put(sink, &key, bytes, "application/json", true).await?;
        }
        newest = Some(claim);
    }
    if let Some(claim) = newest {
        let key = head_key(prefix);
        let current = read_small(sink, &key)
            .await
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<SignedClaim>(&b).ok());
        if current.is_none_or(|c| c.claim != claim) {
            let bytes = serde_json::to_vec(&signer.sign_head(&claim)).expect("serializable");
            put(sink, &key, bytes, "application/json", false).await?;
        }
    }
    Ok(())
}

/// Which of `keys` (oldest first) checks `signed`, by `check`.
fn signer_of(
    keys: &[IndexVerifier],
    signed: &SignedClaim,
    check: impl Fn(&IndexVerifier, &SignedClaim) -> Result<(), crate::SigningError>,
) -> Result<usize, String> {
    if let Some(i) = keys.iter().position(|k| check(k, signed).is_ok()) {
        return Ok(i);
    }
    Err(match keys {
        [only] => check(only, signed)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        _ => format!(
            "the signature matches none of the {} public keys given",
            keys.len()
        ),
    })
}

/// What [`check_signatures`] found.
#[derive(Debug, Default)]
pub(crate) struct SignatureCheck {
    pub(crate) problems: Vec<String>,
    /// Parts whose signature checks.
    pub(crate) signed: u64,
    /// For each key given (oldest first), the first and last part it signed.
    pub(crate) ranges: Vec<Option<(u64, u64)>>,
}

/// Checks the signatures of the parts found in the store (seq -> (key, sha256, previous))
/// and of the head with `keys`, oldest first (a rotated key: the retired ones, then the
/// current one). Each part must be signed by one of them, never by a key older than the one
/// that signed the part before (a retired key, even leaked, cannot add parts after the
/// rotation), and the head by the newest part's key or a later one.
pub(crate) async fn check_signatures(
    sink: &dyn ObjectSink,
    prefix: &str,
    parts: &BTreeMap<u64, (String, String, Option<String>)>,
    keys: &[IndexVerifier],
) -> SignatureCheck {
    let mut out = SignatureCheck {
        ranges: vec![None; keys.len()],
        ..SignatureCheck::default()
    };
    let mut current = 0usize;
    for (seq, (key, sha, previous)) in parts {
        let expected = PartClaim {
            seq: *seq,
            key: key.clone(),
            sha256: sha.clone(),
            previous: previous.clone(),
        };
        let sig = sig_key(key);
        match read_small(sink, &sig).await {
            Ok(None) => out
                .problems
                .push(format!("{key}: not signed ({sig} is missing)")),
            Err(e) => out.problems.push(format!("{sig}: cannot be read: {e}")),
            Ok(Some(bytes)) => match serde_json::from_slice::<SignedClaim>(&bytes) {
                Err(e) => out
                    .problems
                    .push(format!("{sig}: not a signature file: {e}")),
                Ok(s) if s.claim != expected => out.problems.push(format!(
                    "{key}: its signature vouches for other bytes (SHA-256 {}, previous {}) than the store holds (SHA-256 {sha})",
                    s.claim.sha256,
                    s.claim.previous.as_deref().unwrap_or("none")
                )),
                Ok(s) => match signer_of(keys, &s, IndexVerifier::check_part) {
                    Err(e) => out.problems.push(format!("{key}: {e}")),
                    Ok(i) if i < current => out.problems.push(format!(
                        "{key}: signed with key {} ({}), retired before: an earlier part is signed with key {}",
                        i + 1,
                        keys[i].hex(),
                        current + 1
                    )),
                    Ok(i) => {
                        current = i;
                        out.signed += 1;
                        let range = out.ranges[i].get_or_insert((*seq, *seq));
                        range.1 = *seq;
                    }
                },
            },
        }
    }
    let head = head_key(prefix);
    match read_small(sink, &head).await {
        Ok(None) if parts.is_empty() => {}
        Ok(None) => out.problems.push(format!(
            "{head} is missing: the newest part is not vouched for (a removed part would not show)"
        )),
        Err(e) => out.problems.push(format!("{head}: cannot be read: {e}")),
        Ok(Some(bytes)) => match serde_json::from_slice::<SignedClaim>(&bytes) {
            Err(e) => out.problems.push(format!("{head}: not a head file: {e}")),
            Ok(h) => match signer_of(keys, &h, IndexVerifier::check_head) {
                Err(e) => out.problems.push(format!("{head}: {e}")),
                Ok(i) if i < current => out.problems.push(format!(
                    "{head}: signed with key {}, retired before the newest parts (key {}): an old head put back",
                    i + 1,
                    current + 1
                )),
                Ok(_) => match parts.get(&h.claim.seq) {
                    None => out.problems.push(format!(
                        "the signed head names part {} ({}), which is not in the store: removed",
                        h.claim.seq, h.claim.key
                    )),
                    Some((_, sha, _)) if *sha != h.claim.sha256 => out.problems.push(format!(
                        "the signed head names part {} with SHA-256 {}, the store holds {sha}",
                        h.claim.seq, h.claim.sha256
                    )),
                    Some(_) => {}
                },
            },
        },
    }
    out
}
