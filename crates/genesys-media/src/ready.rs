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
//! The learnt wait may go below `poll_initial` (the first job's wait, before anything is
//! learnt), down to a quarter of it and never below [`MIN_FIRST_WAIT`]: jobs faster than the
//! configured first poll are then polled about when they are ready, and discovery's jobs in
//! flight are not each held for `poll_initial`. After a miss the backoff starts from the wait
//! that missed (doubled), not from `poll_initial`, so a learnt wait of 300 ms that just missed
//! is followed by a poll 600 ms later, not 2 s later.

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
    /// wait `estimate` learnt (`poll_initial` before it learnt anything), the next ones on the
    /// backoff schedule (the smaller of that wait and `poll_initial`, doubling up to
    /// `poll_max`) until `poll_timeout`, which fails with a timeout naming `what`.
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
        let mut backoff = cfg.poll_initial.min(first);
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
    /// down to a quarter of `poll_initial`, still one status poll per job.
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

    /// A learnt wait of 250 ms, then a job that takes 600 ms: it is polled again on a backoff
    /// that starts from the wait that missed (500 ms later), not from `poll_initial` (2 s
    /// later, before).
    #[tokio::test(start_paused = true)]
    async fn after_a_miss_the_backoff_starts_from_the_learnt_wait() {
        let c = client();
        for _ in 0..30 {
            job(&c, Duration::from_millis(200)).await;
        }
        let polls = job(&c, Duration::from_millis(600)).await;
        assert_eq!(
            polls,
            vec![Duration::from_millis(250), Duration::from_millis(750)]
        );
        // The next job is first polled when that one was found ready.
        let polls = job(&c, Duration::from_millis(600)).await;
        assert_eq!(polls, vec![Duration::from_millis(750)]);
    }
}
