//! [`Upload`]: a push-style writer over any [`ObjectSink`] with `complete` and `abort`.

use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;

use crate::{ObjectSink, PutOptions, PutResult, SinkError, SinkErrorKind, stream_body};

/// An upload in progress: bytes are pushed with [`Upload::write`] and streamed into
/// [`ObjectSink::put`] running in a task (at most two chunks are buffered), then
/// [`Upload::complete`] waits for the verified result, or [`Upload::abort`] fails the body so the
/// sink removes whatever it wrote. Dropping an upload without completing it aborts it.
#[derive(Debug)]
pub struct Upload {
    tx: Option<mpsc::Sender<Result<Bytes, std::io::Error>>>,
    task: Option<tokio::task::JoinHandle<Result<PutResult, SinkError>>>,
    key: String,
    store: String,
}

impl Upload {
    /// Starts writing `key` into `sink` with `opts`.
    pub fn begin(sink: Arc<dyn ObjectSink>, key: &str, opts: PutOptions) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let store = sink.to_string();
        let k = key.to_string();
        let task = tokio::spawn(async move { sink.put(&k, stream_body(rx), opts).await });
        Self {
            tx: Some(tx),
            task: Some(task),
            key: key.to_string(),
            store,
        }
    }

    /// Sends a chunk; waits while the sink is behind (back-pressure). Fails when the upload
    /// has already failed (call [`Upload::complete`] to get the error).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        let closed = || {
            SinkError::new(
                SinkErrorKind::Source,
                "write",
                &self.key,
                &self.store,
                "the upload has already ended; complete() tells why",
            )
        };
        let tx = self.tx.as_mut().ok_or_else(closed)?;
        tx.send(Ok(chunk)).await.map_err(|_| closed())
    }

    /// Ends the body and waits for the sink's verified result.
    pub async fn complete(mut self) -> Result<PutResult, SinkError> {
        self.tx.take();
        self.join().await
    }

    /// Fails the body: the sink removes what it wrote. Returns once it has.
    pub async fn abort(mut self) -> Result<(), SinkError> {
        if let Some(mut tx) = self.tx.take() {
            let _ = tx.send(Err(std::io::Error::other("upload aborted"))).await;
        }
        match self.join().await {
            Ok(_) => Err(SinkError::new(
                SinkErrorKind::Invalid,
                "abort",
                &self.key,
                &self.store,
                "the upload had already completed",
            )),
            Err(_) => Ok(()),
        }
    }

    async fn join(&mut self) -> Result<PutResult, SinkError> {
        let task = self.task.take().expect("joined once");
        task.await.unwrap_or_else(|e| {
            Err(SinkError::new(
                SinkErrorKind::StoreTemporary,
                "put",
                &self.key,
                &self.store,
                format!("upload task failed: {e}"),
            ))
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut tx) = self.tx.take() {
            let _ = tx.try_send(Err(std::io::Error::other(
                "upload dropped without complete()",
            )));
        }
    }
}
