//! Per-token request budget with the `inin-ratelimit-*` headers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Outcome of counting one request against a token's budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) allowed: u32,
    pub(crate) count: u32,
    pub(crate) reset: Duration,
    pub(crate) exceeded: bool,
}

/// Fixed one-minute windows per token, starting at the token's first request.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimiter {
    pub(crate) fn hit(&mut self, token: &str, allowed: u32, now: Instant) -> Budget {
        let window = Duration::from_secs(60);
        let entry = self.windows.entry(token.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let reset = window.saturating_sub(now.duration_since(entry.0));
        Budget {
            allowed,
            count: entry.1,
            reset,
            exceeded: allowed > 0 && entry.1 > allowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_resets_after_a_minute() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        for i in 1..=3 {
            let b = rl.hit("t", 3, t0);
            assert_eq!(b.count, i);
            assert!(!b.exceeded);
        }
        assert!(rl.hit("t", 3, t0 + Duration::from_secs(10)).exceeded);
        assert!(!rl.hit("other", 3, t0).exceeded, "budgets are per token");
        let b = rl.hit("t", 3, t0 + Duration::from_secs(61));
        assert!(!b.exceeded);
        assert_eq!(b.count, 1);
    }
}
