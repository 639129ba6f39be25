//! Multipart uploads in the ledger: every upload a write starts is recorded with the
//! recording's lease until it is completed or aborted, so the startup sweep aborts exactly the
//! uploads whose writer is gone (a crash, a killed process), and never a live instance's or
//! another program's upload in the same bucket.

use sink::{ObjectSink, StartedUpload, UploadLog, UploadSweep};

use super::{Ledger, LedgerError};

impl Ledger {
    /// Records an open multipart upload of `recording_id`, written by `owner`.
    pub async fn upload_started(
        &self,
        recording_id: &str,
        owner: &str,
        upload: &StartedUpload,
    ) -> Result<(), LedgerError> {
        self.inner.upload_started(recording_id, owner, upload).await
    }

    /// Forgets uploads that were completed, aborted, or are gone from the store.
    pub async fn uploads_ended(&self, upload_ids: &[String]) -> Result<(), LedgerError> {
        self.inner.uploads_ended(upload_ids).await
    }

    /// Recorded uploads whose writer no longer holds the recording's lease (it finished
    /// without telling, crashed, or lost the lease): what a sweep may abort.
    pub async fn abandoned_uploads(&self) -> Result<Vec<StartedUpload>, LedgerError> {
        self.inner.abandoned_uploads().await
    }
}

/// The [`UploadLog`] of one recording's write: records its uploads in the ledger under the
/// writer's lease.
#[derive(Debug, Clone)]
pub struct LedgerUploadLog {
    ledger: Ledger,
    recording_id: String,
    owner: String,
}

impl LedgerUploadLog {
    /// The log of `recording_id`'s uploads, written by the lease holder `owner`.
    pub fn new(ledger: Ledger, recording_id: &str, owner: &str) -> Self {
        Self {
            ledger,
            recording_id: recording_id.to_string(),
            owner: owner.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl UploadLog for LedgerUploadLog {
    async fn started(&self, upload: &StartedUpload) -> Result<(), String> {
        self.ledger
            .upload_started(&self.recording_id, &self.owner, upload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn ended(&self, upload: &StartedUpload) {
        if let Err(e) = self
            .ledger
            .uploads_ended(std::slice::from_ref(&upload.upload_id))
            .await
        {
            tracing::warn!(key = %upload.key, error = %e, "could not forget a finished multipart upload; the next sweep finds it gone");
        }
    }
}

/// Aborts the multipart uploads the ledger holds for writers that are gone, and forgets those
/// the store no longer has; uploads of live writers and of other programs are left alone.
/// `prefix` narrows the store's listing (the key template's fixed start; may be empty).
pub async fn sweep_uploads(
    sink: &dyn ObjectSink,
    ledger: &Ledger,
    prefix: &str,
) -> Result<UploadSweep, String> {
    let abandoned = ledger
        .abandoned_uploads()
        .await
        .map_err(|e| e.to_string())?;
    let sweep = sink
        .sweep_uploads(prefix, &abandoned)
        .await
        .map_err(|e| e.to_string())?;
    let done: Vec<String> = sweep
        .aborted
        .iter()
        .chain(&sweep.gone)
        .map(|u| u.upload_id.clone())
        .collect();
    ledger
        .uploads_ended(&done)
        .await
        .map_err(|e| e.to_string())?;
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn up(id: &str) -> StartedUpload {
        StartedUpload {
            key: format!("k/{id}"),
            upload_id: id.into(),
        }
    }

    /// An upload is abandoned exactly when its writer no longer holds the recording's lease.
    #[tokio::test]
    async fn uploads_are_abandoned_when_their_writer_lost_the_lease() {
        let l = Ledger::in_memory().unwrap();
        let lease = Duration::from_secs(60);
        let r1 = test_support::bare_recording("c1", "r1");
        l.claim(&r1, "k1", "a", lease).await.unwrap();
        l.upload_started("r1", "a", &up("u1")).await.unwrap();
        assert_eq!(
            l.abandoned_uploads().await.unwrap(),
            [],
            "a live writer's upload"
        );
        // Recorded by another owner than the lease holder (a writer that lost the lease).
        l.upload_started("r1", "b", &up("u2")).await.unwrap();
        // A recording nobody holds.
        l.upload_started("r9", "a", &up("u3")).await.unwrap();
        assert_eq!(l.abandoned_uploads().await.unwrap(), [up("u2"), up("u3")]);
        l.release("r1", "a").await.unwrap();
        assert_eq!(
            l.abandoned_uploads().await.unwrap(),
            [up("u1"), up("u2"), up("u3")]
        );
        l.uploads_ended(&["u1".into(), "u3".into()]).await.unwrap();
        assert_eq!(l.abandoned_uploads().await.unwrap(), [up("u2")]);
    }
}
