//! [`ConcurrencyLimiter`]: a bulkhead with a bounded queue, whose limit is static or adapts per
//! attempt (AIMD, or a latency gradient after Netflix's Gradient2).
//!
//! Every adaptive rule obeys three facts learned from the peers (DESIGN §7):
//! - feedback is per attempt: back pressure shrinks the limit even when the call later succeeds;
//! - the limit never grows while the client is far below it (fewer than half of the slots in
//!   use when the attempt started), so an idle client's limit does not drift to the maximum;
//! - there is no periodic "pin the limit low to re-measure the minimum RTT" window (Envoy's
//!   cause of 503 spikes); an absolute latency bound can stand beside the gradient instead.

use alloc::vec::Vec;
use core::time::Duration;

use super::{Admission, Admit, Ask, CurrentLimit, Feedback, Grant, LocalRejection, Ticket, Wake};
use crate::error::PolicyError;
use crate::time::{Instant, duration_to_nanos};

/// The largest queue a limiter reserves room for.
const MAX_QUEUE: u32 = 65_536;
/// Back pressure multiplies a gradient limit by this, as AIMD's default does.
const GRADIENT_BACKOFF: f64 = 0.9;
/// The long-term RTT average spans about this many samples (Gradient2's default).
const LONG_WINDOW: f64 = 600.0;

/// How the concurrency limit moves.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum LimitAlgorithm {
    /// The limit never moves.
    Static,
    /// Additive increase, multiplicative decrease: +1 per `limit` accepted attempts (about one
    /// per round trip, like TCP congestion avoidance), ×`backoff_ratio` on back pressure, at
    /// most once per round (attempts sent before the last decrease do not cut again).
    Aimd {
        /// In `[0.5, 1)`; 0.9 by default (Netflix, Vector).
        backoff_ratio: f64,
    },
    /// Gradient2 (Netflix concurrency-limits): the limit follows
    /// `limit · clamp(tolerance · long_rtt / rtt, 0.5, 1) + headroom`, smoothed, where
    /// `long_rtt` is an average over about 600 samples. A rise in latency shrinks the limit
    /// at once; a plateau becomes the new normal as the average catches up, which is what
    /// [`max_latency`](ConcurrencyLimiterBuilder::max_latency) is for. Back pressure cuts the
    /// limit by 10 %.
    Gradient {
        /// How much slower than the long average a sample may be before the limit shrinks
        /// (at least 1; 1.5 by default).
        tolerance: f64,
        /// The weight of each new estimate, in `(0, 1]` (0.2 by default).
        smoothing: f64,
        /// Slots added above what the gradient allows, so the limit can grow (4 by default).
        headroom: u32,
    },
}

impl LimitAlgorithm {
    /// AIMD with its default backoff ratio of 0.9.
    pub const fn aimd() -> LimitAlgorithm {
        LimitAlgorithm::Aimd { backoff_ratio: 0.9 }
    }

    /// Gradient2 with its defaults: tolerance 1.5, smoothing 0.2, headroom 4.
    pub const fn gradient() -> LimitAlgorithm {
        LimitAlgorithm::Gradient {
            tolerance: 1.5,
            smoothing: 0.2,
            headroom: 4,
        }
    }
}

/// Builds a [`ConcurrencyLimiter`]. Defaults: a static limit of 10 (bounds 1 to 1000 once
/// adaptive), no queue, no latency bound.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimiterBuilder {
    limit: u32,
    min: u32,
    max: u32,
    algorithm: LimitAlgorithm,
    queue: Option<(u32, Duration)>,
    max_latency: Option<Duration>,
}

impl ConcurrencyLimiterBuilder {
    /// The limit: fixed, or the starting point of an adaptive one (within its bounds).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// An adaptive limit stays within `[min, max]` (`1 ≤ min ≤ max`).
    pub fn bounds(mut self, min: u32, max: u32) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    /// How the limit moves (static by default).
    pub fn algorithm(mut self, algorithm: LimitAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Lets up to `capacity` callers (1 to 65 536) wait for a slot, each for at most
    /// `timeout` (not zero). Without a queue, a caller finding every slot taken is rejected.
    pub fn queue(mut self, capacity: u32, timeout: Duration) -> Self {
        self.queue = Some((capacity, timeout));
        self
    }

    /// An attempt that took longer than this counts as back pressure even if it succeeded: an
    /// absolute bound beside the gradient, for adaptive limits.
    pub fn max_latency(mut self, bound: Duration) -> Self {
        self.max_latency = Some(bound);
        self
    }

    /// Validates the settings; the error names the first bad one.
    pub fn build(self) -> Result<ConcurrencyLimiter, PolicyError> {
        if self.limit == 0 {
            return Err(PolicyError::new("limit", "must be at least 1"));
        }
        let (min, max) = match self.algorithm {
            LimitAlgorithm::Static => (self.limit, self.limit),
            _ => (self.min, self.max),
        };
        if min == 0 || min > max {
            return Err(PolicyError::new("bounds", "must satisfy 1 ≤ min ≤ max"));
        }
        if !(min..=max).contains(&self.limit) {
            return Err(PolicyError::new("limit", "must lie within the bounds"));
        }
        match self.algorithm {
            LimitAlgorithm::Static => {}
            LimitAlgorithm::Aimd { backoff_ratio } => {
                if !(0.5..1.0).contains(&backoff_ratio) {
                    return Err(PolicyError::new(
                        "algorithm",
                        "the AIMD backoff ratio must be in [0.5, 1)",
                    ));
                }
            }
            LimitAlgorithm::Gradient {
                tolerance,
                smoothing,
                ..
            } => {
                if !(tolerance.is_finite() && tolerance >= 1.0) {
                    return Err(PolicyError::new(
                        "algorithm",
                        "the gradient tolerance must be finite and at least 1",
                    ));
                }
                if !(smoothing > 0.0 && smoothing <= 1.0) {
                    return Err(PolicyError::new(
                        "algorithm",
                        "the gradient smoothing must be in (0, 1]",
                    ));
                }
            }
        }
        let (capacity, timeout) = match self.queue {
            None => (0, 0),
            Some((0, _)) => {
                return Err(PolicyError::new(
                    "queue",
                    "capacity must be at least 1 (leave the queue out to reject at once)",
                ));
            }
            Some((c, _)) if c > MAX_QUEUE => {
                return Err(PolicyError::new("queue", "capacity must be at most 65536"));
            }
            Some((_, t)) if t.is_zero() => {
                return Err(PolicyError::new("queue", "timeout must not be zero"));
            }
            Some((c, t)) => (c, duration_to_nanos(t)),
        };
        if self.max_latency == Some(Duration::ZERO) {
            return Err(PolicyError::new("max_latency", "must not be zero"));
        }
        Ok(ConcurrencyLimiter {
            algorithm: self.algorithm,
            limit: f64::from(self.limit),
            min,
            max,
            max_latency: self.max_latency.map_or(u64::MAX, duration_to_nanos),
            long_rtt: 0.0,
            last_decrease: None,
            inflight: 0,
            queue: Vec::with_capacity(capacity as usize),
            queue_capacity: capacity,
            queue_timeout: timeout,
            next_ticket: 0,
            latest: Instant::ZERO,
            unreported: 0,
        })
    }
}

/// One caller waiting for a slot.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    id: u64,
    expires: Instant,
    /// A slot was handed over and is held for it until it claims (or its time runs out).
    granted: bool,
}

/// A bulkhead: at most `limit` attempts in flight, more waiting in a bounded queue.
///
/// A slot freed by [`record`](Admission::record) or [`release`](Admission::release) goes to
/// the oldest waiter at once and is held for it; the returned [`Wake`] says to wake the
/// waiters, and the waiter's [`claim`](Admission::claim) collects it. A waiter that never
/// comes back loses its slot when its queue time is up, so a lost ticket cannot shrink the
/// limiter for good.
///
/// ```
/// use core::time::Duration;
/// use resil_core::{Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter, Feedback, Instant};
///
/// let mut bulkhead = ConcurrencyLimiter::builder()
///     .limit(1)
///     .queue(8, Duration::from_secs(1))
///     .build()?;
/// let ask = Ask::new(AttemptKind::First);
/// let t0 = Instant::ZERO;
/// let Admit::Now(first) = bulkhead.acquire(t0, ask) else { panic!() };
/// let Admit::Queued { ticket, .. } = bulkhead.acquire(t0, ask) else { panic!() };
/// let t1 = t0 + Duration::from_millis(20);
/// assert!(bulkhead.record(t1, first, Feedback::Accepted).any(), "the waiter got the slot");
/// assert!(matches!(bulkhead.claim(t1, ticket), Admit::Now(_)));
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConcurrencyLimiter {
    algorithm: LimitAlgorithm,
    /// Fractional, so AIMD can add 1/limit per answer; slots are its integer part.
    limit: f64,
    min: u32,
    max: u32,
    max_latency: u64,
    /// The long average RTT in nanoseconds (0 before the first sample).
    long_rtt: f64,
    /// When the limit was last cut for back pressure.
    last_decrease: Option<Instant>,
    /// Slots taken: attempts in flight plus slots held for woken waiters.
    inflight: u32,
    /// Oldest first. Its storage is reserved at build time, so pushing never allocates.
    queue: Vec<Waiter>,
    queue_capacity: u32,
    queue_timeout: u64,
    next_ticket: u64,
    latest: Instant,
    /// Waiters handed a slot by `acquire` or `claim`, which cannot report a [`Wake`].
    unreported: u32,
}

impl ConcurrencyLimiter {
    /// A builder with the defaults on [`ConcurrencyLimiterBuilder`].
    pub fn builder() -> ConcurrencyLimiterBuilder {
        ConcurrencyLimiterBuilder {
            limit: 10,
            min: 1,
            max: 1000,
            algorithm: LimitAlgorithm::Static,
            queue: None,
            max_latency: None,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        (self.limit as u32).clamp(self.min, self.max)
    }

    /// Slots taken: attempts in flight, and slots held for waiters that were handed one.
    pub fn inflight(&self) -> u32 {
        self.inflight
    }

    /// Callers waiting in the queue (including those handed a slot not yet claimed).
    pub fn queued(&self) -> u32 {
        self.queue.len() as u32
    }

    /// Observes `now`, drops waiters whose time ran out (freeing a slot held for one that
    /// never came back) and hands free slots on. Waiters handed a slot here are woken by the
    /// next [`Wake`] this limiter returns.
    fn tidy(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        let now = self.latest;
        let inflight = &mut self.inflight;
        self.queue.retain(|w| {
            // A held slot is kept through its last instant, so a claim at `until` succeeds.
            let keep = if w.granted {
                now <= w.expires
            } else {
                now < w.expires
            };
            if !keep && w.granted {
                *inflight = inflight.saturating_sub(1);
            }
            keep
        });
        let woken = self.hand_off();
        self.unreported = self.unreported.saturating_add(woken.count());
        now
    }

    /// What to report: waiters handed a slot now, and any not reported yet.
    fn wake(&mut self, now: Wake) -> Wake {
        let n = now.count().saturating_add(self.unreported);
        self.unreported = 0;
        Wake::granted(n)
    }

    /// Hands free slots to the oldest waiters; how many were handed.
    fn hand_off(&mut self) -> Wake {
        let limit = self.limit();
        let mut granted = 0;
        for w in self.queue.iter_mut().filter(|w| !w.granted) {
            if self.inflight >= limit {
                break;
            }
            w.granted = true;
            self.inflight += 1;
            granted += 1;
        }
        Wake::granted(granted)
    }

    fn free_slot(&mut self) {
        self.inflight = self.inflight.saturating_sub(1);
    }

    /// Moves the limit on one attempt's outcome; `inflight` is how many slots were taken
    /// just before this attempt's was freed.
    fn adapt(&mut self, now: Instant, grant: Grant, feedback: Feedback, inflight: u32) {
        let rtt = now.saturating_duration_since(grant.issued_at());
        let slow = duration_to_nanos(rtt) > self.max_latency;
        let pushed_back =
            feedback == Feedback::BackPressure || (feedback == Feedback::Accepted && slow);
        // Growth only when the client used at least half of its slots, when this attempt
        // started or as it ended.
        let used = grant.inflight().max(inflight);
        let busy = u64::from(used) * 2 >= u64::from(self.limit());
        match self.algorithm {
            LimitAlgorithm::Static => {}
            LimitAlgorithm::Aimd { backoff_ratio } => {
                if pushed_back {
                    self.decrease(now, grant, backoff_ratio);
                } else if feedback == Feedback::Accepted && busy {
                    self.limit += 1.0 / self.limit.max(1.0);
                }
            }
            LimitAlgorithm::Gradient {
                tolerance,
                smoothing,
                headroom,
            } => {
                if pushed_back {
                    self.decrease(now, grant, GRADIENT_BACKOFF);
                } else if feedback == Feedback::Accepted {
                    let sample = (duration_to_nanos(rtt) as f64).max(1.0);
                    self.long_rtt = if self.long_rtt == 0.0 {
                        sample
                    } else {
                        self.long_rtt + (sample - self.long_rtt) * (2.0 / (LONG_WINDOW + 1.0))
                    };
                    // After a load spike the average lags far above the samples; let it decay
                    // so a later slowdown still shows.
                    if self.long_rtt > 2.0 * sample {
                        self.long_rtt *= 0.95;
                    }
                    if busy {
                        let gradient = (tolerance * self.long_rtt / sample).clamp(0.5, 1.0);
                        let estimate = self.limit * gradient + f64::from(headroom);
                        self.limit = self.limit * (1.0 - smoothing) + estimate * smoothing;
                    }
                }
            }
        }
        self.limit = self.limit.clamp(f64::from(self.min), f64::from(self.max));
    }

    /// One cut per round: back pressure on an attempt sent before the last cut is the same
    /// congestion, already answered.
    fn decrease(&mut self, now: Instant, grant: Grant, ratio: f64) {
        if self.last_decrease.is_none_or(|cut| grant.issued_at() > cut) {
            self.limit *= ratio;
            self.last_decrease = Some(now);
        }
    }
}

impl Admission for ConcurrencyLimiter {
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit {
        let now = self.tidy(now);
        let limit = self.limit();
        // Slots are handed to waiters as they free up, so a free slot means nobody waits: a
        // newcomer never jumps the queue.
        if self.inflight < limit {
            self.inflight += 1;
            return Admit::Now(Grant::new(now, self.inflight));
        }
        if self.queue_capacity == 0 {
            return Admit::Reject(LocalRejection::ConcurrencyLimited { limit });
        }
        if self.queue.len() as u32 >= self.queue_capacity {
            return Admit::Reject(LocalRejection::QueueFull {
                limit,
                queued: self.queue.len() as u32,
            });
        }
        let until = ask
            .not_after
            .min(now.saturating_add(Duration::from_nanos(self.queue_timeout)));
        if until <= now {
            return Admit::Reject(LocalRejection::ConcurrencyLimited { limit });
        }
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.queue.push(Waiter {
            id: self.next_ticket,
            expires: until,
            granted: false,
        });
        Admit::Queued {
            until,
            ticket: Ticket::new(self.next_ticket, now, until, ask.not_after, 1),
        }
    }

    fn claim(&mut self, now: Instant, ticket: Ticket) -> Admit {
        let now = self.tidy(now);
        let waited = now.saturating_duration_since(ticket.since());
        let Some(i) = self.queue.iter().position(|w| w.id == ticket.id()) else {
            return Admit::Reject(LocalRejection::QueueTimeout { waited });
        };
        let waiter = self.queue[i];
        if waiter.granted {
            self.queue.remove(i);
            return Admit::Now(Grant::new(now, self.inflight));
        }
        Admit::Queued {
            until: waiter.expires,
            ticket,
        }
    }

    fn cancel(&mut self, now: Instant, ticket: Ticket) -> Wake {
        self.tidy(now);
        if let Some(i) = self.queue.iter().position(|w| w.id == ticket.id()) {
            if self.queue.remove(i).granted {
                self.free_slot();
            }
        }
        let woken = self.hand_off();
        self.wake(woken)
    }

    fn record(&mut self, now: Instant, grant: Grant, feedback: Feedback) -> Wake {
        let now = self.tidy(now);
        let inflight = self.inflight;
        self.free_slot();
        self.adapt(now, grant, feedback, inflight);
        let woken = self.hand_off();
        self.wake(woken)
    }

    fn release(&mut self, now: Instant, _grant: Grant) -> Wake {
        self.tidy(now);
        self.free_slot();
        let woken = self.hand_off();
        self.wake(woken)
    }

    fn current_limit(&mut self, _now: Instant) -> CurrentLimit {
        CurrentLimit::InFlight {
            limit: self.limit(),
            in_flight: self.inflight,
        }
    }
}
