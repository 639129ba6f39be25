//! [`UploadLog`]: where a sink records the multipart uploads it starts, so that a sweep later
//! aborts exactly the uploads this program started and nobody finished, and nobody else's.

use std::fmt;
use std::sync::Arc;

/// A multipart upload a sink started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StartedUpload {
    /// The key the upload writes.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
}

/// Told when a sink starts and ends a multipart upload. The archiver keeps these in its ledger
/// with the recording's lease, so that [`ObjectSink::sweep_uploads`](crate::ObjectSink) is
/// given exactly the uploads whose writer is gone.
#[async_trait::async_trait]
pub trait UploadLog: Send + Sync + fmt::Debug {
    /// The store created `upload`; called before any part is sent. An error fails the write
    /// (the upload is aborted at once): an upload nobody recorded could only be swept by
    /// guessing whose it is.
    async fn started(&self, upload: &StartedUpload) -> Result<(), String>;

    /// `upload` was completed or aborted: the store no longer holds it open.
    async fn ended(&self, upload: &StartedUpload);
}

/// The [`UploadLog`] of one write, in [`PutOptions::upload_log`](crate::PutOptions). Two
/// handles are equal when they share the same log.
#[derive(Clone)]
pub struct UploadLogHandle(pub Arc<dyn UploadLog>);

impl fmt::Debug for UploadLogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for UploadLogHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UploadLogHandle {}

/// What [`ObjectSink::sweep_uploads`](crate::ObjectSink) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadSweep {
    /// Uploads of the given list the store still held open: aborted now.
    pub aborted: Vec<StartedUpload>,
    /// Uploads of the given list the store no longer has (completed, or aborted before).
    pub gone: Vec<StartedUpload>,
    /// Uploads of the given list that could not be aborted; the next sweep tries again.
    pub failed: Vec<StartedUpload>,
    /// Open uploads under the prefix that are not in the list (another program's, or a live
    /// writer's): left alone. Not counted when the list is empty (the store is not asked).
    pub others: usize,
    /// Leftover temporary files a directory sink removed.
    pub temp_files_removed: usize,
}
