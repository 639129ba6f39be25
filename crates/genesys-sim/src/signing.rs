//! Signed, expiring media URLs.

use sha2::{Digest as _, Sha256};

/// Signature over the path, expiry and format, keyed with the simulator's secret.
pub(crate) fn sign(key: &[u8], path: &str, expires: i64) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(path.as_bytes());
    h.update(expires.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Constant-time comparison of two signatures.
pub(crate) fn verify(key: &[u8], path: &str, expires: i64, sig: &str) -> bool {
    let expected = sign(key, path, expires);
    expected.len() == sig.len()
        && expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tamper_is_detected() {
        let s = sign(b"k", "/media/a", 10);
        assert!(verify(b"k", "/media/a", 10, &s));
        assert!(!verify(b"k", "/media/b", 10, &s));
        assert!(!verify(b"k", "/media/a", 11, &s));
        assert!(!verify(b"other", "/media/a", 10, &s));
    }
}
