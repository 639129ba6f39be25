//! How long to wait before the first status poll of an asynchronous job.
//!
//! A batch download job (or an analytics details job) is submitted, then polled until it is
//! complete; every poll of a job that is not ready yet is an API call spent on nothing. How
//! long a job takes is not documented and depends on the org and the load, so the client
//! learns it: the first poll of the next job comes when the last one was found ready, and
//! the wait shrinks a little after each job already ready at its first poll, so it follows
//! the service when it gets faster. A job not ready at its first poll is polled on the
//! backoff schedule, and its time becomes the next wait.
//!
//! The learnt wait may go below `poll_initial`, down to a quarter of it and never below
//! [`MIN_FIRST_WAIT`]: jobs faster than the configured first poll are then polled about when
//! they are ready, and discovery's jobs in flight are not each held for `poll_initial` (the
//! wait of the jobs submitted before one was found ready: finding out sooner would cost a
//! call on every client of a slower service). A first poll earlier than `poll_initial` that
//! misses is followed by
//! one at `poll_initial` after submission and then the usual schedule, so a job is never found
//! later than without the early poll, for one call more; and the learnt wait does not shrink
//! back to a wait that missed (see `ready_estimate.rs`), so jobs whose time holds steady
//! between a quarter of `poll_initial` and all of it do not miss every few jobs.

use std::future::Future;
use std::time::Duration;

use crate::client::GenesysClient;
use crate::error::{Error, Result};
use crate::ready_estimate::ReadyEstimate;

/// The shortest learnt wait before a job's first status poll.
pub(crate) const MIN_FIRST_WAIT: Duration = Duration::from_millis(100);

/// The shortest learnt first wait for a client whose first job waits `poll_initial`.
fn first_wait_floor(poll_initial: Duration) -> Duration {
    (poll_initial / 4).max(MIN_FIRST_WAIT).min(poll_initial)
}

impl GenesysClient {
    /// Polls a job submitted just now until `poll` returns a result: the first poll after the
    /// wait `estimate` learnt, then (after an early first poll, at `poll_initial` after
    /// submission) on the backoff schedule (`poll_initial` doubling up to `poll_max`) until
    /// `poll_timeout`, which fails with a timeout naming `what`.
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
        let first = estimate.first_wait(
            cfg.poll_initial,
            first_wait_floor(cfg.poll_initial),
            cfg.poll_timeout / 2,
        );
        let mut wait = first;
        let mut backoff = cfg.poll_initial;
        let mut polls = 0u32;
        loop {
            tokio::time::sleep(wait).await;
            polls += 1;
            if let Some(done) = poll().await? {
                tracing::debug!(job = what, first_wait = ?first, polls, elapsed = ?started.elapsed(), "job ready");
                estimate.observe(started.elapsed(), first, polls == 1);
                return Ok(done);
            }
            if started.elapsed() >= cfg.poll_timeout {
                return Err(Error::Timeout(what.to_string()));
            }
            wait = if polls == 1 && first < cfg.poll_initial {
                // An early first poll missed: the next comes when it would have without it.
                cfg.poll_initial.saturating_sub(started.elapsed())
            } else {
                backoff = (backoff * 2).min(cfg.poll_max);
                backoff
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::region::Environment;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    fn client() -> GenesysClient {
        let env = Environment::from_region("mypurecloud.com").unwrap();
        GenesysClient::new(ClientConfig::new(env, "id", "secret")).unwrap()
    }

    /// Runs one job ready `ready_after` its submission; returns the times of its polls.
    async fn job(c: &GenesysClient, ready_after: Duration) -> Vec<Duration> {
        let submitted = Instant::now();
        let polls = Arc::new(Mutex::new(Vec::new()));
        let seen = polls.clone();
        c.poll_job(&c.inner.batch_ready, "job", move || {
            let seen = seen.clone();
            async move {
                let at = submitted.elapsed();
                seen.lock().unwrap().push(at);
                Ok((at >= ready_after).then_some(()))
            }
        })
        .await
        .unwrap();
        polls.lock().unwrap().clone()
    }

    /// Jobs ready after 200 ms with the default first poll at 1 s: before, every job was first
    /// polled after 1 s (the learnt wait never went below `poll_initial`), and discovery's
    /// jobs came a second apart however fast the service was. The wait now follows the jobs
    /// down to a quarter of `poll_initial`, one status poll per job.
    #[tokio::test(start_paused = true)]
    async fn jobs_faster_than_the_first_poll_are_polled_sooner() {
        let c = client();
        let ready = Duration::from_millis(200);
        let first = job(&c, ready).await;
        assert_eq!(first, vec![Duration::from_secs(1)], "nothing learnt yet");
        let mut last = Vec::new();
        for _ in 0..30 {
            last = job(&c, ready).await;
            assert_eq!(last.len(), 1, "one status poll per job: {last:?}");
        }
        assert_eq!(last, vec![Duration::from_millis(250)], "a quarter of 1 s");
    }

    /// A learnt wait of 250 ms, then a job that takes 600 ms: it is polled again at 1 s, when
    /// it would have been polled without the early poll (before this change: at 2.25 s, on a
    /// backoff from `poll_initial`), and never later.
    #[tokio::test(start_paused = true)]
    async fn an_early_poll_that_misses_costs_one_call_and_no_time() {
        let c = client();
        for _ in 0..30 {
            job(&c, Duration::from_millis(200)).await;
        }
        let polls = job(&c, Duration::from_millis(600)).await;
        assert_eq!(
            polls,
            vec![Duration::from_millis(250), Duration::from_secs(1)]
        );
        // A service slower than `poll_initial`: the schedule as before (1 s, 3 s, 7 s).
        let c = client();
        let polls = job(&c, Duration::from_secs(5)).await;
        let s = Duration::from_secs;
        assert_eq!(polls, vec![s(1), s(3), s(7)]);
    }

    /// Status polls of `jobs` jobs each ready after `ready`, one after another.
    async fn polls_for(ready: Duration, jobs: usize) -> usize {
        let c = client();
        let mut n = 0;
        for _ in 0..jobs {
            n += job(&c, ready).await.len();
        }
        n
    }

    /// Jobs whose time holds steady below `poll_initial` (900 ms) or above it (5 s): after the
    /// first misses, the learnt wait stays above the waits that missed. Before, a wait that
    /// shrank below the jobs' time missed, was learnt again from the (late) poll that found
    /// the job, and shrank again: a miss every few jobs.
    #[tokio::test(start_paused = true)]
    async fn steady_jobs_stop_missing() {
        // 900 ms: one miss while the wait shrinks to the jobs' time.
        assert_eq!(polls_for(Duration::from_millis(900), 60).await, 61);
        // 5 s: the first job's schedule (3 polls), then a miss or two.
        let n = polls_for(Duration::from_secs(5), 60).await;
        assert!(n <= 60 + 2 + 2, "{n} status polls for 60 jobs of 5 s");
    }
}
