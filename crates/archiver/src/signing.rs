//! Signed index parts: an Ed25519 key pair (ed25519-dalek: a reviewed implementation, no
//! hand-written cryptography) whose secret half signs each part's sequence number, SHA-256
//! and predecessor's SHA-256, and the index's *head* (its newest part). Anyone holding only
//! the public key and the store can then check that no part was added, altered or (with the
//! head) removed by a writer without the secret key.
//!
//! Key files are one line of text: `ed25519-secret-key <64 hex>` (the 32-byte seed) and
//! `ed25519-public-key <64 hex>`. A part's signature sits beside it as `<part key>.sig`, the
//! head as `<prefix>HEAD.json`; both are JSON.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

const SECRET_LABEL: &str = "ed25519-secret-key";
const PUBLIC_LABEL: &str = "ed25519-public-key";

/// What is wrong with a key file or a signature.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SigningError(String);

/// The secret key that signs index parts. Its `Debug` never shows the key.
pub struct IndexSigner {
    key: SigningKey,
}

impl std::fmt::Debug for IndexSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexSigner")
            .field("public_key", &self.verifier().to_text().trim_end())
            .finish_non_exhaustive()
    }
}

/// The public key that checks signed index parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexVerifier {
    key: VerifyingKey,
}

fn parse_line(text: &str, label: &str) -> Result<[u8; 32], SigningError> {
    let line = text.trim();
    let hex_part = line.strip_prefix(label).map(str::trim).ok_or_else(|| {
        SigningError(format!(
            "not an {label} file (it must start with {label:?})"
        ))
    })?;
    let bytes = hex::decode(hex_part)
        .map_err(|_| SigningError(format!("the {label} is not hexadecimal")))?;
    bytes
        .try_into()
        .map_err(|_| SigningError(format!("the {label} must be 32 bytes (64 hex digits)")))
}

impl IndexSigner {
    /// A new random key (the operating system's random source).
    pub fn generate() -> Result<Self, SigningError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| SigningError(format!("no random source: {e}")))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a secret key file's text.
    pub fn from_text(text: &str) -> Result<Self, SigningError> {
        Ok(Self {
            key: SigningKey::from_bytes(&parse_line(text, SECRET_LABEL)?),
        })
    }

    /// The secret key file's text (keep it secret: mode 0600).
    pub fn to_text(&self) -> String {
        format!("{SECRET_LABEL} {}\n", hex::encode(self.key.to_bytes()))
    }

    /// The public half.
    pub fn verifier(&self) -> IndexVerifier {
        IndexVerifier {
            key: self.key.verifying_key(),
        }
    }

    fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }

    /// The signature file of a part.
    pub fn sign_part(&self, claim: &PartClaim) -> SignedClaim {
        SignedClaim {
            claim: claim.clone(),
            public_key: self.verifier().hex(),
            signature: self.sign(&claim.message(PART_DOMAIN)),
        }
    }

    /// The head file: `claim` is the newest part.
    pub fn sign_head(&self, claim: &PartClaim) -> SignedClaim {
        SignedClaim {
            claim: claim.clone(),
            public_key: self.verifier().hex(),
            signature: self.sign(&claim.message(HEAD_DOMAIN)),
        }
    }
}

impl IndexVerifier {
    /// Reads a public key file's text.
    pub fn from_text(text: &str) -> Result<Self, SigningError> {
        let bytes = parse_line(text, PUBLIC_LABEL)?;
        Ok(Self {
            key: VerifyingKey::from_bytes(&bytes)
                .map_err(|_| SigningError("not a valid Ed25519 public key".into()))?,
        })
    }

    /// The public key file's text.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_LABEL} {}\n", self.hex())
    }

    /// The key as 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    fn check(&self, signed: &SignedClaim, domain: &str) -> Result<(), SigningError> {
        let bytes: [u8; 64] = hex::decode(&signed.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SigningError("the signature is not 64 hex bytes".into()))?;
        self.key
            .verify(
                &signed.claim.message(domain),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| SigningError("the signature does not match this public key".into()))
    }

    /// Checks a part's signature file.
    pub fn check_part(&self, signed: &SignedClaim) -> Result<(), SigningError> {
        self.check(signed, PART_DOMAIN)
    }

    /// Checks the head file.
    pub fn check_head(&self, signed: &SignedClaim) -> Result<(), SigningError> {
        self.check(signed, HEAD_DOMAIN)
    }
}

const PART_DOMAIN: &str = "genesys-archiver index part v1";
const HEAD_DOMAIN: &str = "genesys-archiver index head v1";

/// What a signature vouches for: part `seq`, whose bytes have `sha256`, follows the part
/// whose bytes have `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartClaim {
    /// Sequence number.
    pub seq: u64,
    /// Key of the part.
    pub key: String,
    /// SHA-256 hex of the part's bytes.
    pub sha256: String,
    /// SHA-256 hex of the previous part's bytes (`null` for part 1).
    pub previous: Option<String>,
}

impl PartClaim {
    fn message(&self, domain: &str) -> Vec<u8> {
        format!(
            "{domain}\nseq {}\nkey {}\nsha256 {}\nprevious {}\n",
            self.seq,
            self.key,
            self.sha256,
            self.previous.as_deref().unwrap_or("-")
        )
        .into_bytes()
    }
}

/// A signed claim, as stored (`<part>.sig`, `<prefix>HEAD.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedClaim {
    /// What is signed.
    #[serde(flatten)]
    pub claim: PartClaim,
    /// The public key that checks it (hex; an auditor checks with their own copy).
    pub public_key: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> PartClaim {
        PartClaim {
            seq: 2,
            key: "index/2026-12-07/0000000002.jsonl".into(),
            sha256: "ab".repeat(32),
            previous: Some("cd".repeat(32)),
        }
    }

    #[test]
    fn a_signature_checks_only_what_was_signed_with_that_key() {
        let s = IndexSigner::generate().unwrap();
        let v = IndexVerifier::from_text(&s.verifier().to_text()).unwrap();
        let signed = s.sign_part(&claim());
        v.check_part(&signed).unwrap();
        // A part signature is not a head signature.
        assert!(v.check_head(&signed).is_err());
        let mut altered = signed.clone();
        altered.claim.sha256 = "ef".repeat(32);
        assert!(v.check_part(&altered).is_err());
        let other = IndexSigner::generate().unwrap().verifier();
        assert!(other.check_part(&signed).is_err());
        // Keys round-trip through their files; the secret never shows in Debug.
        let again = IndexSigner::from_text(&s.to_text()).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        assert!(!format!("{s:?}").contains(&hex::encode(s.key.to_bytes())));
        assert!(IndexVerifier::from_text(&s.to_text()).is_err());
        assert!(IndexSigner::from_text("ed25519-secret-key 1234").is_err());
    }
}
