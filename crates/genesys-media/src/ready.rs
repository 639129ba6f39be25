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

use crate::client::GenesysClient;
use crate::error::{Error, Result};
use crate::ready_estimate::ReadyEstimate;

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
