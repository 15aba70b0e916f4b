//! [`AdaptiveRateLimiter`]: the AWS SDKs' adaptive retry mode as a sans-IO machine.
//!
//! The same algorithm as botocore's `ClientRateLimiter`, the Go v2 SDK's `adaptiveRateLimit`
//! and smithy-rs (which already takes time as an argument), so their test vectors apply: a
//! throttle cuts the sending rate to `beta` times what was measured, and successes grow it back
//! along the cubic curve of TCP CUBIC, flat around the rate that was last throttled. The token
//! bucket stays out of the way until the first throttle.

use core::time::Duration;

use super::{
    Admission, Admit, Ask, AttemptKind, CurrentLimit, Feedback, Grant, LocalRejection, Ticket, Wake,
};
use crate::error::PolicyError;
use crate::time::{Instant, duration_to_nanos};

/// The measured sending rate is smoothed over half-second buckets with this weight.
const SMOOTH: f64 = 0.8;
const HALF_SECOND: u64 = 500_000_000;
/// The bucket holds at least one token, so a first attempt can always be admitted.
const MIN_CAPACITY: f64 = 1.0;

/// Builds an [`AdaptiveRateLimiter`]. Defaults are the AWS SDKs': `beta` 0.7, scale constant
/// 0.4, a floor of 0.5 attempts per second, no ceiling, and a `max_wait` of 30 s.
#[derive(Clone, Debug)]
pub struct AdaptiveRateLimiterBuilder {
    min_rate: f64,
    max_rate: f64,
    beta: f64,
    scale: f64,
    max_wait: Duration,
}

impl AdaptiveRateLimiterBuilder {
    /// The sending rate never falls below `min` nor rises above `max` attempts per second
    /// (`0 < min ≤ max`; `max` may be infinite).
    pub fn rate_bounds(mut self, min: f64, max: f64) -> Self {
        self.min_rate = min;
        self.max_rate = max;
        self
    }

    /// After a throttle, the rate becomes `beta` times the rate that was throttled (in `(0, 1)`).
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// How fast the cubic curve grows the rate back (finite, above zero).
    pub fn scale_constant(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// The longest an attempt waits for tokens; one that would wait longer is rejected.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<AdaptiveRateLimiter, PolicyError> {
        if !(self.min_rate.is_finite() && self.min_rate > 0.0) {
            return Err(PolicyError::new(
                "rate_bounds",
                "the minimum must be a finite number above zero",
            ));
        }
        if self.max_rate.is_nan() || self.max_rate < self.min_rate {
            return Err(PolicyError::new(
                "rate_bounds",
                "the maximum must be at least the minimum",
            ));
        }
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return Err(PolicyError::new("beta", "must be in (0, 1)"));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(PolicyError::new(
                "scale_constant",
                "must be a finite number above zero",
            ));
        }
        Ok(AdaptiveRateLimiter {
            min_rate: self.min_rate,
            max_rate: self.max_rate,
            beta: self.beta,
            scale: self.scale,
            max_wait: duration_to_nanos(self.max_wait),
            enabled: false,
            fill_rate: self.min_rate,
            capacity: MIN_CAPACITY,
            tokens: 0.0,
            last_refill: None,
            measured_rate: 0.0,
            rate_bucket: 0,
            bucket_count: 0,
            last_max_rate: 0.0,
            last_throttle: Instant::ZERO,
            latest: Instant::ZERO,
            next_ticket: 0,
        })
    }
}

/// A client-side rate limiter that learns the backend's capacity from throttling responses,
/// after the AWS SDKs' adaptive retry mode.
///
/// Until the first back pressure it admits everything at once. Then it sends at most the
/// rate it computed, charging 1 token per first attempt, 5 per retry and 10 per retry after a
/// timeout (the AWS cost table), so a retry storm slows itself down. Waiting for tokens is an
/// action: [`Admit::Wait`] names when the tokens will be there, already reserved. Times start
/// at the driver's origin ([`Instant::ZERO`]), like the SDKs' creation time.
///
/// ```
/// use resil_core::{AdaptiveRateLimiter, Admission, Admit, Ask, AttemptKind, Feedback, Instant};
///
/// let mut limiter = AdaptiveRateLimiter::builder().build()?;
/// let t = Instant::from_millis(200);
/// let Admit::Now(grant) = limiter.acquire(t, Ask::new(AttemptKind::First)) else { panic!() };
/// assert!(!limiter.is_enabled(), "nothing is limited before the first throttle");
/// let _ = limiter.record(t, grant, Feedback::BackPressure);
/// assert!(limiter.is_enabled());
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveRateLimiter {
    min_rate: f64,
    max_rate: f64,
    beta: f64,
    scale: f64,
    max_wait: u64,
    enabled: bool,
    /// Tokens per second.
    fill_rate: f64,
    capacity: f64,
    /// Negative while reservations are outstanding.
    tokens: f64,
    last_refill: Option<Instant>,
    /// The smoothed rate at which attempts ended, per second.
    measured_rate: f64,
    /// The half-second bucket (index since the origin) the measurement last closed.
    rate_bucket: u64,
    bucket_count: u64,
    /// The rate in force at the last throttle: the plateau of the cubic curve.
    last_max_rate: f64,
    last_throttle: Instant,
    latest: Instant,
    next_ticket: u64,
}

impl AdaptiveRateLimiter {
    /// A builder with the AWS SDKs' defaults; see [`AdaptiveRateLimiterBuilder`].
    pub fn builder() -> AdaptiveRateLimiterBuilder {
        AdaptiveRateLimiterBuilder {
            min_rate: 0.5,
            max_rate: f64::INFINITY,
            beta: 0.7,
            scale: 0.4,
            max_wait: super::DEFAULT_MAX_WAIT,
        }
    }

    /// Whether the token bucket limits sending (from the first throttle on).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The sending rate the bucket allows, in attempts per second.
    pub fn fill_rate(&self) -> f64 {
        self.fill_rate
    }

    /// The smoothed rate at which attempts ended, in attempts per second.
    pub fn measured_rate(&self) -> f64 {
        self.measured_rate
    }

    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    fn cost(kind: AttemptKind) -> u32 {
        match kind {
            AttemptKind::First => 1,
            AttemptKind::Retry | AttemptKind::Hedge => 5,
            AttemptKind::RetryAfterTimeout => 10,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last_refill {
            let elapsed = seconds(now.saturating_duration_since(last));
            self.tokens = (self.tokens + elapsed * self.fill_rate).min(self.capacity);
        }
        self.last_refill = Some(now);
    }

    /// One attempt ended at `now`: update the measured rate and, from it, the sending rate.
    fn update(&mut self, now: Instant, throttled: bool) {
        self.measure(now);
        let rate = if throttled {
            let rate_to_use = if self.enabled {
                self.measured_rate.min(self.fill_rate)
            } else {
                self.measured_rate
            };
            self.last_max_rate = rate_to_use;
            self.last_throttle = now;
            self.enabled = true;
            rate_to_use * self.beta
        } else {
            self.cubic_success(now)
        };
        let rate = rate.min(2.0 * self.measured_rate);
        self.refill(now);
        self.fill_rate = rate.clamp(self.min_rate, self.max_rate);
        self.capacity = rate.min(self.max_rate).max(MIN_CAPACITY);
        self.tokens = self.tokens.min(self.capacity);
    }

    fn measure(&mut self, now: Instant) {
        self.bucket_count = self.bucket_count.saturating_add(1);
        let bucket = now.as_nanos() / HALF_SECOND;
        if bucket > self.rate_bucket {
            let span = (bucket - self.rate_bucket) as f64 * 0.5;
            let current = self.bucket_count as f64 / span;
            self.measured_rate = current * SMOOTH + self.measured_rate * (1.0 - SMOOTH);
            self.bucket_count = 0;
            self.rate_bucket = bucket;
        }
    }

    /// The time after the last throttle at which the cubic curve is back at its plateau.
    fn time_window(&self) -> f64 {
        cbrt(self.last_max_rate * (1.0 - self.beta) / self.scale)
    }

    fn cubic_success(&self, now: Instant) -> f64 {
        let dt = seconds(now.saturating_duration_since(self.last_throttle)) - self.time_window();
        self.scale * dt * dt * dt + self.last_max_rate
    }
}

impl Admission for AdaptiveRateLimiter {
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit {
        let now = self.observe(now);
        if !self.enabled {
            return Admit::Now(Grant::new(now, 0));
        }
        let cost = Self::cost(ask.kind);
        self.refill(now);
        let needed = (f64::from(cost) - self.tokens).max(0.0);
        // `as` saturates: a wait too long for u64 nanoseconds is simply the longest.
        let wait = Duration::from_nanos((needed / self.fill_rate * 1e9) as u64);
        let until = now.saturating_add(wait);
        if until <= now {
            self.tokens -= f64::from(cost);
            return Admit::Now(Grant::new(now, 0));
        }
        if until > super::latest_start(now, ask.not_after, self.max_wait) {
            return Admit::Reject(LocalRejection::RateLimited { wait });
        }
        // Reserve: the tokens are spent now and the debt is paid by the refill.
        self.tokens -= f64::from(cost);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        Admit::Wait {
            until,
            ticket: Ticket::new(self.next_ticket, now, until, ask.not_after, cost),
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
        if now < ticket.until() {
            self.refill(now);
            self.tokens = (self.tokens + f64::from(ticket.cost())).min(self.capacity);
        }
        Wake::NONE
    }

    fn record(&mut self, now: Instant, _grant: Grant, feedback: Feedback) -> Wake {
        let now = self.observe(now);
        self.update(now, feedback == Feedback::BackPressure);
        Wake::NONE
    }

    fn release(&mut self, now: Instant, _grant: Grant) -> Wake {
        self.observe(now);
        Wake::NONE
    }

    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        self.observe(now);
        if self.enabled {
            CurrentLimit::rate(self.fill_rate)
        } else {
            CurrentLimit::Unlimited
        }
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The real cube root of `x ≥ 0` (core has no `cbrt` without `std`): Newton's method from
/// an estimate built on the exponent, to full precision.
pub(crate) fn cbrt(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return x;
    }
    // Dividing the exponent by 3 lands within a few percent (FreeBSD's cbrt uses the same
    // constant); subnormals start further off and take a few more steps.
    let high = (x.to_bits() >> 32) as u32;
    let guess = f64::from_bits(u64::from(high / 3 + 715_094_163) << 32);
    // One Newton step, y − (y³ − x)/3y² arranged so y³ never overflows, lands at or above the
    // root (the mean of y, y and x/y² is at least their geometric mean); from there the steps
    // only shrink until the root is reached.
    let step = |y: f64| (2.0 * y + x / (y * y)) / 3.0;
    let mut y = step(guess);
    for _ in 0..100 {
        let next = step(y);
        if next.is_nan() || next >= y {
            break;
        }
        y = next;
    }
    y
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    //! The Go v2 SDK's cubic vectors (also in smithy-rs), against the private curve.
    use super::{AdaptiveRateLimiter, cbrt};
    use crate::time::Instant;

    fn close(expected: f64, actual: f64) {
        let tolerance = 1e-12 * expected.abs().max(1.0);
        assert!(
            (expected - actual).abs() <= tolerance,
            "expected {expected}, got {actual}"
        );
    }

    fn limiter_throttled_at_10_per_second_at_5s() -> AdaptiveRateLimiter {
        let mut l = AdaptiveRateLimiter::builder().build().unwrap();
        l.last_max_rate = 10.0;
        l.last_throttle = Instant::from_secs(5);
        l
    }

    #[test]
    fn cube_root_is_exact_enough() {
        for x in [1e-310, 1e-20, 0.3, 1.0, 7.5, 8.0, 27.0, 1e30, 1e300] {
            let y = cbrt(x);
            close(x, y * y * y);
        }
        assert!(cbrt(f64::MAX).is_finite());
        assert_eq!(cbrt(0.0), 0.0);
        assert_eq!(cbrt(-1.0), 0.0);
        assert_eq!(cbrt(f64::NAN), 0.0);
    }

    #[test]
    fn beta_decrease_then_cubic_growth_matches_the_sdk_vectors() {
        let l = limiter_throttled_at_10_per_second_at_5s();
        let vectors = [
            (5, 7.0),
            (6, 9.64893600966),
            (7, 10.000030849917364),
            (8, 10.453284520772092),
            (9, 13.408697022224185),
            (10, 21.26626835427364),
            (11, 36.425998516920465),
        ];
        for (secs, expected) in vectors {
            close(expected, l.cubic_success(Instant::from_secs(secs)));
        }
    }

    #[test]
    fn throttles_and_successes_mixed_match_the_sdk_vectors() {
        let mut l = limiter_throttled_at_10_per_second_at_5s();
        let vectors = [
            (false, 5, 7.0),
            (false, 6, 9.64893600966),
            (true, 7, 6.754255206761999),
            (true, 8, 4.727978644733399),
            (false, 9, 4.670125557970046),
            (false, 10, 4.770870456867401),
            (false, 11, 6.011819748005445),
            (false, 12, 10.792973431384178),
        ];
        let mut rate = 0.0;
        for (throttled, secs, expected) in vectors {
            let now = Instant::from_secs(secs);
            if throttled {
                rate *= l.beta;
                l.last_throttle = now;
                l.last_max_rate = rate;
            } else {
                rate = l.cubic_success(now);
            }
            close(expected, rate);
        }
    }
}
