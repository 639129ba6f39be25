//! Client-side pacing below the per-token request budget.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Keeps the requests made with one token within `limit` per sliding minute, and holds
/// callers back while the server has asked to wait (`Retry-After`, or the `inin-ratelimit-*`
/// headers saying a budget is spent).
///
/// A sliding window of at most `limit` requests per 60 s keeps every fixed 60 s window the
/// server may count within `limit` too, so pacing alone never causes a 429.
///
/// Genesys counts some endpoints in buckets of their own (`inin-ratelimit-allowed` differs
/// between calls), so what a response says about its bucket is kept per endpoint family and
/// paces only that family: a small bucket for one endpoint never slows the others.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    limit: u32,
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    families: HashMap<String, Family>,
}

/// What the server said about one endpoint family's bucket.
#[derive(Debug, Default)]
struct Family {
    allowed: Option<u32>,
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

const WINDOW: Duration = Duration::from_secs(60);

/// The longest `inin-ratelimit-reset` taken from a header; a larger one is read as this.
const MAX_RESET: Duration = Duration::from_secs(300);

fn prune(sent: &mut VecDeque<Instant>, now: Instant) {
    while sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        sent.pop_front();
    }
}

/// When a window holding `sent` at `limit` frees a slot (`None`: it has room now).
fn full_until(sent: &VecDeque<Instant>, limit: u32) -> Option<Instant> {
    ((sent.len() as u32) >= limit).then(|| sent[sent.len() - limit as usize] + WINDOW)
}

fn block(slot: &mut Option<Instant>, until: Instant) {
    *slot = Some(slot.map_or(until, |b| b.max(until)));
}

impl Pacer {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            state: Mutex::new(PacerState {
                limit: limit.max(1),
                sent: VecDeque::new(),
                blocked_until: None,
                families: HashMap::new(),
            }),
        }
    }

    /// Waits until one more request of `family` fits both the token's budget and what the
    /// server said about the family's bucket, records it, and returns how long it waited.
    pub(crate) async fn acquire(&self, family: &str) -> Duration {
        let started = Instant::now();
        loop {
            let wait_until = {
                let mut guard = self.state.lock().await;
                let s = &mut *guard;
                let now = Instant::now();
                prune(&mut s.sent, now);
                let fam = s.families.entry(family.to_string()).or_default();
                prune(&mut fam.sent, now);
                let waits = [
                    s.blocked_until.filter(|b| *b > now),
                    full_until(&s.sent, s.limit),
                    fam.blocked_until.filter(|b| *b > now),
                    fam.allowed.and_then(|a| full_until(&fam.sent, a.max(1))),
                ];
                match waits.into_iter().flatten().max() {
                    None => {
                        s.sent.push_back(now);
                        fam.sent.push_back(now);
                        return started.elapsed();
                    }
                    Some(until) => until,
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// Takes in what a response of `family` said about its bucket: `allowed` becomes the
    /// family's own limit (the token-wide limit stays the configured one), and when `count`
    /// has reached it the family waits until `reset` (clamped to a few minutes).
    pub(crate) async fn observe(
        &self,
        family: &str,
        allowed: Option<u32>,
        count: Option<u32>,
        reset: Option<Duration>,
    ) {
        let mut s = self.state.lock().await;
        let fam = s.families.entry(family.to_string()).or_default();
        if let Some(a) = allowed.filter(|a| *a > 0) {
            fam.allowed = Some(a);
        }
        if let (Some(a), Some(c), Some(r)) = (allowed, count, reset)
            && a > 0
            && c >= a
        {
            block(&mut fam.blocked_until, Instant::now() + r.min(MAX_RESET));
        }
    }

    /// Blocks every caller for `d` (a 429's `Retry-After`, at most a day).
    pub(crate) async fn block_for(&self, d: Duration) {
        let mut s = self.state.lock().await;
        let until = Instant::now() + d.min(crate::retry::RETRY_AFTER_CEILING);
        block(&mut s.blocked_until, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_per_sliding_minute() {
        let p = Pacer::new(5);
        let t0 = Instant::now();
        let mut times = Vec::new();
        for i in 0..12 {
            p.acquire(if i % 2 == 0 { "a" } else { "b" }).await;
            times.push(Instant::now().duration_since(t0));
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times
                .iter()
                .filter(|u| **u <= *t && *t - **u < WINDOW)
                .count();
            assert!(
                in_window <= 5,
                "request {i} at {t:?} has {in_window} in its window"
            );
        }
        assert_eq!(times[5], WINDOW, "the sixth request waits a full minute");
        assert_eq!(times[10], WINDOW * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_blocks_everyone() {
        let p = Pacer::new(100);
        p.block_for(Duration::from_secs(7)).await;
        let waited = p.acquire("a").await;
        assert_eq!(waited, Duration::from_secs(7));
        p.observe("a", Some(300), Some(300), Some(Duration::from_secs(3)))
            .await;
        assert_eq!(p.acquire("a").await, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_bucket_paces_only_its_own_family() {
        let p = Pacer::new(300);
        p.observe("poll", Some(2), Some(1), Some(Duration::from_secs(30)))
            .await;
        assert_eq!(p.acquire("poll").await, Duration::ZERO);
        assert_eq!(p.acquire("poll").await, Duration::ZERO);
        // The family's third request in the minute waits for its window...
        let before = Instant::now();
        let other = async {
            // ...while another family is not slowed at all.
            for _ in 0..50 {
                assert_eq!(p.acquire("query").await, Duration::ZERO);
            }
            Instant::now()
        };
        let (waited, other_done) = tokio::join!(p.acquire("poll"), other);
        assert_eq!(waited, WINDOW);
        assert_eq!(other_done, before, "the other family never waited");
        // A spent bucket blocks only its family, for at most a few minutes.
        p.observe(
            "poll",
            Some(2),
            Some(2),
            Some(Duration::from_secs(u32::MAX as u64)),
        )
        .await;
        assert_eq!(p.acquire("query").await, Duration::ZERO);
        assert!(p.acquire("poll").await <= MAX_RESET);
    }

    #[tokio::test(start_paused = true)]
    async fn huge_waits_do_not_overflow() {
        let p = Pacer::new(10);
        p.block_for(Duration::MAX).await;
        p.observe("a", Some(1), Some(5), Some(Duration::MAX)).await;
        assert!(p.state.lock().await.blocked_until.is_some());
    }
}
