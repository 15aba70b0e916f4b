//! [`RateLimiter`]: a fixed rate with a burst, as a token bucket that reserves start times.

use core::time::Duration;

use super::{
    Admission, Admit, Ask, CurrentLimit, Feedback, Grant, LocalRejection, Ticket, Wake,
    latest_start,
};
use crate::error::PolicyError;
use crate::time::{Instant, duration_to_nanos};

/// Builds a [`RateLimiter`]. The rate has no default; the burst defaults to one second's
/// worth of attempts (at least 1), `max_wait` to 30 s.
#[derive(Clone, Debug)]
pub struct RateLimiterBuilder {
    rate: Option<f64>,
    burst: Option<u32>,
    max_wait: Duration,
}

impl RateLimiterBuilder {
    /// Attempts per second, sustained: finite, above zero and at most 10^9.
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// How many attempts may start at once after a quiet spell (at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The longest an attempt waits for its turn; one that would wait longer is rejected.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<RateLimiter, PolicyError> {
        let Some(rate) = self.rate else {
            return Err(PolicyError::new("rate", "must be set"));
        };
        if !(rate.is_finite() && rate > 0.0) {
            return Err(PolicyError::new(
                "rate",
                "must be a finite number above zero",
            ));
        }
        if rate > 1e9 {
            return Err(PolicyError::new("rate", "must be at most 10^9 per second"));
        }
        let interval = 1e9 / rate;
        if interval >= u64::MAX as f64 {
            return Err(PolicyError::new(
                "rate",
                "is too small: one attempt per 584 years at least",
            ));
        }
        let burst = match self.burst {
            Some(0) => return Err(PolicyError::new("burst", "must be at least 1")),
            Some(b) => b,
            // One second's worth, rounded up (the rate is at most 10^9, so it fits).
            None => (rate as u32).saturating_add(u32::from(rate > f64::from(rate as u32))),
        };
        Ok(RateLimiter {
            interval: (interval + 0.5) as u64,
            burst: u64::from(burst.max(1)),
            max_wait: duration_to_nanos(self.max_wait),
            theoretical_arrival: 0,
            latest: Instant::ZERO,
            next_ticket: 0,
        })
    }
}

/// A static rate limiter: attempts start at most `rate` per second, with bursts of `burst`.
///
/// It keeps the generic cell rate algorithm's single number (the theoretical arrival time of
/// the next attempt) in integer nanoseconds, so it never drifts. An attempt that must wait
/// gets its start time reserved ([`Admit::Wait`]); cancelling the ticket gives it back.
///
/// ```
/// use core::time::Duration;
/// use resil_core::{Admission, Admit, Ask, AttemptKind, Instant, RateLimiter};
///
/// let mut limiter = RateLimiter::builder().rate(2.0).burst(1).build()?;
/// let ask = Ask::new(AttemptKind::First);
/// let t0 = Instant::ZERO;
/// assert!(matches!(limiter.acquire(t0, ask), Admit::Now(_)));
/// let Admit::Wait { until, ticket } = limiter.acquire(t0, ask) else { panic!() };
/// assert_eq!(until, t0 + Duration::from_millis(500));
/// assert!(matches!(limiter.claim(until, ticket), Admit::Now(_)));
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Nanoseconds between attempts at the sustained rate (at least 1).
    interval: u64,
    burst: u64,
    max_wait: u64,
    /// When the bucket is full again, in nanoseconds on the driver's clock.
    theoretical_arrival: u64,
    latest: Instant,
    next_ticket: u64,
}

impl RateLimiter {
    /// A builder; see [`RateLimiterBuilder`].
    pub fn builder() -> RateLimiterBuilder {
        RateLimiterBuilder {
            rate: None,
            burst: None,
            max_wait: super::DEFAULT_MAX_WAIT,
        }
    }

    /// Attempts that could start right now without waiting.
    pub fn available(&self, now: Instant) -> u64 {
        let now = now.max(self.latest).as_nanos();
        let debt = self.theoretical_arrival.saturating_sub(now);
        self.burst.saturating_sub(debt.div_ceil(self.interval))
    }

    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }
}

impl Admission for RateLimiter {
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit {
        let now = self.observe(now);
        let next = self
            .theoretical_arrival
            .max(now.as_nanos())
            .saturating_add(self.interval);
        let start =
            Instant::from_nanos(next.saturating_sub(self.burst.saturating_mul(self.interval)));
        if start <= now {
            self.theoretical_arrival = next;
            return Admit::Now(Grant::new(now, 0));
        }
        if start > latest_start(now, ask.not_after, self.max_wait) {
            return Admit::Reject(LocalRejection::RateLimited {
                wait: start.saturating_duration_since(now),
            });
        }
        self.theoretical_arrival = next;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let ticket = Ticket::new(self.next_ticket, now, start, ask.not_after, 1);
        Admit::Wait {
            until: start,
            ticket,
        }
    }

    fn claim(&mut self, now: Instant, ticket: Ticket) -> Admit {
        let now = self.observe(now);
        if now < ticket.until() {
            return Admit::Wait {
                until: ticket.until(),
                ticket,
            };
        }
        Admit::Now(Grant::new(now, 0))
    }

    fn cancel(&mut self, now: Instant, ticket: Ticket) -> Wake {
        let now = self.observe(now);
        // Only a reservation still in the future has something to give back.
        if now < ticket.until() {
            self.theoretical_arrival = self
                .theoretical_arrival
                .saturating_sub(self.interval.saturating_mul(u64::from(ticket.cost())));
        }
        Wake::NONE
    }

    fn record(&mut self, now: Instant, _grant: Grant, _feedback: Feedback) -> Wake {
        self.observe(now);
        Wake::NONE
    }

    fn release(&mut self, now: Instant, _grant: Grant) -> Wake {
        self.observe(now);
        Wake::NONE
    }

    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        self.observe(now);
        CurrentLimit::rate(1e9 / self.interval as f64)
    }
}
