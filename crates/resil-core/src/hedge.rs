//! Hedged requests: what a policy says about them ([`Hedging`]), and the attempts a
//! [`RetryMachine`](crate::RetryMachine) keeps in flight at once while it hedges.
//!
//! A hedge is another copy of a request sent while an earlier one is still out, because the
//! earlier one is slower than usual; the first good answer wins and the others are cancelled
//! (Dean and Barroso, "The Tail at Scale"; gRPC's `hedgingPolicy`, gRFC A6).

use core::time::Duration;

use crate::breaker::HeldPermit;
use crate::error::PolicyError;
use crate::limiter::held::Grants;
use crate::time::{Instant, duration_to_nanos};

/// The most attempts a hedging call has in flight at once (gRPC caps a hedging policy at 5
/// attempts in all; past a few copies a hedge adds load, not speed).
pub const MAX_IN_FLIGHT: u8 = 4;

/// When a hedge is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeDelay {
    /// This long after the previous attempt was sent.
    Fixed(Duration),
    /// The client's [`LatencySketch`](crate::LatencySketch) hedge quantile of recent
    /// latencies (p95 by default), clamped to the sketch's minimum and maximum. Until the
    /// sketch has enough samples, `fallback` (or no hedge when `None`).
    Adaptive {
        /// The delay while the sketch knows too little.
        fallback: Option<Duration>,
    },
}

/// How a policy hedges: when a hedge goes out, and how many attempts may be in flight at
/// once. Set it with [`RetryPolicyBuilder::hedge`](crate::RetryPolicyBuilder::hedge).
///
/// The rules (gRFC A6's, with resil's budget and breaker in charge):
/// - A hedge goes out every delay after the previous attempt while fewer than
///   [`max_in_flight`](Self::max_in_flight) are out, until the policy's `max_attempts`. Each
///   counts against the attempts and the deadline, asks the breaker for a permit and the
///   retry budget for a withdrawal, and stays within the client's hedge-rate cap
///   ([`LatencySketch`](crate::LatencySketch)); a hedge any of them refuses is not sent, and
///   the attempts already out go on.
/// - The first answer the policy does not retry wins (a fast 503 never beats a slow 200); the
///   others are cancelled. A fatal failure ends the call.
/// - A retryable failure while other attempts are out sends the next hedge at once; a
///   server's pushback (`Retry-After`) stops hedging. When the failed attempt was the only
///   one out, the call retries as without hedging: after the backoff.
/// - Never hedged: a request that may not be replayed (not idempotent, unless it carries an
///   `Idempotency-Key` or the policy retries non-idempotent requests) or whose body cannot be
///   sent again.
/// - A cancelled attempt is abandoned: its breaker permit is handed back (it counts as neither
///   success nor failure; the attempts that did answer are the breaker's outcomes, so an
///   endpoint whose every attempt fails still opens it), its budget withdrawal stands (it was
///   sent), and the time it ran is a latency sample (it took at least that long).
/// - The drivers send a hedge as any attempt: on a connection the pool has free (over
///   HTTP/1.1 the busy one is not free, so a hedge goes out on another), not to a chosen other
///   address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hedging {
    pub(crate) delay: HedgeDelay,
    pub(crate) max_in_flight: u8,
}

impl Hedging {
    /// Hedges `delay` after each attempt, two in flight at most.
    pub fn fixed(delay: Duration) -> Hedging {
        Hedging {
            delay: HedgeDelay::Fixed(delay),
            max_in_flight: 2,
        }
    }

    /// Hedges after the client's latency quantile (see [`HedgeDelay::Adaptive`]), two in
    /// flight at most, and not before the sketch has samples.
    pub fn adaptive() -> Hedging {
        Hedging {
            delay: HedgeDelay::Adaptive { fallback: None },
            max_in_flight: 2,
        }
    }

    /// While the sketch knows too little, hedges after `delay`.
    pub fn fallback(mut self, delay: Duration) -> Hedging {
        if let HedgeDelay::Adaptive { fallback } = &mut self.delay {
            *fallback = Some(delay);
        }
        self
    }

    /// At most `attempts` in flight at once (2 to [`MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, attempts: u8) -> Hedging {
        self.max_in_flight = attempts;
        self
    }

    /// When the hedge goes out.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// The most attempts in flight at once.
    pub fn in_flight_limit(&self) -> u8 {
        self.max_in_flight
    }

    /// Checks the settings against the policy's `max_attempts`.
    pub(crate) fn check(&self, max_attempts: u32) -> Result<(), PolicyError> {
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        match self.delay {
            HedgeDelay::Fixed(d) if d.is_zero() => {
                return Err(PolicyError::new("hedge", "a hedge delay must not be zero"));
            }
            HedgeDelay::Adaptive { fallback } if zero(fallback) => {
                return Err(PolicyError::new(
                    "hedge",
                    "a fallback hedge delay must not be zero",
                ));
            }
            _ => {}
        }
        if !(2..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(PolicyError::new(
                "hedge",
                "max_in_flight must be 2 to 4 (one attempt and at least one hedge)",
            ));
        }
        if u32::from(self.max_in_flight) > max_attempts {
            return Err(PolicyError::new(
                "hedge",
                "more attempts in flight than max_attempts allows in all",
            ));
        }
        Ok(())
    }

    /// The delay in nanoseconds before the next hedge, given what the sketch says
    /// (`None`: no hedge).
    pub(crate) fn delay_nanos(&self, sketch: Option<Duration>) -> Option<u64> {
        match self.delay {
            HedgeDelay::Fixed(d) => Some(duration_to_nanos(d)),
            HedgeDelay::Adaptive { fallback } => sketch.or(fallback).map(duration_to_nanos),
        }
    }
}

/// One attempt out while a call hedges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    pub(crate) attempt: u32,
    pub(crate) sent: Instant,
    pub(crate) permit: Option<HeldPermit>,
    /// Sent while an earlier attempt was out.
    pub(crate) hedge: bool,
    /// What the limiters granted it.
    pub(crate) grants: Grants,
}

/// The attempts a hedging call has out, and those the driver must cancel. Made when the first
/// hedge goes out (a call that never hedges allocates none), dropped when the call is down to
/// one attempt again and nothing is left to cancel.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flight {
    pub(crate) out: [Option<Out>; MAX_IN_FLIGHT as usize],
    /// Attempts abandoned (they lost, or their deadline passed) that the driver still runs;
    /// polled out as `Action::Cancel`, with whether each lost (else it timed out).
    pub(crate) cancel: [Option<(u32, bool)>; MAX_IN_FLIGHT as usize],
    /// No more hedges in this call: the server pushed back, or the policy, breaker, budget or
    /// cap refused one.
    pub(crate) stopped: bool,
    /// The attempt that won, once one did.
    pub(crate) winner: u32,
}

impl Flight {
    pub(crate) fn len(&self) -> usize {
        self.out.iter().flatten().count()
    }

    pub(crate) fn add(&mut self, out: Out) {
        if let Some(slot) = self.out.iter_mut().find(|s| s.is_none()) {
            *slot = Some(out);
        }
    }

    /// Takes attempt `attempt` out, if it is out.
    pub(crate) fn take(&mut self, attempt: u32) -> Option<Out> {
        self.out
            .iter_mut()
            .find(|s| s.is_some_and(|o| o.attempt == attempt))
            .and_then(Option::take)
    }

    pub(crate) fn abandon(&mut self, attempt: u32, lost: bool) {
        if let Some(slot) = self.cancel.iter_mut().find(|s| s.is_none()) {
            *slot = Some((attempt, lost));
        }
    }

    pub(crate) fn next_cancel(&mut self) -> Option<(u32, bool)> {
        self.cancel.iter_mut().find_map(Option::take)
    }
}
