//! The integrity error type.

use std::error::Error as StdError;

/// Boxed error from the wrapped body, kept as the source of [`IntegrityError::Inner`].
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Result alias for this crate.
pub type Result<T, E = IntegrityError> = std::result::Result<T, E>;

/// What went wrong while streaming or verifying a body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The stream ended with a different number of bytes than expected.
    #[error("length mismatch: expected {expected} bytes, received {actual}")]
    LengthMismatch {
        /// Bytes announced (Content-Length or source metadata).
        expected: u64,
        /// Bytes actually received.
        actual: u64,
    },
    /// More bytes arrived than the expected length allows; the stream was cut short.
    #[error("length exceeded: expected {expected} bytes, received at least {actual}")]
    LengthExceeded {
        /// Bytes announced.
        expected: u64,
        /// Bytes seen so far when the limit was crossed.
        actual: u64,
    },
    /// The computed digest differs from the expected one.
    #[error("{algorithm} mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// Algorithm name, e.g. `md5`.
        algorithm: &'static str,
        /// Expected digest, hex.
        expected: String,
        /// Computed digest, hex.
        actual: String,
    },
    /// The wrapped body failed.
    #[error("body error: {0}")]
    Inner(#[source] BoxError),
}

impl IntegrityError {
    /// True when the error proves the data differs from what the source announced
    /// (length or digest), as opposed to a failure of the transport underneath.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            Self::LengthMismatch { .. } | Self::LengthExceeded { .. } | Self::DigestMismatch { .. }
        )
    }

    /// Finds an [`IntegrityError`] in an error's source chain (the S3 SDK and hyper wrap body
    /// errors several layers deep).
    pub fn find_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a IntegrityError> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<IntegrityError>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}
