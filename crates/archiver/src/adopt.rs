//! When an object already under a recording's key may be adopted (recorded as archived
//! without writing it again), and when it must be written over.

use genesys_media::DiscoveredRecording;
use integrity::Md5Digest;
use sink::ObjectMeta;

/// How sure an adoption must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// Nothing may contradict the recording: size and MD5 match what the source vouches for
    /// (when it does), the object's own ETag and `md5` metadata agree, and its `recording-id`
    /// metadata (when present) names this recording. For an object found before any attempt
    /// (a lost ledger, another tool).
    NoContradiction,
    /// Additionally, its bytes must be positively known to be the recording's: an MD5 the
    /// source vouches for, or the store's MD5 (ETag of a single PUT) equal to the `md5` this
    /// archiver recorded. For an object that appeared during our own attempt (a create-only
    /// conflict).
    Positive,
}

/// Checks an object found under `rec`'s key. `Ok` carries the MD5 hex to record (when
/// known); `Err` says why it must be written over instead.
pub(crate) fn check_existing(
    rec: &DiscoveredRecording,
    meta: &ObjectMeta,
    proof: Proof,
) -> Result<Option<String>, String> {
    if let Some(size) = rec.expected_size
        && size != meta.size
    {
        return Err(format!(
            "it holds {} bytes where the source announces {size}",
            meta.size
        ));
    }
    if let Some(owner) = meta.metadata.get("recording-id")
        && owner != &rec.recording_id
    {
        return Err(format!("its metadata names recording {owner:?}"));
    }
    if let (Some(file), Some(ours)) = (meta.metadata.get("file"), &rec.file)
        && file != ours
    {
        return Err(format!("its metadata names file {file:?} of the recording"));
    }
    // A plain-MD5 ETag is the store's own digest of the bytes (single PUT, no KMS).
    let stored = meta.etag.as_deref().and_then(Md5Digest::from_hex);
    let recorded = meta
        .metadata
        .get("md5")
        .and_then(|m| Md5Digest::from_hex(m));
    if let (Some(s), Some(r)) = (stored, recorded)
        && s != r
    {
        return Err(format!(
            "its bytes (MD5 {}) are not the ones it was written for (MD5 {})",
            s.to_hex(),
            r.to_hex()
        ));
    }
    let expected = rec.expected_md5.as_deref().and_then(Md5Digest::from_hex);
    if let Some(e) = expected {
        match stored.or(recorded) {
            Some(have) if have == e => return Ok(Some(have.to_hex())),
            Some(have) => {
                return Err(format!(
                    "its MD5 {} is not the source's {}",
                    have.to_hex(),
                    e.to_hex()
                ));
            }
            None => return Err("the store gives no MD5 of it to compare with the source's".into()),
        }
    }
    match proof {
        Proof::NoContradiction => Ok(stored.or(recorded).map(|m| m.to_hex())),
        Proof::Positive => match (stored, recorded) {
            (Some(s), Some(_)) => Ok(Some(s.to_hex())),
            _ => Err("nothing proves its bytes are this recording's".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> DiscoveredRecording {
        let mut r = test_support::bare_recording("c1", "r1");
        r.expected_size = Some(3);
        r
    }

    fn meta(size: u64, etag: Option<&str>, md5: Option<&str>) -> ObjectMeta {
        let mut m = ObjectMeta {
            size,
            etag: etag.map(str::to_string),
            metadata: Default::default(),
            content_type: None,
            retention: None,
            digests: Default::default(),
        };
        if let Some(md5) = md5 {
            m.metadata.insert("md5".into(), md5.into());
        }
        m
    }

    const A: &str = "900150983cd24fb0d6963f7d28e17f72";
    const B: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn adoption_needs_agreement_and_for_conflicts_proof() {
        use Proof::*;
        assert_eq!(
            check_existing(&rec(), &meta(3, Some(A), None), NoContradiction),
            Ok(Some(A.into()))
        );
        assert!(check_existing(&rec(), &meta(4, Some(A), None), NoContradiction).is_err());
        assert!(check_existing(&rec(), &meta(3, Some(A), Some(B)), NoContradiction).is_err());
        assert!(check_existing(&rec(), &meta(3, Some(A), None), Positive).is_err());
        assert_eq!(
            check_existing(&rec(), &meta(3, Some(A), Some(A)), Positive),
            Ok(Some(A.into()))
        );
        // A multipart ETag is not an MD5: no contradiction, no proof.
        assert_eq!(
            check_existing(&rec(), &meta(3, Some("abc-2"), None), NoContradiction),
            Ok(None)
        );
        let mut vouched = rec();
        vouched.expected_md5 = Some(A.into());
        assert!(check_existing(&vouched, &meta(3, Some(B), None), NoContradiction).is_err());
        assert!(check_existing(&vouched, &meta(3, Some("abc-2"), None), NoContradiction).is_err());
        assert_eq!(
            check_existing(&vouched, &meta(3, Some(A), None), Positive),
            Ok(Some(A.into()))
        );
        let mut other = meta(3, Some(A), None);
        other.metadata.insert("recording-id".into(), "r2".into());
        assert!(check_existing(&rec(), &other, NoContradiction).is_err());
    }
}
