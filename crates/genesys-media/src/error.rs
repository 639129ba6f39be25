//! Typed errors that say whether retrying can help.

use std::time::Duration;

/// How an error should be treated by a caller that retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed if tried again (5xx, 429, transport, timeouts).
    Temporary,
    /// Will not succeed if repeated as is (other 4xx, bad data, configuration).
    Permanent,
    /// Was temporary but kept failing until the retry budget ran out.
    Persistent,
}

/// Errors of the Genesys Cloud client. `Display` never contains a token, secret or a presigned
/// query string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OAuth client credentials were refused (401/400 from the login service).
    #[error(
        "Genesys Cloud refused the OAuth client credentials ({status}): {description}; check GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET and that the OAuth client uses the client-credentials grant"
    )]
    Auth {
        /// HTTP status of the token response.
        status: u16,
        /// `error_description` from the login service.
        description: String,
    },
    /// An API call answered with a non-success status.
    #[error("{endpoint} answered {status}: {message}")]
    Status {
        /// Endpoint shape, e.g. `POST /api/v2/recording/batchrequests`.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The API's `message` or a short description.
        message: String,
        /// `Retry-After`, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke.
    #[error("transport error calling {endpoint}: {message}")]
    Transport {
        /// Endpoint shape or media host.
        endpoint: String,
        /// What went wrong (no URL query strings).
        message: String,
    },
    /// A response could not be decoded.
    #[error("unexpected response from {endpoint}: {message}")]
    Decode {
        /// Endpoint shape.
        endpoint: String,
        /// The decoding problem.
        message: String,
    },
    /// A temporary error kept happening until the retry budget was spent.
    #[error("gave up after {attempts} attempts over {elapsed:?}: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last error.
        last: Box<Error>,
    },
    /// A media URL or resource was refused by policy (host not allowed, bad id, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// An invalid argument (interval, page size, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A batch job or transcode did not finish in time.
    #[error("{0} did not finish in time")]
    Timeout(String),
}

impl Error {
    /// Classifies the error for retry decisions.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Status { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Temporary
            }
            Error::Transport { .. } | Error::Timeout(_) => ErrorClass::Temporary,
            Error::RetriesExhausted { .. } => ErrorClass::Persistent,
            _ => ErrorClass::Permanent,
        }
    }

    /// The HTTP status, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its causes, `a: b: c`. hyper-util's errors print the cause chain without the
/// URL, so no query string leaks.
pub(crate) fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    message
}
