//! Digest values and S3 ETag arithmetic.

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// A 16-byte MD5 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Md5Digest(pub [u8; 16]);

impl Md5Digest {
    /// Computes the MD5 of a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Self(Md5::digest(data).into())
    }

    /// Parses 32 hex characters (case-insensitive); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// Parses the base64 form used by the `Content-MD5` header.
    pub fn from_base64(s: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()?;
        Some(Self(raw.try_into().ok()?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Base64, the `Content-MD5` header form.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Md5Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Md5Digest({})", self.to_hex())
    }
}

impl std::fmt::Display for Md5Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The digests computed over a complete body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Total bytes seen.
    pub length: u64,
    /// MD5 over all bytes.
    pub md5: Md5Digest,
    /// SHA-256 over all bytes, when requested.
    pub sha256: Option<[u8; 32]>,
    /// CRC32C over all bytes, when requested.
    pub crc32c: Option<u32>,
}

impl Digests {
    /// MD5 as lower-case hex.
    pub fn md5_hex(&self) -> String {
        self.md5.to_hex()
    }

    /// SHA-256 as lower-case hex, when computed.
    pub fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// SHA-256 of `data` (small inputs: an empty body, an index object).
pub fn sha256_of(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Computes the ETag S3 gives a multipart object: the MD5 of the concatenated part MD5s,
/// hex, followed by `-` and the part count.
pub fn multipart_etag(parts: &[Md5Digest]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.0);
    }
    format!("{}-{}", hex::encode(h.finalize()), parts.len())
}

/// Compares an ETag returned by a store with an expected single-part MD5 or multipart ETag.
/// Quotes and case are ignored. Returns `None` when the ETag is empty (some stores, e.g. Ceph
/// on CompleteMultipartUpload, return `""`), so callers can fall back to HEAD.
pub fn etag_matches_md5(etag: &str, expected: &str) -> Option<bool> {
    let e = etag.trim().trim_start_matches("W/").trim_matches('"');
    if e.is_empty() {
        return None;
    }
    Some(e.eq_ignore_ascii_case(expected.trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_known_answers() {
        assert_eq!(
            Md5Digest::of(b"").to_hex(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            Md5Digest::of(b"The quick brown fox jumps over the lazy dog").to_hex(),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn hex_and_base64_round_trip() {
        let d = Md5Digest::of(b"abc");
        assert_eq!(Md5Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Md5Digest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(Md5Digest::from_base64(&d.to_base64()), Some(d));
        assert_eq!(d.to_base64(), "kAFQmDzST7DWlj99KOF/cg==");
        assert_eq!(Md5Digest::from_hex("xyz"), None);
        assert_eq!(
            Md5Digest::from_hex("0123456789abcdef0123456789abcdeg"),
            None
        );
    }

    #[test]
    fn multipart_etag_matches_s3_formula() {
        let p1 = Md5Digest::of(b"part one");
        let p2 = Md5Digest::of(b"part two");
        let mut cat = Vec::new();
        cat.extend_from_slice(&p1.0);
        cat.extend_from_slice(&p2.0);
        let expected = format!("{}-2", Md5Digest::of(&cat).to_hex());
        assert_eq!(multipart_etag(&[p1, p2]), expected);
    }

    #[test]
    fn etag_comparison() {
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(
            etag_matches_md5("\"5D41402ABC4B2A76B9719D911017C592\"", md5),
            Some(true)
        );
        assert_eq!(
            etag_matches_md5("\"00000000000000000000000000000000\"", md5),
            Some(false)
        );
        assert_eq!(etag_matches_md5("\"\"", md5), None);
        assert_eq!(etag_matches_md5("", md5), None);
    }
}
