//! The learnt time-to-ready of asynchronous jobs (see `ready.rs` for how the client uses it):
//! the wait before a new job's first status poll.

use std::sync::Mutex;
use std::time::Duration;

/// The learnt time-to-ready of one kind of job, shared by the jobs in flight.
#[derive(Debug, Default)]
pub(crate) struct ReadyEstimate {
    learnt: Mutex<Option<Duration>>,
}

/// After a job already ready at its first poll, the next first wait is this fraction of it.
const SHRINK: f64 = 0.9;

impl ReadyEstimate {
    /// The wait before a new job's first poll: `start` before anything was learnt, then what
    /// was learnt, within `[floor, cap]`.
    pub(crate) fn first_wait(&self, start: Duration, floor: Duration, cap: Duration) -> Duration {
        let learnt = *self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        learnt.map_or(start, |l| l.clamp(floor, cap.max(floor)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_time_to_ready_and_follows_it_down() {
        let e = ReadyEstimate::default();
        let (floor, cap) = (Duration::from_secs(1), Duration::from_secs(600));
        let start = Duration::from_secs(2);
        assert_eq!(e.first_wait(start, floor, cap), start, "nothing learnt yet");
        // Not ready at the first poll: found ready 7 s after submission.
        e.observe(Duration::from_secs(7), false);
        assert_eq!(e.first_wait(start, floor, cap), Duration::from_secs(7));
        // Ready at the first poll: the next one comes a little earlier.
        e.observe(Duration::from_secs(7), true);
        assert_eq!(e.first_wait(start, floor, cap), Duration::from_millis(6300));
        // Never below the floor nor above the cap.
        e.observe(Duration::from_millis(100), true);
        assert_eq!(e.first_wait(start, floor, cap), floor);
        e.observe(Duration::from_secs(3600), false);
        assert_eq!(e.first_wait(start, floor, cap), cap);
    }
}
