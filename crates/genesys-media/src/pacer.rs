//! Client-side pacing below the per-token request budget.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Keeps the requests made with one token within `limit` per sliding minute, and holds every
/// caller back while the server has asked to wait (`Retry-After`, or the `inin-ratelimit-*`
/// headers saying the budget is spent).
///
/// A sliding window of at most `limit` requests per 60 s keeps every fixed 60 s window the
/// server may count within `limit` too, so pacing alone never causes a 429.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    limit: u32,
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Pacer {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            state: Mutex::new(PacerState {
                limit: limit.max(1),
                sent: VecDeque::new(),
                blocked_until: None,
            }),
        }
    }

    /// Waits until one more request fits, records it, and returns how long it waited.
    pub(crate) async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            let wait_until = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                while s
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    s.sent.pop_front();
                }
                let blocked = s.blocked_until.filter(|b| *b > now);
                if blocked.is_none() && (s.sent.len() as u32) < s.limit {
                    s.sent.push_back(now);
                    return started.elapsed();
                }
                let full = ((s.sent.len() as u32) >= s.limit).then(|| s.sent[0] + WINDOW);
                match (blocked, full) {
                    (Some(a), Some(b)) => a.max(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => now,
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// Lowers the limit to what the server says is allowed (never raises it above the
    /// configured one), and blocks everyone until `reset` when the server's count is at the
    /// limit.
    pub(crate) async fn observe(
        &self,
        allowed: Option<u32>,
        count: Option<u32>,
        reset: Option<Duration>,
    ) {
        let mut s = self.state.lock().await;
        if let Some(a) = allowed.filter(|a| *a > 0) {
            s.limit = s.limit.min(a);
        }
        if let (Some(a), Some(c), Some(r)) = (allowed, count, reset)
            && a > 0
            && c >= a
        {
            let until = Instant::now() + r;
            s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
        }
    }

    /// Blocks every caller for `d` (a 429's `Retry-After`).
    pub(crate) async fn block_for(&self, d: Duration) {
        let mut s = self.state.lock().await;
        let until = Instant::now() + d;
        s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
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
        for _ in 0..12 {
            p.acquire().await;
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
        let waited = p.acquire().await;
        assert_eq!(waited, Duration::from_secs(7));
        p.observe(Some(300), Some(300), Some(Duration::from_secs(3)))
            .await;
        assert_eq!(p.acquire().await, Duration::from_secs(3));
        p.observe(Some(50), Some(1), Some(Duration::from_secs(3)))
            .await;
        assert_eq!(
            p.state.lock().await.limit,
            50,
            "server's allowed lowers the limit"
        );
    }
}
