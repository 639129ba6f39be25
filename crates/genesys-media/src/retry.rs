//! Retry timing: jittered exponential backoff with a bounded total time, and `Retry-After`.

use std::time::Duration;

/// How long and how often temporary failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts for one request, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling; doubles per attempt.
    pub base_delay: Duration,
    /// Largest single backoff.
    pub max_delay: Duration,
    /// Total time after which no further attempt starts after a backoff.
    pub max_elapsed: Duration,
    /// Longest `Retry-After` the client waits. A longer one is not cut short (retrying
    /// before the server's time only earns another 429): the call fails instead, naming the
    /// server's wait. 429 waits may take the total past `max_elapsed` by up to this much.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The "full jitter" backoff before retry number `attempt` (1 = first retry): a uniformly
    /// random duration in `[ceiling/2, ceiling]`, `ceiling = min(max_delay, base * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = ceiling / 2;
        let jitter = (half.as_millis() as u64).max(1);
        half + Duration::from_millis(fastrand::u64(0..=jitter))
    }

    /// The wait a server's `Retry-After` asks for, as given (1 s when the header is absent).
    /// Whether to wait it is [`RetryPolicy::allows_retry_after`]'s decision.
    pub fn retry_after(&self, header: Option<Duration>) -> Duration {
        header.unwrap_or(Duration::from_secs(1))
    }

    /// Whether another attempt may start: `attempts_made` so far, `elapsed` since the first,
    /// and the `wait` before the next.
    pub fn allows(&self, attempts_made: u32, elapsed: Duration, wait: Duration) -> bool {
        attempts_made < self.max_attempts && elapsed.saturating_add(wait) <= self.max_elapsed
    }

    /// Whether to wait a 429's `Retry-After` of `wait` and try again: the wait is at most
    /// [`RetryPolicy::max_retry_after`] and ends within `max_elapsed + max_retry_after` of the
    /// first attempt.
    pub fn allows_retry_after(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        wait: Duration,
    ) -> bool {
        attempts_made < self.max_attempts
            && wait <= self.max_retry_after
            && elapsed.saturating_add(wait) <= self.max_elapsed.saturating_add(self.max_retry_after)
    }
}

/// Why another attempt would wait, for [`RetryPolicy::next_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A 429: its `Retry-After` (1 s when absent), waited as given.
    RetryAfter(Option<Duration>),
    /// A temporary failure (5xx, transport, broken body): jittered exponential backoff.
    Backoff,
    /// Try again at once (a refreshed URL, a verification retry).
    Immediately,
}

impl RetryPolicy {
    /// The one retry decision: how long to wait before the next attempt, or `None` when the
    /// budget is spent (`attempts_made` so far, `elapsed` counted by the caller).
    pub fn next_wait(&self, attempts_made: u32, elapsed: Duration, why: Wait) -> Option<Duration> {
        match why {
            Wait::RetryAfter(header) => {
                let wait = self.retry_after(header);
                self.allows_retry_after(attempts_made, elapsed, wait)
                    .then_some(wait)
            }
            Wait::Backoff => {
                let wait = self.backoff(attempts_made);
                self.allows(attempts_made, elapsed, wait).then_some(wait)
            }
            Wait::Immediately => self
                .allows(attempts_made, elapsed, Duration::ZERO)
                .then_some(Duration::ZERO),
        }
    }
}

/// The longest `Retry-After` taken from a header (a day); larger values are read as this, so
/// no deadline computed from one can overflow.
pub const RETRY_AFTER_CEILING: Duration = Duration::from_secs(86_400);

/// Parses `Retry-After` given in seconds (the form Genesys Cloud and S3 use).
pub fn parse_retry_after(v: Option<&http::HeaderValue>) -> Option<Duration> {
    v?.to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(RETRY_AFTER_CEILING))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..30 {
            let ceiling = (p.base_delay * 2u32.pow((attempt - 1).min(20))).min(p.max_delay);
            let d = p.backoff(attempt);
            assert!(
                d >= ceiling / 2 && d <= ceiling + Duration::from_millis(1),
                "{attempt}: {d:?}"
            );
        }
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(draws.len() > 1, "jitter varies the delay");
    }

    #[test]
    fn next_wait_is_the_one_decision() {
        let p = RetryPolicy::default();
        let t = Duration::from_millis(10);
        assert_eq!(
            p.next_wait(1, t, Wait::RetryAfter(Some(Duration::from_secs(300)))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            p.next_wait(1, t, Wait::RetryAfter(Some(Duration::from_secs(3600)))),
            None
        );
        assert_eq!(
            p.next_wait(1, t, Wait::RetryAfter(None)),
            Some(Duration::from_secs(1))
        );
        assert!(
            p.next_wait(2, t, Wait::Backoff)
                .is_some_and(|w| w <= p.base_delay * 2)
        );
        assert_eq!(p.next_wait(1, t, Wait::Immediately), Some(Duration::ZERO));
        assert_eq!(p.next_wait(p.max_attempts, t, Wait::Immediately), None);
        assert_eq!(p.next_wait(1, p.max_elapsed * 2, Wait::Backoff), None);
    }

    #[test]
    fn retry_after_is_waited_as_given_within_the_budget() {
        let p = RetryPolicy::default();
        // Above the Go SDK's 180 s: waited as given, not cut short.
        assert_eq!(
            p.retry_after(Some(Duration::from_secs(300))),
            Duration::from_secs(300)
        );
        assert!(p.allows_retry_after(1, Duration::from_millis(10), Duration::from_secs(300)));
        // Beyond what the run may wait: not retried early, given up (and reported).
        assert!(!p.allows_retry_after(1, Duration::ZERO, Duration::from_secs(3600)));
        assert!(!p.allows_retry_after(1, Duration::from_secs(800), Duration::from_secs(300)));
        assert_eq!(p.retry_after(None), Duration::from_secs(1));
        assert!(p.allows(1, Duration::ZERO, Duration::from_secs(1)));
        assert!(!p.allows(8, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(1, Duration::from_secs(299), Duration::from_secs(2)));
        assert!(
            !p.allows(1, Duration::from_secs(1), Duration::MAX),
            "no overflow"
        );
        assert!(!p.allows_retry_after(1, Duration::from_secs(1), Duration::MAX));
        assert_eq!(
            parse_retry_after(Some(&http::HeaderValue::from_static(" 7"))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(Some(&http::HeaderValue::from_static(
                "18446744073709551615"
            ))),
            Some(RETRY_AFTER_CEILING)
        );
        assert_eq!(
            parse_retry_after(Some(&http::HeaderValue::from_static("soon"))),
            None
        );
    }
}
