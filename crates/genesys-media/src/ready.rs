//! How long to wait before the first status poll of an asynchronous job.
//!
//! A batch download job (or an analytics details job) is submitted, then polled until it is
//! complete; every poll of a job that is not ready yet is an API call spent on nothing. How
//! long a job takes is not documented and depends on the org and the load, so the client
//! learns it: the first poll of the next job comes when the last one was found ready, and
//! the wait shrinks a little after each job already ready at its first poll, so it follows
//! the service when it gets faster. A job not ready at its first poll is polled on the
//! backoff schedule, and its time becomes the next wait.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::client::GenesysClient;
use crate::error::{Error, Result};

/// The learnt time-to-ready of one kind of job, shared by the jobs in flight.
#[derive(Debug, Default)]
pub(crate) struct ReadyEstimate {
    learnt: Mutex<Option<Duration>>,
}

/// After a job already ready at its first poll, the next first wait is this fraction of it.
const SHRINK: f64 = 0.9;

impl ReadyEstimate {
    /// The wait before a new job's first poll: what was learnt, within `[floor, cap]`;
    /// `floor` before anything was learnt.
    pub(crate) fn first_wait(&self, floor: Duration, cap: Duration) -> Duration {
        let learnt = *self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        learnt.map_or(floor, |l| l.clamp(floor, cap.max(floor)))
    }

    /// A job was found ready `elapsed` after its submission, at its first poll or later.
    pub(crate) fn observe(&self, elapsed: Duration, at_first_poll: bool) {
        let mut g = self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(if at_first_poll {
            // Ready at most this long after: try a little earlier next time.
            elapsed.mul_f64(SHRINK)
        } else {
            elapsed
        });
    }
}

impl GenesysClient {
    /// Polls a job submitted just now until `poll` returns a result: the first poll after the
    /// wait `estimate` learnt, the next ones on the backoff schedule (`poll_initial` doubling
    /// up to `poll_max`) until `poll_timeout`, which fails with a timeout naming `what`.
    pub(crate) async fn poll_job<T, F, Fut>(
        &self,
        estimate: &ReadyEstimate,
        what: &str,
        mut poll: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let cfg = self.config();
        let started = tokio::time::Instant::now();
        let first = estimate.first_wait(cfg.poll_initial, cfg.poll_timeout / 2);
        let mut wait = first;
        let mut backoff = cfg.poll_initial;
        let mut polls = 0u32;
        loop {
            tokio::time::sleep(wait).await;
            polls += 1;
            if let Some(done) = poll().await? {
                tracing::debug!(job = what, first_wait = ?first, polls, elapsed = ?started.elapsed(), "job ready");
                estimate.observe(started.elapsed(), polls == 1);
                return Ok(done);
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(what.to_string()));
            }
            backoff = (backoff * 2).min(cfg.poll_max);
            wait = backoff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_time_to_ready_and_follows_it_down() {
        let e = ReadyEstimate::default();
        let (floor, cap) = (Duration::from_secs(1), Duration::from_secs(600));
        assert_eq!(e.first_wait(floor, cap), floor, "nothing learnt yet");
        // Not ready at the first poll: found ready 7 s after submission.
        e.observe(Duration::from_secs(7), false);
        assert_eq!(e.first_wait(floor, cap), Duration::from_secs(7));
        // Ready at the first poll: the next one comes a little earlier.
        e.observe(Duration::from_secs(7), true);
        assert_eq!(e.first_wait(floor, cap), Duration::from_millis(6300));
        // Never below the floor nor above the cap.
        e.observe(Duration::from_millis(100), true);
        assert_eq!(e.first_wait(floor, cap), floor);
        e.observe(Duration::from_secs(3600), false);
        assert_eq!(e.first_wait(floor, cap), cap);
    }
}
