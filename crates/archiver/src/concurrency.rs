//! How many recordings are processed at once: a fixed count, or one found while running
//! (grown while throughput grows with it, cut back when the store or the source pushes back).
//!
//! On a network with a long round trip each recording spends most of its time waiting, so
//! throughput grows with concurrency until a bound (bandwidth, the store, the media host) is
//! reached; past it, more workers only queue. The controller measures throughput over windows
//! of completions while every worker slot was in use, grows the limit (by half while each step
//! pays, then by an eighth), steps back when a step bought too little, and cuts it by a quarter
//! when a window saw pushback (a throttle, a 5xx or a timeout from either side).

use std::time::{Duration, Instant};

/// How many recordings a run processes at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many.
    Fixed(usize),
    /// Starting at `start`, adapting between `start / 2` (at least 1) and `max`.
    Adaptive {
        /// The first limit.
        start: usize,
        /// The highest limit.
        max: usize,
    },
}

impl Workers {
    /// The default: adaptive from 8 up to 64.
    pub const DEFAULT: Workers = Workers::Adaptive { start: 8, max: 64 };

    /// Adaptive from the default start up to `max` (at least 1; the start no higher).
    pub fn adaptive_up_to(max: usize) -> Workers {
        let max = max.max(1);
        match Workers::DEFAULT {
            Workers::Adaptive { start, .. } => Workers::Adaptive {
                start: start.min(max),
                max,
            },
            fixed => fixed,
        }
    }

    /// The limit a run starts with.
    pub fn start(self) -> usize {
        match self {
            Workers::Fixed(n) => n.max(1),
            Workers::Adaptive { start, max } => start.clamp(1, max.max(1)),
        }
    }
}

/// A window is judged once it lasted this long and saw enough completions.
const WINDOW: Duration = Duration::from_millis(1000);
/// A step up pays when throughput grew by at least this part of the share the limit grew.
const PAYS: f64 = 0.5;
/// Share of a window the limit must have been in use for its throughput to say anything
/// about the limit (otherwise the source, not the workers, was the bound).
const SATURATED: f64 = 0.75;
/// Windows a cut back or a step back holds the limit before growing again.
const HOLD: u32 = 3;

/// The limit and the measurements it is decided from.
#[derive(Debug)]
pub(crate) struct Limit {
    limit: usize,
    min: usize,
    max: usize,
    adaptive: bool,
    /// Growing by half each window until a step does not pay.
    slow_start: bool,
    hold: u32,
    highest: usize,
    /// The most recordings in progress at once.
    busiest: usize,
    window: Window,
    /// The previous saturated window's limit and throughput (bytes per second).
    previous: Option<(usize, f64)>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    mark: Instant,
    busy: Duration,
    saturated_now: bool,
    completed: u64,
    bytes: u64,
    pushback_at_start: u64,
}

impl Window {
    fn new(now: Instant, pushback: u64, saturated_now: bool) -> Self {
        Self {
            started: now,
            mark: now,
            busy: Duration::ZERO,
            saturated_now,
            completed: 0,
            bytes: 0,
            pushback_at_start: pushback,
        }
    }
}

impl Limit {
    /// A limit for `workers`; an adaptive one starts where an earlier run ended (`learned`,
    /// 0 for none), within its bounds.
    pub(crate) fn new(workers: Workers, learned: usize, now: Instant) -> Self {
        let first = workers.start();
        let (min, max, adaptive) = match workers {
            Workers::Fixed(n) => (n.max(1), n.max(1), false),
            Workers::Adaptive { max, .. } => ((first / 2).max(1), max.max(first), true),
        };
        let start = if adaptive && learned > 0 {
            learned.clamp(min, max)
        } else {
            first
        };
        Self {
            limit: start,
            min,
            max,
            adaptive,
            slow_start: true,
            hold: 0,
            highest: start,
            busiest: 0,
            window: Window::new(now, 0, false),
            previous: None,
        }
    }

    /// Recordings that may be in progress now.
    pub(crate) fn get(&self) -> usize {
        self.limit
    }

    /// The highest limit the run used.
    #[cfg(test)]
    pub(crate) fn highest(&self) -> usize {
        self.highest
    }

    /// The most recordings that were in progress at once (at most the highest limit; fewer
    /// when the source gave fewer).
    pub(crate) fn busiest(&self) -> usize {
        self.busiest
    }

    /// Notes how many recordings are in progress from `now` on (called whenever it changes).
    pub(crate) fn in_flight(&mut self, now: Instant, n: usize) {
        self.busiest = self.busiest.max(n);
        let w = &mut self.window;
        if w.saturated_now {
            w.busy += now.saturating_duration_since(w.mark);
        }
        w.mark = now;
        w.saturated_now = n >= self.limit;
    }

    /// One recording finished with `bytes` archived; `pushback` is the run's count of
    /// throttles, 5xx answers and timeouts so far. Returns the new limit when it changed.
    pub(crate) fn completed(
        &mut self,
        now: Instant,
        bytes: u64,
        pushback: u64,
        in_flight: usize,
    ) -> Option<usize> {
        self.window.completed += 1;
        self.window.bytes += bytes;
        self.in_flight(now, in_flight);
        if !self.adaptive {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.window.started);
        let pushed = pushback > self.window.pushback_at_start;
        let enough = self.window.completed >= (self.limit as u64 / 2).max(2);
        if !pushed && (elapsed < WINDOW || !enough) {
            return None;
        }
        let before = self.limit;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let saturated = self.window.busy.as_secs_f64() / secs;
        // Objects with no bytes (adopted, failed) still took a worker: count them as one byte
        // so a window of them is not read as no throughput.
        let rate = (self.window.bytes + self.window.completed) as f64 / secs;
        tracing::trace!(
            limit = self.limit,
            saturated,
            rate,
            completed = self.window.completed,
            pushed,
            hold = self.hold,
            "worker window"
        );
        if pushed {
            // Multiplicative decrease: the store or the source said "too much".
            self.limit = (self.limit * 3 / 4).max(self.min);
            self.slow_start = false;
            self.hold = HOLD;
            self.previous = None;
        } else if self.hold > 0 {
            self.hold -= 1;
        } else if saturated >= SATURATED {
            match self.previous {
                // A step up pays when throughput grew by at least half the share the limit
                // grew by (all of it while the round trip is the bound, none past a bound).
                Some((limit, prev))
                    if limit < self.limit
                        && rate
                            < prev * (1.0 + PAYS * (self.limit - limit) as f64 / limit as f64) =>
                {
                    // The last step bought too little: the bound is below it (`previous`
                    // stays: the limit and throughput stepped back to).
                    self.limit = limit;
                    self.slow_start = false;
                    self.hold = HOLD;
                }
                _ => {
                    self.previous = Some((self.limit, rate));
                    let step = if self.slow_start {
                        self.limit / 2
                    } else {
                        self.limit / 8
                    };
                    self.limit = (self.limit + step.max(1)).min(self.max);
                }
            }
        }
        self.highest = self.highest.max(self.limit);
        self.window = Window::new(now, pushback, in_flight >= self.limit);
        (self.limit != before).then_some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store where each object takes `rtt` and at most `bound` are served at once (more
    /// queue): throughput is min(limit, bound) / rtt. Runs `secs` seconds of completions and
    /// returns the limits seen at each change.
    fn run(limit: &mut Limit, bound: usize, rtt: Duration, secs: u64, pushback_at: &[u64]) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut pushback = 0;
        while now < t0 + Duration::from_secs(secs) {
            let served = limit.get().min(bound).max(1);
            // `served` objects finish every `rtt` (more in flight only wait longer).
            now += rtt / served as u32;
            let second = now.duration_since(t0).as_secs();
            if pushback_at.contains(&second) {
                pushback += 1;
            }
            limit.completed(now, 256 * 1024, pushback, limit.get());
        }
    }

    #[test]
    fn a_fixed_count_never_moves() {
        let mut l = Limit::new(Workers::Fixed(8), 0, Instant::now());
        run(&mut l, 100, Duration::from_millis(40), 20, &[]);
        assert_eq!(l.get(), 8);
        assert_eq!(l.highest(), 8);
    }

    #[test]
    fn it_grows_to_the_bound_and_not_far_past_it() {
        let mut l = Limit::new(Workers::DEFAULT, 0, Instant::now());
        run(&mut l, 24, Duration::from_millis(40), 60, &[]);
        assert!(
            (20..=36).contains(&l.get()),
            "the limit settles near the bound of 24: {l:?}"
        );
        assert!(l.highest() <= 40, "{l:?}");
    }

    #[test]
    fn without_a_bound_it_reaches_the_ceiling() {
        let mut l = Limit::new(Workers::Adaptive { start: 8, max: 48 }, 0, Instant::now());
        run(&mut l, usize::MAX, Duration::from_millis(40), 60, &[]);
        assert_eq!(l.get(), 48, "{l:?}");
    }

    #[test]
    fn pushback_cuts_the_limit_and_it_does_not_grow_at_once() {
        let mut l = Limit::new(Workers::DEFAULT, 0, Instant::now());
        run(&mut l, usize::MAX, Duration::from_millis(40), 10, &[]);
        let grown = l.get();
        assert!(grown > 8, "{l:?}");
        let t = Instant::now() + Duration::from_secs(100);
        let cut = l.completed(t, 1, 1_000, l.get()).expect("a cut");
        assert_eq!(cut, grown * 3 / 4);
        // Held for a few windows even when throughput would allow more.
        let mut now = t;
        for _ in 0..HOLD {
            now += WINDOW;
            for _ in 0..l.get() {
                l.completed(now, 1, 1_000, l.get());
            }
        }
        assert_eq!(l.get(), cut);
        // Never below half the start.
        for i in 0..50 {
            l.completed(now, 1, 2_000 + i, l.get());
        }
        assert_eq!(l.get(), 4);
    }

    #[test]
    fn a_ceiling_below_the_default_start_lowers_the_start() {
        assert_eq!(
            Workers::adaptive_up_to(4),
            Workers::Adaptive { start: 4, max: 4 }
        );
        assert_eq!(
            Workers::adaptive_up_to(100),
            Workers::Adaptive { start: 8, max: 100 }
        );
        assert_eq!(
            Workers::adaptive_up_to(0),
            Workers::Adaptive { start: 1, max: 1 }
        );
    }

    #[test]
    fn a_learned_limit_is_where_the_next_run_starts() {
        let l = Limit::new(Workers::DEFAULT, 30, Instant::now());
        assert_eq!(l.get(), 30);
        let l = Limit::new(Workers::DEFAULT, 500, Instant::now());
        assert_eq!(l.get(), 64, "within the ceiling");
        let l = Limit::new(Workers::Fixed(8), 30, Instant::now());
        assert_eq!(l.get(), 8, "a fixed count learns nothing");
    }

    #[test]
    fn an_unsaturated_limit_does_not_grow() {
        // The source hands out fewer recordings than the limit allows: never all in use.
        let t0 = Instant::now();
        let mut l = Limit::new(Workers::DEFAULT, 0, t0);
        let mut now = t0;
        for _ in 0..2_000 {
            now += Duration::from_millis(10);
            l.completed(now, 1, 0, 2);
        }
        assert_eq!(l.get(), 8, "{l:?}");
    }
}
