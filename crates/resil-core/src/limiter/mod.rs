//! Overload control: machines that decide whether an attempt may be sent now, later, or not at
//! all, and learn from how each attempt ended.
//!
//! Every machine here shares one shape, [`Admission`], so the retry machine can consult any
//! of them the same way, beside the circuit breaker and the retry budget:
//!
//! | machine | decides from |
//! |---|---|
//! | [`RateLimiter`] | a fixed rate and burst (a token bucket) |
//! | [`AdaptiveRateLimiter`] | the AWS SDKs' adaptive mode: throttles cut the rate, successes grow it on a cubic curve |
//! | [`AdaptiveThrottle`] | Google SRE client-side throttling: how many recent requests the backend accepted |
//! | [`ConcurrencyLimiter`] | attempts in flight, with a bounded queue; a static, AIMD or latency-gradient limit |
//! | [`QuotaPacer`] | the server's own numbers: `RateLimit`, `X-RateLimit-*`, `Retry-After` |
//!
//! [`Admission`] documents the protocol: what to call before a send, after an outcome and
//! when an attempt is abandoned.

mod adaptive_rate;
mod concurrency;
pub(crate) mod held;
mod pacer;
mod rate;
mod rate_limit_headers;
mod throttle;

use core::fmt;
use core::time::Duration;

use crate::policy::{ResponseHead, TransportErrorKind};
use crate::time::Instant;

pub use adaptive_rate::{AdaptiveRateLimiter, AdaptiveRateLimiterBuilder};
pub use concurrency::{ConcurrencyLimiter, ConcurrencyLimiterBuilder, LimitAlgorithm};
pub use held::{LimiterRef, Limiters};
pub use pacer::{QuotaPacer, QuotaPacerBuilder};
pub use rate::{RateLimiter, RateLimiterBuilder};
pub use rate_limit_headers::{
    QuotaPolicy, QuotaUnit, RateLimitField, RateLimitPolicyField, ServerQuota, ServiceLimit,
};
pub use throttle::{AdaptiveThrottle, AdaptiveThrottleBuilder};

/// The longest a limiter lets one attempt wait unless its builder says otherwise: the
/// default total deadline of a call.
pub(crate) const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// The most limiters one [`RetryMachine`](crate::RetryMachine) consults before each attempt
/// (one of each kind but one); further ones given to
/// [`with_limiters`](crate::RetryMachine::with_limiters) are not consulted.
pub const MAX_LIMITERS: usize = 4;

/// Which attempt asks. Rate limiters after the AWS SDKs charge retries more than first
/// attempts, so a retry storm drains the bucket faster than fresh traffic does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptKind {
    /// The call's first attempt.
    First,
    /// A retry after a response or an error other than a timeout.
    Retry,
    /// A retry after the previous attempt timed out.
    RetryAfterTimeout,
    /// A hedged attempt sent while another is in flight; charged like a retry.
    Hedge,
}

/// One request for admission: which attempt, and the latest instant it may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Which attempt asks.
    pub kind: AttemptKind,
    /// The latest start the caller accepts (its deadline, and its longest wait from now). A
    /// limiter that would make it wait longer rejects it instead.
    pub not_after: Instant,
}

impl Ask {
    /// An ask with no bound of its own (the limiter's `max_wait` still applies).
    pub const fn new(kind: AttemptKind) -> Ask {
        Ask {
            kind,
            not_after: Instant::MAX,
        }
    }

    /// Bounds the start of the attempt.
    pub const fn not_after(mut self, at: Instant) -> Ask {
        self.not_after = at;
        self
    }
}

/// Permission to send one attempt now. Hand it back with [`Admission::record`] once the
/// attempt has an outcome, or [`Admission::release`] if it is abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a grant must be recorded or released"]
pub struct Grant {
    issued_at: Instant,
    /// Attempts in flight at the limiter when this one was admitted, itself included.
    inflight: u32,
}

impl Grant {
    pub(crate) const fn new(issued_at: Instant, inflight: u32) -> Grant {
        Grant {
            issued_at,
            inflight,
        }
    }

    /// When the attempt was admitted: latency samples are measured from here, so time spent
    /// in backoff or in a queue never counts.
    pub fn issued_at(&self) -> Instant {
        self.issued_at
    }

    pub(crate) fn inflight(&self) -> u32 {
        self.inflight
    }
}

/// A place in line: a reserved start time or a queue position. Hand it back with
/// [`Admission::claim`] when the wait ends, or [`Admission::cancel`] if the call stops waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a ticket must be claimed or cancelled"]
pub struct Ticket {
    id: u64,
    since: Instant,
    until: Instant,
    not_after: Instant,
    cost: u32,
}

impl Ticket {
    pub(crate) const fn new(
        id: u64,
        since: Instant,
        until: Instant,
        not_after: Instant,
        cost: u32,
    ) -> Ticket {
        Ticket {
            id,
            since,
            until,
            not_after,
            cost,
        }
    }

    /// When the wait ends at the latest.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// When the caller started waiting.
    pub fn since(&self) -> Instant {
        self.since
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn not_after(&self) -> Instant {
        self.not_after
    }

    pub(crate) fn cost(&self) -> u32 {
        self.cost
    }
}

/// A limiter's answer to [`Admission::acquire`] or [`Admission::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "an admission decides whether the attempt may be sent"]
pub enum Admit {
    /// Send now.
    Now(Grant),
    /// Sleep until `until`, then [`claim`](Admission::claim) with the ticket; the start time
    /// is reserved, so the claim succeeds then.
    Wait {
        /// When to claim.
        until: Instant,
        /// The reservation.
        ticket: Ticket,
    },
    /// Wait in the queue for a slot: until woken (see [`Wake`]) or `until` at the latest, then
    /// [`claim`](Admission::claim) with the ticket.
    Queued {
        /// The queue timeout (or the caller's bound, if sooner).
        until: Instant,
        /// The place in the queue.
        ticket: Ticket,
    },
    /// Do not send; give up with this reason.
    Reject(LocalRejection),
}

/// What an attempt's outcome says about the backend's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feedback {
    /// The backend took the request: any response that is not back pressure, a 500 included.
    /// A latency sample.
    Accepted,
    /// The backend pushed back: 429, 503, a `Retry-After`, or a timeout. Limits shrink.
    BackPressure,
    /// A transport error that says nothing about load (refused, reset, DNS, TLS, a malformed
    /// response): not accepted, not a latency sample, and limits do not move.
    TransportError,
}

impl Feedback {
    /// A response: 429, 503 or any response carrying `Retry-After` is back pressure.
    pub fn for_status(status: u16, has_retry_after: bool) -> Feedback {
        if status == 429 || status == 503 || has_retry_after {
            Feedback::BackPressure
        } else {
            Feedback::Accepted
        }
    }

    /// A response head: [`for_status`](Self::for_status) with its status and whether it
    /// carried a `Retry-After`.
    pub fn for_response(head: &ResponseHead<'_>) -> Feedback {
        Feedback::for_status(head.status, head.retry_after.is_some())
    }

    /// A transport error: a timeout (connecting or waiting for the answer) is back pressure.
    pub fn for_error(kind: TransportErrorKind) -> Feedback {
        match kind {
            TransportErrorKind::Timeout | TransportErrorKind::ConnectTimeout => {
                Feedback::BackPressure
            }
            _ => Feedback::TransportError,
        }
    }
}

/// How many queued callers were just handed a slot. When it is not empty, the limiter's owner
/// wakes its waiters so they [`claim`](Admission::claim) their slot now instead of at their
/// queue timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[must_use = "a queued caller may now hold a slot: wake the waiters"]
pub struct Wake(u32);

impl Wake {
    /// Nobody to wake.
    pub const NONE: Wake = Wake(0);

    pub(crate) const fn granted(n: u32) -> Wake {
        Wake(n)
    }

    /// Whether a queued caller must be woken.
    pub fn any(self) -> bool {
        self.0 > 0
    }

    /// How many queued callers now hold a slot.
    pub fn count(self) -> u32 {
        self.0
    }
}

/// What a limiter allows at the moment, for statistics and charts
/// ([`Admission::current_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CurrentLimit {
    /// Nothing is limited (an adaptive rate limiter before its first throttle).
    Unlimited,
    /// At most `limit` attempts in flight at once ([`ConcurrencyLimiter`]).
    InFlight {
        /// The limit.
        limit: u32,
        /// Slots taken now.
        in_flight: u32,
    },
    /// At most this many attempts per second, in thousandths (rate limiters).
    Rate {
        /// Attempts per 1,000 seconds: 2,500,000 is 2,500 per second.
        per_1000_seconds: u64,
    },
    /// Attempts are rejected locally with this probability ([`AdaptiveThrottle`]).
    Throttle {
        /// The probability in parts per million.
        reject_ppm: u32,
    },
    /// The server's quota as far as the client knows ([`QuotaPacer`]).
    Quota {
        /// Requests left in the server's window, when it said so.
        remaining: Option<u64>,
        /// How long attempts are held back from now (zero: they may go).
        blocked_for: Duration,
    },
}

impl CurrentLimit {
    /// A rate of `per_second` attempts per second (saturating; NaN and negatives read 0).
    pub fn rate(per_second: f64) -> CurrentLimit {
        // `as` saturates and reads NaN as 0; + 0.5 rounds (no `round` in no_std).
        CurrentLimit::Rate {
            per_1000_seconds: (per_second * 1000.0 + 0.5) as u64,
        }
    }
}

impl fmt::Display for CurrentLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CurrentLimit::Unlimited => f.write_str("unlimited"),
            CurrentLimit::InFlight { limit, in_flight } => {
                write!(f, "{in_flight} of {limit} in flight")
            }
            CurrentLimit::Rate { per_1000_seconds } => write!(
                f,
                "{}.{:03} attempts/s",
                per_1000_seconds / 1000,
                per_1000_seconds % 1000
            ),
            CurrentLimit::Throttle { reject_ppm } => write!(
                f,
                "rejecting {}.{} % locally",
                reject_ppm / 10_000,
                reject_ppm / 1_000 % 10
            ),
            CurrentLimit::Quota {
                remaining,
                blocked_for,
            } => {
                match remaining {
                    Some(n) => write!(f, "{n} left in the server's quota")?,
                    None => f.write_str("server quota unknown")?,
                }
                if !blocked_for.is_zero() {
                    write!(f, ", blocked for {blocked_for:?}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a limiter refused an attempt on the client side, before anything was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LocalRejection {
    /// A rate limiter would have delayed the attempt past its deadline or the longest wait.
    RateLimited {
        /// The wait it would have needed.
        wait: Duration,
    },
    /// Adaptive throttling: the backend accepted too few recent requests, and this one was
    /// drawn to be rejected locally.
    Throttled {
        /// The rejection probability at the time, in parts per million.
        probability_ppm: u32,
    },
    /// Every concurrency slot is in use and there is no queue.
    ConcurrencyLimited {
        /// The concurrency limit at the time.
        limit: u32,
    },
    /// Every concurrency slot is in use and the queue is full.
    QueueFull {
        /// The concurrency limit at the time.
        limit: u32,
        /// Callers already waiting.
        queued: u32,
    },
    /// Waited in the queue until the queue timeout (or the caller's bound) without a slot.
    QueueTimeout {
        /// How long it waited.
        waited: Duration,
    },
    /// The server's quota is used up (its `RateLimit` or `X-RateLimit-*` numbers, or a
    /// `Retry-After`) for longer than the attempt may wait.
    QuotaExhausted {
        /// How long until the quota resets, as far as the client knows.
        wait: Duration,
    },
}

impl fmt::Display for LocalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LocalRejection::RateLimited { wait } => write!(
                f,
                "the client-side rate limit would delay the attempt by {wait:?}, longer than allowed"
            ),
            LocalRejection::Throttled { probability_ppm } => write!(
                f,
                "adaptive throttling rejected the attempt locally: the backend accepted too few \
                 recent requests ({}.{} % are being rejected)",
                probability_ppm / 10_000,
                probability_ppm / 1_000 % 10
            ),
            LocalRejection::ConcurrencyLimited { limit } => {
                write!(f, "all {limit} concurrency slots are in use")
            }
            LocalRejection::QueueFull { limit, queued } => write!(
                f,
                "all {limit} concurrency slots are in use and {queued} callers are already queued"
            ),
            LocalRejection::QueueTimeout { waited } => {
                write!(
                    f,
                    "waited {waited:?} in the queue without a concurrency slot"
                )
            }
            LocalRejection::QuotaExhausted { wait } => write!(
                f,
                "the server's rate-limit quota is used up for another {wait:?}, longer than allowed"
            ),
        }
    }
}

impl core::error::Error for LocalRejection {}

/// The shape every limiter shares, so the retry machine consults them uniformly:
/// [`RateLimiter`], [`AdaptiveRateLimiter`], [`AdaptiveThrottle`], [`ConcurrencyLimiter`] and
/// [`QuotaPacer`].
///
/// # The protocol
///
/// Each machine is a plain `&mut self` value; share one per backend through
/// [`Shared`](crate::Shared) (with `std`, a `Mutex` of any of them is also a
/// `Shared<dyn Admission + Send>`, so a caller can hold several kinds alike). The lock is held
/// for one method call at a time, never across a wait:
///
/// 1. **Before each send**, after the breaker and the budget said yes, ask every limiter in
///    this order — those that only refuse ([`AdaptiveThrottle`], [`QuotaPacer`]), then those that
///    reserve a start time (rate limiters), then [`ConcurrencyLimiter`], so a slot is held only
///    while an attempt is really out — with [`Admission::acquire`] and an [`Ask`] whose
///    `not_after` is the latest start the caller accepts (its deadline, and its `max_wait` from
///    now):
///    - [`Admit::Now`]: keep the [`Grant`] and ask the next limiter;
///    - [`Admit::Wait`]: sleep until `until`, then [`Admission::claim`] with the [`Ticket`];
///    - [`Admit::Queued`]: the same, but a freed slot may be handed over earlier: wake when the
///      limiter's owner reports a [`Wake`], or at `until` at the latest;
///    - [`Admit::Reject`]: give up at once with the [`LocalRejection`], after releasing the
///      grants and cancelling the tickets already taken for this attempt.
///
///    No wait ever ends after `not_after` or after the limiter's own `max_wait`: a longer one is
///    a rejection instead, so the call gives up early and precisely.
/// 2. **After each attempt's outcome** (a response head or a transport error, even when the
///    call will retry): [`Admission::record`] with the attempt's grant and its [`Feedback`]
///    ([`Feedback::for_status`], [`Feedback::for_error`]). A 429, a 503, a `Retry-After` or a
///    timeout is back pressure even when a later attempt succeeds. The latency sample is the
///    time since the grant was issued, so backoff and queue waits never count. Feed the
///    response's quota headers to a [`QuotaPacer`] with [`QuotaPacer::observe`] too.
///    An attempt that ran into its own timeout has an outcome too: back pressure
///    (`Feedback::for_error(TransportErrorKind::Timeout)`).
/// 3. **When an attempt is abandoned** without an outcome (a hedge lost the race, the call
///    was dropped or cancelled, the call's total deadline cut it short): [`Admission::release`]
///    the grant; it frees a concurrency slot and is not a latency sample. A ticket still
///    waiting is given back with [`Admission::cancel`].
///
/// `record`, `release` and `cancel` return a [`Wake`]: when it is not empty, queued callers now
/// hold a slot, and the owner of the limiter wakes its waiters (a `Notify` beside the lock).
/// Time is always an input and may go backwards: every machine clamps it to the latest instant
/// it saw. No method allocates; a queue's storage is reserved when it is built.
///
/// One attempt through a throttle and a bulkhead, on a fake clock:
///
/// ```
/// use core::time::Duration;
/// use resil_core::{
///     AdaptiveThrottle, Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter, Feedback,
///     Instant,
/// };
///
/// let mut throttle = AdaptiveThrottle::builder().build()?;
/// let mut bulkhead = ConcurrencyLimiter::builder().limit(4).build()?;
/// let mut limiters: [&mut dyn Admission; 2] = [&mut throttle, &mut bulkhead];
/// let now = Instant::from_secs(1);
/// let deadline = now + Duration::from_secs(30);
/// // 1. Before the send: every limiter, in order.
/// let ask = Ask::new(AttemptKind::First).not_after(deadline);
/// let mut grants = Vec::new();
/// for limiter in limiters.iter_mut() {
///     match limiter.acquire(now, ask) {
///         Admit::Now(grant) => grants.push(grant),
///         Admit::Wait { .. } | Admit::Queued { .. } => unreachable!("nothing is busy"),
///         Admit::Reject(reason) => panic!("gave up: {reason}"),
///     }
/// }
/// // 2. The attempt answered 503 after 40 ms: back pressure, to every limiter.
/// let answered = now + Duration::from_millis(40);
/// let feedback = Feedback::for_status(503, false);
/// for (limiter, grant) in limiters.iter_mut().zip(grants) {
///     let wake = limiter.record(answered, grant, feedback);
///     assert!(!wake.any(), "nobody was queued");
/// }
/// assert_eq!(throttle.counts(answered), (1, 0));
/// # Ok::<(), resil_core::PolicyError>(())
/// ```
pub trait Admission {
    /// Asks to send one attempt at `now`.
    fn acquire(&mut self, now: Instant, ask: Ask) -> Admit;

    /// Asks again once a wait named by `ticket` ended (or a queued caller was woken). Early or
    /// repeated claims are harmless: they name the same wait again.
    fn claim(&mut self, now: Instant, ticket: Ticket) -> Admit;

    /// The caller stopped waiting: its reservation or queue place is given back.
    fn cancel(&mut self, now: Instant, ticket: Ticket) -> Wake;

    /// The attempt sent under `grant` ended with `feedback`; its latency is `now` minus
    /// [`Grant::issued_at`].
    fn record(&mut self, now: Instant, grant: Grant, feedback: Feedback) -> Wake;

    /// The attempt sent under `grant` was abandoned without an outcome: a concurrency slot is
    /// freed, and nothing is learned from it.
    fn release(&mut self, now: Instant, grant: Grant) -> Wake;

    /// [`record`](Self::record) for an attempt that got the response `head`: by default its
    /// [`Feedback::for_response`]. A [`QuotaPacer`] also reads the head's `Retry-After` and
    /// quota headers ([`ServerQuota::from_headers`]), so the retry machine feeds it with no
    /// call of its own.
    fn record_response(&mut self, now: Instant, grant: Grant, head: &ResponseHead<'_>) -> Wake {
        self.record(now, grant, Feedback::for_response(head))
    }

    /// What the limiter allows at `now`, for statistics ([`CurrentLimit::Unlimited`] unless
    /// the limiter says otherwise).
    fn current_limit(&mut self, now: Instant) -> CurrentLimit {
        let _ = now;
        CurrentLimit::Unlimited
    }
}

/// The latest start a limiter allows at `now`: the caller's bound (`not_after`) or the limiter's
/// own longest wait, whichever is sooner.
pub(crate) fn latest_start(now: Instant, not_after: Instant, max_wait: u64) -> Instant {
    not_after.min(now.saturating_add(Duration::from_nanos(max_wait)))
}
