//! The learnt time-to-ready of asynchronous jobs (see `ready.rs` for how the client uses it):
//! the wait before a new job's first status poll.

use std::sync::Mutex;
use std::time::Duration;

/// The learnt time-to-ready of one kind of job, shared by the jobs in flight.
#[derive(Debug, Default)]
pub(crate) struct ReadyEstimate {
    learnt: Mutex<Learnt>,
}

#[derive(Debug, Default)]
struct Learnt {
    /// The next first wait, once a job was found ready.
    wait: Option<Duration>,
    /// The longest first wait that found a job not ready (decaying): the learnt wait does not
    /// shrink back to it, so steady jobs do not cost a miss every few jobs.
    missed: Duration,
}

/// After a job already ready at its first poll, the next first wait is this fraction of it.
const SHRINK: f64 = 0.9;
/// The learnt wait stays at least this multiple of the longest first wait that missed.
const ABOVE_MISS: f64 = 1.25;
/// After each job ready at its first poll, that longest miss counts this fraction of itself,
/// so the wait can follow a service that got faster (a miss per about 110 jobs when steady).
const MISS_DECAY: f64 = 0.998;

impl ReadyEstimate {
    /// The wait before a new job's first poll: `start` until a job was found ready, then
    /// what was learnt, within `[floor, cap]`.
    pub(crate) fn first_wait(&self, start: Duration, floor: Duration, cap: Duration) -> Duration {
        let g = self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        g.wait.map_or(start, |l| l.clamp(floor, cap.max(floor)))
    }

    /// A job whose first poll came `first_wait` after its submission was found ready
    /// `elapsed` after it, at its first poll or later.
    pub(crate) fn observe(&self, elapsed: Duration, first_wait: Duration, at_first_poll: bool) {
        let mut g = self.learnt.lock().unwrap_or_else(|p| p.into_inner());
        if at_first_poll {
            // Ready at most this long after: try a little earlier next time, but not as
            // early as a wait that missed.
            g.missed = g.missed.mul_f64(MISS_DECAY);
            g.wait = Some(elapsed.mul_f64(SHRINK).max(g.missed.mul_f64(ABOVE_MISS)));
        } else {
            g.missed = g.missed.max(first_wait);
            g.wait = Some(elapsed);
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
        let start = Duration::from_secs(2);
        assert_eq!(e.first_wait(start, floor, cap), start, "nothing learnt yet");
        // Not ready at the first poll (after 1 s): found ready 7 s after submission.
        e.observe(Duration::from_secs(7), floor, false);
        assert_eq!(e.first_wait(start, floor, cap), Duration::from_secs(7));
        // Ready at the first poll: the next one comes a little earlier.
        e.observe(Duration::from_secs(7), Duration::from_secs(7), true);
        assert_eq!(e.first_wait(start, floor, cap), Duration::from_millis(6300));
        // Not back down to a wait that missed (1 s, decayed after each of the two jobs ready
        // at their first poll, times 1.25).
        e.observe(Duration::from_millis(100), floor, true);
        assert_eq!(
            e.first_wait(start, floor, cap),
            floor
                .mul_f64(MISS_DECAY)
                .mul_f64(MISS_DECAY)
                .mul_f64(ABOVE_MISS)
        );
        // Never above the cap, nor below the floor.
        e.observe(Duration::from_secs(3600), floor, false);
        assert_eq!(e.first_wait(start, floor, cap), cap);
        let e = ReadyEstimate::default();
        e.observe(Duration::from_millis(100), floor, true);
        assert_eq!(e.first_wait(start, floor, cap), floor);
    }
}
