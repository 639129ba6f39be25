//! Sink errors.

use integrity::IntegrityError;

/// What kind of failure a [`SinkError`] is, for retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// `create_only` found an object already there; nothing was changed.
    AlreadyExists,
    /// The bytes differ from what was announced (length or MD5), or the store's checksum
    /// differs from the computed one. What was written has been removed.
    Verification,
    /// The body (the source) failed while streaming: connection reset, timeout. Retryable.
    Source,
    /// The store failed in a way that may pass (5xx, throttling, network). Retryable.
    StoreTemporary,
    /// The store refused the request (403, 404 bucket, 400). Not retryable.
    StorePermanent,
    /// Another write to the same key was in progress (409 `ConditionalRequestConflict`,
    /// `OperationAborted`): nothing was removed, since the object under the key may be the
    /// other writer's. Retryable.
    Conflict,
    /// Bad key or configuration.
    Invalid,
}

impl SinkErrorKind {
    /// Whether a failed write may remove what is under the key: not when the key was another
    /// writer's all along (create-only conflict) or another write is in progress (409).
    pub fn may_clean_up(self) -> bool {
        !matches!(self, SinkErrorKind::AlreadyExists | SinkErrorKind::Conflict)
    }
}

/// An error from an [`ObjectSink`](crate::ObjectSink). It names the key and the store.
#[derive(Debug, thiserror::Error)]
#[error("{op} {key:?} on {store}: {message}")]
pub struct SinkError {
    /// The failure kind.
    pub kind: SinkErrorKind,
    /// The operation (`put`, `head`, ...).
    pub op: &'static str,
    /// The key concerned.
    pub key: String,
    /// The store, as the sink displays itself.
    pub store: String,
    /// What happened.
    pub message: String,
    /// The integrity error, for verification failures.
    #[source]
    pub integrity: Option<Box<IntegrityError>>,
}

impl SinkError {
    pub(crate) fn new(
        kind: SinkErrorKind,
        op: &'static str,
        key: &str,
        store: &dyn std::fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            op,
            key: key.to_string(),
            store: store.to_string(),
            message: message.into(),
            integrity: None,
        }
    }

    /// Whether trying again may succeed as is.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            SinkErrorKind::Source | SinkErrorKind::StoreTemporary
        )
    }
}
