//! [`AdaptiveThrottle`]: client-side throttling from the Google SRE book ("Handling Overload");
//! the type's docs say which K and why.

use core::time::Duration;

use super::{Admission, Admit, Ask, CurrentLimit, Feedback, Grant, LocalRejection, Ticket, Wake};
use crate::budget::{ONE, to_ppm};
use crate::error::PolicyError;
use crate::splitmix::SplitMix64;
use crate::time::{Instant, duration_to_nanos};

const BUCKETS: usize = 10;

/// Builds an [`AdaptiveThrottle`]. Defaults: K = 2 over a 2-minute window (the SRE book), no
/// local rejection until 10 requests were counted in the window, seed 0.
#[derive(Clone, Debug)]
pub struct AdaptiveThrottleBuilder {
    k: f64,
    window: Duration,
    min_requests: u32,
    seed: u64,
}

impl AdaptiveThrottleBuilder {
    /// The multiplier `K` on accepts (finite, in `[1, 1000]`): the backend may see up to `K`
    /// times what it accepts before the client rejects locally.
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// The rolling window requests and accepts are counted over (at least 10 ms), in ten
    /// buckets.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Nothing is rejected while fewer requests than this were counted in the window, so one
    /// early 503 cannot turn away half of a quiet client's next calls.
    pub fn min_requests(mut self, n: u32) -> Self {
        self.min_requests = n;
        self
    }

    /// Seeds the draws that pick which attempts are rejected.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<AdaptiveThrottle, PolicyError> {
        if !(self.k >= 1.0 && self.k <= 1000.0) {
            return Err(PolicyError::new("k", "must be in [1, 1000]"));
        }
        let window = duration_to_nanos(self.window);
        if window < 10_000_000 {
            return Err(PolicyError::new("window", "must be at least 10 ms"));
        }
        Ok(AdaptiveThrottle {
            k: to_ppm(self.k),
            min_requests: u64::from(self.min_requests),
            bucket_nanos: window / BUCKETS as u64,
            latest_tick: 0,
            ticks: [u64::MAX; BUCKETS],
            requests: [0; BUCKETS],
            accepts: [0; BUCKETS],
            rng: SplitMix64(self.seed),
            latest: Instant::ZERO,
        })
    }
}

/// Google SRE adaptive throttling ("Handling Overload").
///
/// Over a rolling window the client counts `requests` (attempts it wanted to make) and
/// `accepts` (attempts the backend took, i.e. did not push back on). Each new attempt is
/// rejected locally with probability `max(0, (requests − K·accepts) / (requests + 1))`.
///
/// **K = 2**, the SRE book's value. Envoy's admission control (≈ 1.05) and failsafe-go (≈ 1.11)
/// start rejecting once 5–10 % of answers are back pressure; for an HTTP client that is too
/// early: a per-tenant quota that answers a few 429s, or one slow dependency, would already
/// turn away calls the server would have served, on top of the retry budget, the breaker and
/// the pacer that handle those cases more precisely. With K = 2 nothing is rejected until more
/// than half of the attempts are pushed back, and then the backend still sees about twice what
/// it accepts — enough headroom to notice at once that it recovered, while the work it wastes
/// on rejections stays bounded.
///
/// **Local rejections count as requests**, as in the book. That makes the fixed point
/// independent of the offered load: with the backend accepting `A` per second, the client
/// sends `K·A` per second however much it is asked to send (without counting them, it would
/// send `√(offered · K·A)`, so a caller that tries harder gets through more). Attempts are
/// counted when they end, not when they start, so attempts still in flight never look like
/// failures; an abandoned attempt counts for nothing.
///
/// ```
/// use resil_core::{AdaptiveThrottle, Admission, Admit, Ask, AttemptKind, Feedback, Instant};
///
/// let mut throttle = AdaptiveThrottle::builder().build()?;
/// let now = Instant::ZERO;
/// for _ in 0..100 {
///     if let Admit::Now(grant) = throttle.acquire(now, Ask::new(AttemptKind::First)) {
///         let _ = throttle.record(now, grant, Feedback::BackPressure);
///     }
/// }
/// assert!(throttle.reject_probability(now) > 0.9, "nothing was accepted");
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveThrottle {
    /// K in parts per million.
    k: u64,
    min_requests: u64,
    bucket_nanos: u64,
    /// The latest bucket tick seen: a caller whose clock reads behind counts in it.
    latest_tick: u64,
    ticks: [u64; BUCKETS],
    requests: [u32; BUCKETS],
    accepts: [u32; BUCKETS],
    rng: SplitMix64,
    latest: Instant,
}

impl AdaptiveThrottle {
    /// A builder with the defaults on [`AdaptiveThrottleBuilder`].
    pub fn builder() -> AdaptiveThrottleBuilder {
        AdaptiveThrottleBuilder {
            k: 2.0,
            window: Duration::from_secs(120),
            min_requests: 10,
            seed: 0,
        }
    }

    /// Requests and accepts counted over the window.
    pub fn counts(&mut self, now: Instant) -> (u64, u64) {
        self.slot(now);
        self.totals()
    }

    /// The probability that an attempt asking now is rejected locally, in `[0, 1)`.
    pub fn reject_probability(&mut self, now: Instant) -> f64 {
        self.slot(now);
        self.probability_ppm() as f64 / ONE as f64
    }

    /// `max(0, (requests − K·accepts) / (requests + 1))` in parts per million, or 0 below
    /// the minimum number of requests.
    fn probability_ppm(&self) -> u64 {
        let (requests, accepts) = self.totals();
        if requests < self.min_requests {
            return 0;
        }
        let excess = (u128::from(requests) * u128::from(ONE))
            .saturating_sub(u128::from(accepts) * u128::from(self.k));
        if excess == 0 {
            // A healthy backend: no division on the happy path.
            return 0;
        }
        // Below one million: the denominator is requests + 1.
        (excess / (u128::from(requests) + 1)) as u64
    }

    fn totals(&self) -> (u64, u64) {
        let sum = |xs: &[u32; BUCKETS]| xs.iter().map(|&x| u64::from(x)).sum::<u64>();
        (sum(&self.requests), sum(&self.accepts))
    }

    /// The bucket for `now`, emptying buckets that fell out of the window.
    fn slot(&mut self, now: Instant) -> usize {
        self.latest = self.latest.max(now);
        let tick = (self.latest.as_nanos() / self.bucket_nanos).max(self.latest_tick);
        let slot = (tick % BUCKETS as u64) as usize;
        if tick == self.latest_tick && self.ticks[slot] == tick {
            return slot;
        }
        self.latest_tick = tick;
        for i in 0..BUCKETS {
            let t = self.ticks[i];
            if t != u64::MAX && tick - t >= BUCKETS as u64 {
                self.ticks[i] = u64::MAX;
                self.requests[i] = 0;
                self.accepts[i] = 0;
            }
        }
        if self.ticks[slot] != tick {
            self.ticks[slot] = tick;
            self.requests[slot] = 0;
            self.accepts[slot] = 0;
        }
        slot
    }
}

impl Admission for AdaptiveThrottle {
    fn acquire(&mut self, now: Instant, _ask: Ask) -> Admit {
        let slot = self.slot(now);
        let p = self.probability_ppm();
        // The happy path never draws: the RNG moves only while something may be rejected.
        if p > 0 {
            let draw = u128::from(self.rng.next_value()) * u128::from(ONE);
            if draw < u128::from(p) << 64 {
                self.requests[slot] = self.requests[slot].saturating_add(1);
                return Admit::Reject(LocalRejection::Throttled {
                    probability_ppm: p as u32,
                });
            }
        }
        Admit::Now(Grant::new(self.latest, 0))
    }

    fn claim(&mut self, now: Instant, _ticket: Ticket) -> Admit {
        // This machine never hands out tickets; a stray one is simply asked again.
        self.acquire(now, Ask::new(super::AttemptKind::First))
    }

    fn cancel(&mut self, now: Instant, _ticket: Ticket) -> Wake {
        self.slot(now);
        Wake::NONE
    }

    fn record(&mut self, now: Instant, _grant: Grant, feedback: Feedback) -> Wake {
        let slot = self.slot(now);
        self.requests[slot] = self.requests[slot].saturating_add(1);
        if feedback == Feedback::Accepted {
            self.accepts[slot] = self.accepts[slot].saturating_add(1);
        }
        Wake::NONE
    }

    fn release(&mut self, now: Instant, _grant: Grant) -> Wake {
        self.slot(now);
        Wake::NONE
    }

    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        self.slot(now);
        CurrentLimit::Throttle {
            reject_ppm: self.probability_ppm() as u32,
        }
    }
}
