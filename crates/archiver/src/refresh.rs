//! Coalesced media-URL refreshes. A worker whose URL was refused (403) or has grown too old
//! does not refresh it on the spot (one batch job per recording) and does not wait: it gives
//! the recording back and takes the next one. The run collects such recordings and refreshes
//! them together, up to 100 in one batch job, when 100 are waiting, when the oldest has
//! waited [`ArchiverConfig::url_refresh_window`](crate::ArchiverConfig), or when nothing else
//! is left to do; the refreshed recordings go to the front of the queue, so their new URLs
//! are used at once. An expiry storm costs about one batch job per 100 expired URLs.

use std::collections::VecDeque;
use std::time::Duration;

use genesys_media::{
    DiscoveredRecording, ErrorClass, GenesysClient, MediaAvailability, SourceMode,
};
use tokio::time::Instant;

/// The most recordings one batch download job takes.
pub(crate) const MAX_BATCH: usize = 100;

/// A recording waiting for a fresh URL, with the refreshes and download attempts it already
/// had (both carry over, so the retry table's bounds hold across refreshes).
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub(crate) rec: DiscoveredRecording,
    pub(crate) refreshes: u32,
    pub(crate) attempts: u32,
}

/// What one refresh gave a recording.
pub(crate) type Refreshed = (Waiting, Result<MediaAvailability, (ErrorClass, String)>);

/// Recordings waiting for a fresh URL, and when to ask for them.
#[derive(Debug)]
pub(crate) struct RefreshQueue {
    waiting: VecDeque<Waiting>,
    oldest: Option<Instant>,
    window: Duration,
}

impl RefreshQueue {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            waiting: VecDeque::new(),
            oldest: None,
            window,
        }
    }

    pub(crate) fn push(&mut self, w: Waiting) {
        self.oldest.get_or_insert_with(Instant::now);
        self.waiting.push_back(w);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// When the oldest waiting recording's window ends.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.window)
    }

    /// Whether to refresh now: a full batch is waiting, the oldest waited its window, or the
    /// run has nothing else to do (`idle`).
    pub(crate) fn due(&self, idle: bool) -> bool {
        !self.waiting.is_empty()
            && (idle
                || self.waiting.len() >= MAX_BATCH
                || self.deadline().is_some_and(|d| Instant::now() >= d))
    }

    /// Takes up to one batch, oldest first.
    pub(crate) fn take(&mut self) -> Vec<Waiting> {
        let n = self.waiting.len().min(MAX_BATCH);
        let batch: Vec<Waiting> = self.waiting.drain(..n).collect();
        self.oldest = if self.waiting.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        batch
    }

    /// Everything still waiting (shutdown).
    pub(crate) fn drain(&mut self) -> Vec<Waiting> {
        self.oldest = None;
        self.waiting.drain(..).collect()
    }
}

/// Asks the source for fresh URLs of `batch` (at most [`MAX_BATCH`]): one batch download job
/// in batch mode, one request each in the other modes (they have no batch form).
pub(crate) async fn refresh(client: GenesysClient, batch: Vec<Waiting>) -> Vec<Refreshed> {
    let err = |e: genesys_media::Error| (e.class(), e.to_string());
    if matches!(client.config().source, SourceMode::Batch) {
        let recs: Vec<DiscoveredRecording> = batch.iter().map(|w| w.rec.clone()).collect();
        return match client.refresh_media_batch(&recs).await {
            Ok(media) => batch.into_iter().zip(media.into_iter().map(Ok)).collect(),
            Err(e) => {
                let (class, message) = err(e);
                batch
                    .into_iter()
                    .map(|w| (w, Err((class, message.clone()))))
                    .collect()
            }
        };
    }
    let mut out = Vec::with_capacity(batch.len());
    for w in batch {
        let r = client.refresh_media(&w.rec).await.map_err(err);
        out.push((w, r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str) -> Waiting {
        Waiting {
            rec: test_support::bare_recording("c", id),
            refreshes: 1,
            attempts: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_due_when_full_when_its_window_ends_or_when_idle() {
        let mut q = RefreshQueue::new(Duration::from_secs(30));
        assert!(!q.due(true), "nothing waiting");
        q.push(w("r0"));
        assert!(!q.due(false));
        assert!(q.due(true), "nothing else to do");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(q.due(false), "the window ended");
        for i in 1..150 {
            q.push(w(&format!("r{i}")));
        }
        let first = q.take();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].rec.recording_id, "r0", "oldest first");
        assert_eq!(q.len(), 50);
        assert!(!q.due(false), "the rest starts a new window");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(q.due(false));
        assert_eq!(q.drain().len(), 50);
        assert!(q.is_empty() && q.deadline().is_none());
    }
}
