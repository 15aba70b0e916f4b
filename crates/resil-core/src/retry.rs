//! The retry machine: one logical request across its attempts.
//!
//! Every transition is in [`RetryMachine::handle_input`]'s one `match` (inputs) and
//! [`RetryMachine::poll_action`]'s one `match` (outputs); the helpers below them compute, they
//! do not decide which state comes next.

use core::fmt;
use core::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::attempt::Attempt;
use crate::backoff::{scale, uniform};
use crate::breaker::{BreakerState, CallOutcome, CircuitBreaker, HeldPermit, Rejected, Transition};
use crate::budget::RetryBudget;
use crate::hedge::{Flight, Out};
use crate::latency::LatencySketch;
use crate::limiter::held::{Gate, Held, LimiterRef, Limiters, LimitersRef};
use crate::limiter::{Ask, AttemptKind, LocalRejection};
use crate::policy::{
    AttemptOutcome, Cause, Classification, DelayContext, NO_LIMIT, RequestInfo, ResponseHead,
    RetryContext, RetryKind, RetryPolicy, TransportErrorKind,
};
use crate::shared::Shared;
use crate::time::{Instant, duration_to_nanos};

/// What the driver feeds the machine.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A response head arrived for `attempt`.
    Response {
        /// The attempt it answers.
        attempt: Attempt,
        /// Its status and the headers the policy reads.
        head: ResponseHead<'a>,
    },
    /// `attempt` failed in the transport.
    Error {
        /// The attempt that failed.
        attempt: Attempt,
        /// How.
        kind: TransportErrorKind,
    },
    /// The instant named by the last [`Action::Sleep`] (or a `Send`'s deadline) has passed.
    /// An early or repeated timer is a no-op.
    Timer,
}

/// What the machine asks the driver to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the driver must carry out the action"]
pub enum Action {
    /// Start `attempt` now; abandon it (and feed [`Input::Timer`]) at `deadline`. Emitted once.
    Send {
        /// The attempt to start; echo it back in its input.
        attempt: Attempt,
        /// When to give up on it.
        deadline: Instant,
    },
    /// Wait until `until` (a backoff, or the in-flight attempt's deadline), then feed
    /// [`Input::Timer`] — unless an input for the in-flight attempt arrives first.
    Sleep {
        /// When to wake.
        until: Instant,
    },
    /// Stop `attempt` and drop whatever it brings: it lost to another attempt of a hedging
    /// call, or its deadline passed while others are still out. Only a hedging call emits it,
    /// before any other action, once per attempt; an input for it later is ignored.
    Cancel {
        /// The attempt to stop.
        attempt: Attempt,
    },
    /// Hand `attempt`'s response to the caller. Terminal.
    Done {
        /// The attempt whose response is final.
        attempt: Attempt,
    },
    /// Stop; the reason says why. Terminal. If the last attempt produced a response
    /// ([`GiveUp::has_response`]), return it (or an error carrying it) to the caller.
    Fail(GiveUp),
}

/// Why the machine stopped without a final response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// Every allowed attempt was used.
    AttemptsExhausted,
    /// Every retry the policy allows after failures of this kind was used
    /// ([`RetryPolicyBuilder::kind_retries`](crate::RetryPolicyBuilder::kind_retries)).
    KindExhausted {
        /// The kind of failure that would have been retried again.
        kind: RetryKind,
    },
    /// Waiting for another attempt would pass the total deadline.
    DeadlineExceeded,
    /// The server's `Retry-After` asked for longer than the policy waits.
    RetryAfterTooLong {
        /// What the server asked for.
        requested: Duration,
    },
    /// The status or error is not one the policy retries.
    NotRetryable,
    /// The request is not idempotent and may already have been processed.
    NonIdempotent,
    /// The body was streamed and cannot be sent again.
    BodyNotReplayable,
    /// The retry budget refused another retry.
    BudgetExhausted,
    /// The circuit breaker rejected the attempt.
    CircuitOpen {
        /// When the breaker may admit calls again ([`Instant::MAX`] while isolated).
        until: Instant,
        /// The outcome that opened the circuit, when a recorded call's did
        /// ([`Rejected::opened_by`](crate::Rejected::opened_by)).
        opened_by: Option<Cause>,
    },
    /// A limiter refused the attempt on the client side: nothing was sent
    /// ([`RetryMachine::with_limiters`]).
    RejectedLocally(LocalRejection),
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::AttemptsExhausted => f.write_str("all attempts were used"),
            GiveUpReason::KindExhausted { kind } => {
                write!(f, "all {kind} retries were used")
            }
            GiveUpReason::DeadlineExceeded => f.write_str("the total deadline would be exceeded"),
            GiveUpReason::RetryAfterTooLong { requested } => write!(
                f,
                "the server asked to retry after {}s, longer than allowed",
                requested.as_secs()
            ),
            GiveUpReason::NotRetryable => f.write_str("the failure is not retryable"),
            GiveUpReason::NonIdempotent => f.write_str(
                "the request is not idempotent and may have been processed, so it was not replayed",
            ),
            GiveUpReason::BodyNotReplayable => {
                f.write_str("the request body was streamed and cannot be sent again")
            }
            GiveUpReason::BudgetExhausted => f.write_str("the retry budget is exhausted"),
            GiveUpReason::CircuitOpen {
                opened_by: Some(cause),
                ..
            } => write!(f, "the circuit breaker is open, opened by {cause}"),
            GiveUpReason::CircuitOpen { .. } => f.write_str("the circuit breaker is open"),
            GiveUpReason::RejectedLocally(why) => write!(f, "rejected locally: {why}"),
        }
    }
}

/// The machine's final failure: why, after how many attempts, and how the last one ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GiveUp {
    /// Why it stopped.
    pub reason: GiveUpReason,
    /// Attempts sent.
    pub attempts: u32,
    /// How the last attempt ended (`None` if none was sent).
    pub last: Option<Cause>,
}

impl GiveUp {
    /// Whether the last attempt produced a response the caller should receive.
    pub fn has_response(&self) -> bool {
        matches!(self.last, Some(Cause::Status(_)))
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gave up after {} attempt", self.attempts)?;
        if self.attempts != 1 {
            f.write_str("s")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(last) = self.last {
            write!(f, " (last: {last})")?;
        }
        Ok(())
    }
}

impl core::error::Error for GiveUp {}

/// An observation for hooks, tracing and statistics. Every driver reports the same facts
/// because they come from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An attempt was sent.
    AttemptStarted {
        /// Which.
        attempt: Attempt,
        /// When.
        at: Instant,
    },
    /// A retry was scheduled after `after` failed.
    RetryScheduled {
        /// The attempt that failed.
        after: Attempt,
        /// How it failed.
        cause: Cause,
        /// The wait before the next attempt (zero: sent at once).
        delay: Duration,
        /// The server's `Retry-After` that was honoured, if any.
        retry_after: Option<Duration>,
        /// How long the failed attempt took, from its `Send` to its end (Polly's
        /// `OnRetryArguments.Duration`).
        attempt_duration: Duration,
    },
    /// A final response arrived.
    Completed {
        /// Which attempt.
        attempt: Attempt,
        /// Its status.
        status: u16,
    },
    /// A hedge was sent: `attempt` went out while an earlier attempt was still in flight.
    HedgeSent {
        /// The hedge.
        attempt: Attempt,
    },
    /// The final response came from a hedge (follows its `Completed`).
    HedgeWon {
        /// The hedge that won.
        attempt: Attempt,
    },
    /// An attempt still in flight was abandoned ([`Action::Cancel`]).
    Cancelled {
        /// Which.
        attempt: Attempt,
        /// It lost to another attempt's answer (else its deadline passed).
        lost: bool,
    },
    /// The machine gave up.
    GaveUp(GiveUp),
    /// The next attempt waits for its limiters' admission
    /// ([`RetryMachine::with_limiters`]): a rate limiter's reserved start, the server quota's
    /// reset, or a place in a concurrency queue. [`Action::Sleep`] follows.
    LimiterWait {
        /// The attempt that waits.
        attempt: Attempt,
        /// When it asks again.
        until: Instant,
        /// How long the wait is, from when it began.
        wait: Duration,
    },
    /// The shared breaker changed state during one of this machine's calls.
    Breaker(Transition),
}

/// Where the machine is. The instant that goes with a phase is in `RetryMachine::at`, kept
/// apart so the tag packs into a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The next attempt may be sent.
    Ready,
    /// An attempt is out; it is abandoned at `at`.
    InFlight,
    /// Waiting until `at` before the next attempt.
    Backoff,
    /// Waiting until `at` for a limiter to admit the next attempt (its ticket is held).
    Admitting,
    /// The last attempt's response is final.
    Done,
    /// Gave up; `at` holds the requested wait or the breaker's reopen time, in nanoseconds,
    /// for the reasons that carry one.
    Failed(Reason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    AttemptsExhausted,
    KindExhausted,
    DeadlineExceeded,
    RetryAfterTooLong,
    NotRetryable,
    NonIdempotent,
    BodyNotReplayable,
    BudgetExhausted,
    CircuitOpen,
    RejectedLocally,
}

/// Events waiting to be polled, oldest first, each packed into a `u16`: whether a breaker
/// transition was enforced (1 bit), kind (3 bits), the transition (4 bits) and the low byte
/// of the attempt number (the machine never runs 256 attempts ahead of its poller). The rest
/// of an event's data lives in the machine.
#[derive(Clone, Copy, Debug, Default)]
struct EventQueue {
    items: [u16; 4],
    head: u8,
    len: u8,
}

const EV_STARTED: u16 = 1;
const EV_RETRY: u16 = 2;
const EV_COMPLETED: u16 = 3;
const EV_GAVE_UP: u16 = 4;
const EV_BREAKER: u16 = 5;
const EV_HEDGE: u16 = 6;
const EV_CANCELLED: u16 = 7;
/// Kind 0: a limiter wait (the other kinds count from 1).
const EV_LIMITER_WAIT: u16 = 0;

impl EventQueue {
    /// Queues an event; past four unpolled ones the oldest is dropped (an input or a poll
    /// adds at most four: an attempt's end and a hedge's win, or a hedge sent and started,
    /// each with up to two breaker transitions).
    fn push(&mut self, kind: u16, transition: u16, attempt: u32) {
        let item = (transition & 0x10) << 11
            | (kind & 0x7) << 12
            | (transition & 0xf) << 8
            | (attempt & 0xff) as u16;
        let cap = self.items.len() as u8;
        self.items[usize::from((self.head + self.len) % cap)] = item;
        if self.len == cap {
            self.head = (self.head + 1) % cap;
        } else {
            self.len += 1;
        }
    }

    /// The oldest event as (kind, transition with its enforced bit, attempt), the attempt
    /// rebuilt as the latest number up to `current` with the stored low byte.
    fn pop(&mut self, current: u32) -> Option<(u16, u16, u32)> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[usize::from(self.head)];
        self.head = (self.head + 1) % self.items.len() as u8;
        self.len -= 1;
        let low = u32::from(item & 0xff);
        let attempt = current - (current.wrapping_sub(low) & 0xff);
        Some((
            (item >> 12) & 0x7,
            (item >> 11) & 0x10 | (item >> 8) & 0xf,
            attempt,
        ))
    }
}

fn state_code(s: BreakerState) -> u16 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::Isolated => 3,
    }
}

fn state_from_code(code: u16) -> BreakerState {
    match code & 3 {
        0 => BreakerState::Closed,
        1 => BreakerState::Open,
        2 => BreakerState::HalfOpen,
        _ => BreakerState::Isolated,
    }
}

const NO_RETRY_AFTER: u64 = u64::MAX;

type BreakerRef<'p> = &'p (dyn Shared<CircuitBreaker> + Sync);
type BudgetRef<'p> = &'p (dyn Shared<RetryBudget> + Sync);
type LatencyRef<'p> = &'p (dyn Shared<LatencySketch> + Sync);

/// What a machine without limiters asks.
static NO_LIMITERS: [LimiterRef<'static>; 0] = [];

/// One logical request across its attempts, as a sans-IO state machine.
///
/// # Driving it
///
/// Inputs go in through [`handle_input`](Self::handle_input), actions come out of
/// [`poll_action`](Self::poll_action) and observations out of
/// [`poll_event`](Self::poll_event). After every input, poll until the action needs IO
/// (`Send` or `Sleep`) or ends the call (`Done`, `Fail`), and drain the events. Instants never
/// go back: an earlier one than the machine has seen is read as the latest. Polling again
/// without an input is always safe (a `Send` is given once; then the machine asks to sleep
/// until that attempt's deadline). See the crate docs for the whole loop.
///
/// # Transitions
///
/// Every transition, in the style of h11's state table; a property test beside the machine holds
/// it to the table (no transition outside it happens, and every row does).
///
/// | phase | on | when | next phase | action |
/// |---|---|---|---|---|
/// | Ready | poll | an attempt was made and the deadline has passed | Failed (deadline) | `Fail` |
/// | Ready | poll | the breaker refuses | Failed (circuit open) | `Fail` |
/// | Ready | poll | a limiter refuses | Failed (rejected locally) | `Fail` |
/// | Ready | poll | a limiter asks to wait | Admitting until its wait ends | `Sleep` |
/// | Ready | poll | otherwise | InFlight until min(now + attempt timeout, deadline) | `Send` |
/// | InFlight | poll | | InFlight | `Sleep` until the attempt's deadline |
/// | InFlight | its response or error, or the timer at its deadline | final (policy: not retried, e.g. 2xx, 404) | Done | |
/// | InFlight | the same | not retryable, or retryable but not replayable (non-idempotent, streamed body), attempts used (or the retries of the failure's kind), `Retry-After` too long, wait past the deadline, breaker open at the wake, budget refused | Failed (that reason) | |
/// | InFlight | the same | retry after a wait of zero | Ready | |
/// | InFlight | the same | retry after a wait | Backoff until now + wait | |
/// | InFlight | an input for another attempt, an early timer | | InFlight | |
/// | Backoff | poll | | Backoff | `Sleep` until the wait ends |
/// | Backoff | the timer at the wait's end | | Ready | |
/// | Backoff | any other input | | Backoff | |
/// | Admitting | poll | | Admitting | `Sleep` until the wait ends |
/// | Admitting | the timer at the wait's end | | Ready | |
/// | Admitting | any other input | | Admitting | |
/// | Ready | any input | | Ready | |
/// | Done | anything | | Done | `Done` (sticky) |
/// | Failed | anything | | Failed | `Fail` (sticky) |
///
/// `R` is the jitter RNG, seeded from the `seed` given at construction the first time a delay
/// needs randomness, so the happy path never builds it and one request's delays never depend
/// on what other requests did.
pub struct RetryMachine<'p, R = ChaCha8Rng> {
    policy: &'p RetryPolicy,
    breaker: Option<BreakerRef<'p>>,
    /// The breaker's lock-free side, when the machine was given it.
    #[cfg(target_has_atomic = "64")]
    gate: Option<&'p crate::breaker::BreakerGate>,
    budget: Option<BudgetRef<'p>>,
    now: Instant,
    deadline: Instant,
    phase: Phase,
    /// The phase's instant: when the in-flight attempt was sent (its deadline follows from
    /// it), when the backoff ends, or the give-up detail.
    at: Instant,
    /// The last scheduled wait in nanoseconds (decorrelated jitter's "previous").
    delay: u64,
    /// The honoured `Retry-After` in nanoseconds, or `NO_RETRY_AFTER`.
    detail: u64,
    /// How long the last finished attempt took, in nanoseconds.
    took: u64,
    /// The breaker permit of the attempt in flight; it was taken when the attempt was sent.
    permit: Option<HeldPermit>,
    /// Retries scheduled so far of each [`RetryKind`] (saturating; limits are at most 255).
    kind_retries: [u8; 4],
    /// The outcome that opened the breaker that refused this call, for its give-up.
    opened_by: Option<Cause>,
    attempts: u32,
    request: RequestInfo,
    /// The request was begun by an earlier machine (a redirect's hop, a retry after its body
    /// failed): its first attempt is no new request for the budget.
    continued: bool,
    last: Option<Cause>,
    events: EventQueue,
    /// Recent latencies and the hedge-rate cap, shared by the client's calls.
    latency: Option<LatencyRef<'p>>,
    /// The policy hedges and this request may be sent twice at once.
    hedgeable: bool,
    /// When the next hedge may go out ([`Instant::MAX`]: none).
    hedge_at: Instant,
    /// The attempts out at once, from the first hedge on.
    flight: Option<alloc::boxed::Box<Flight>>,
    /// The limiters every attempt asks after the breaker, in order.
    limiters: Option<LimitersRef<'p>>,
    /// What they granted the attempt being admitted or out, and the ticket of its wait.
    /// Boxed on the first ask: a machine without limiters stays small.
    held: Held,
    /// The per-request seed; expanded into `rng` the first time a delay needs randomness.
    seed: u64,
    rng: Option<R>,
}

impl<R> fmt::Debug for RetryMachine<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryMachine")
            .field("now", &self.now)
            .field("deadline", &self.deadline)
            .field("phase", &self.phase)
            .field("attempts", &self.attempts)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl<'p> RetryMachine<'p> {
    /// A machine for one request under `policy`, starting at `now`, with the default
    /// ChaCha8 jitter RNG seeded from `seed` (draw it from the driver's RNG per request).
    pub fn new(
        policy: &'p RetryPolicy,
        request: RequestInfo,
        now: Instant,
        seed: u64,
    ) -> RetryMachine<'p> {
        RetryMachine::with_rng(policy, request, now, seed)
    }
}

impl<'p, R: Rng + SeedableRng> RetryMachine<'p, R> {
    /// Like [`RetryMachine::new`] with a jitter RNG of your choice.
    pub fn with_rng(
        policy: &'p RetryPolicy,
        request: RequestInfo,
        now: Instant,
        seed: u64,
    ) -> Self {
        RetryMachine {
            policy,
            breaker: None,
            #[cfg(target_has_atomic = "64")]
            gate: None,
            budget: None,
            now,
            deadline: now.saturating_add(Duration::from_nanos(policy.total_timeout)),
            phase: Phase::Ready,
            at: now,
            delay: 0,
            detail: NO_RETRY_AFTER,
            took: 0,
            permit: None,
            kind_retries: [0; 4],
            opened_by: None,
            attempts: 0,
            request,
            continued: false,
            last: None,
            events: EventQueue::default(),
            latency: None,
            hedgeable: policy.hedging.is_some()
                && request.body_replayable
                && (request.method.is_idempotent()
                    || request.has_idempotency_key
                    || policy.retry_non_idempotent),
            hedge_at: Instant::MAX,
            flight: None,
            limiters: None,
            held: Held::default(),
            seed,
            rng: None,
        }
    }

    /// Consults this shared circuit breaker before every attempt and reports every outcome
    /// to it. A retry the breaker would still refuse when its backoff ends (it is open until
    /// later, or isolated) is not waited for: the call gives up at once with
    /// [`GiveUpReason::CircuitOpen`]. Set it before the first [`poll_action`](Self::poll_action).
    pub fn with_breaker(mut self, breaker: &'p (dyn Shared<CircuitBreaker> + Sync)) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The gate ([`CircuitBreaker::gate`]) of the breaker given to
    /// [`with_breaker`](Self::with_breaker): while that breaker is closed and quiet, permits
    /// and successes skip its lock. A gate of any other breaker would admit calls that breaker
    /// never saw.
    #[cfg(target_has_atomic = "64")]
    pub fn with_breaker_gate(mut self, gate: &'p crate::breaker::BreakerGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Feeds this shared latency sketch (successes' and timeouts' latencies, requests,
    /// hedges) and takes from it the adaptive hedge delay and the hedge-rate cap. Without
    /// one, an adaptive delay falls back to its fallback and hedges are not capped.
    pub fn with_latency(mut self, sketch: &'p (dyn Shared<LatencySketch> + Sync)) -> Self {
        self.latency = Some(sketch);
        self
    }

    /// Whether this call hedges: the policy does and the request may be sent twice at once.
    pub fn hedges(&self) -> bool {
        self.hedgeable
    }

    /// When the next hedge may go out, if one may ([`Instant::MAX`] when none is due): a
    /// driver that sends one attempt at a time can wait for the first of its answer and this
    /// instant, and only then run the attempts side by side.
    pub fn next_hedge(&self) -> Instant {
        self.hedge_at
    }

    /// Attempts out now, waiting for an answer.
    pub fn attempts_out(&self) -> usize {
        match (&self.flight, self.phase) {
            (Some(flight), _) => flight.len(),
            (None, Phase::InFlight) => 1,
            (None, _) => 0,
        }
    }

    /// Whether `attempt` is out, waiting for an answer (an answer for any other is ignored).
    pub fn is_out(&self, attempt: Attempt) -> bool {
        match (&self.flight, self.phase) {
            (Some(flight), Phase::InFlight) => flight
                .out
                .iter()
                .flatten()
                .any(|o| o.attempt == attempt.number()),
            (None, Phase::InFlight) => attempt.number() == self.attempts,
            _ => false,
        }
    }

    /// Asks these shared limiters, in order, before every attempt (after the breaker), and
    /// tells each how every attempt ended, following the [`Admission`](crate::Admission) protocol: a limiter's
    /// wait becomes an [`Action::Sleep`] (with [`Event::LimiterWait`]), its refusal a
    /// [`GiveUpReason::RejectedLocally`] before anything is sent; a hedge a limiter would delay
    /// or refuse is not sent and the call stops hedging. No wait ends past the deadline or
    /// the policy's `max_wait`. Order them as the protocol says: limiters that only refuse
    /// ([`AdaptiveThrottle`](crate::AdaptiveThrottle), [`QuotaPacer`](crate::QuotaPacer)),
    /// then rate limiters, then a [`ConcurrencyLimiter`](crate::ConcurrencyLimiter); at most
    /// [`MAX_LIMITERS`](crate::MAX_LIMITERS) are asked.
    ///
    /// Back pressure goes to the limiters and not to the breaker: a 429 or a response with
    /// `Retry-After` never counts as a breaker failure (with or without limiters), and with
    /// limiters a bare 503 does not either (the server answered; the limiters slow the
    /// client down instead), unless the policy says
    /// [`back_pressure_trips_breaker`](crate::RetryPolicyBuilder::back_pressure_trips_breaker).
    /// Timeouts and transport errors count as before. The retry budget and the retry
    /// schedule see every outcome as without limiters.
    ///
    /// A queued [`ConcurrencyLimiter`](crate::ConcurrencyLimiter) caller sleeps until its
    /// queue timeout: the machine has no way to be woken when a slot is handed over early
    /// (the [`Wake`](crate::Wake)s the limiters return are not acted on), so give a limiter
    /// the machine asks no queue.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use resil_core::{
    ///     Action, Admission, GiveUpReason, Instant, LocalRejection, Method, RateLimiter,
    ///     RequestInfo, RetryMachine, RetryPolicy, Shared,
    /// };
    ///
    /// let policy = RetryPolicy::default();
    /// let limiter = Mutex::new(RateLimiter::builder().rate(1.0).burst(1).build()?);
    /// let limiters: [&(dyn Shared<dyn Admission + Send> + Sync); 1] = [&limiter];
    /// let now = Instant::ZERO;
    /// let get = RequestInfo::new(Method::Get);
    /// let mut first = RetryMachine::new(&policy, get, now, 1).with_limiters(&limiters);
    /// assert!(matches!(first.poll_action(), Action::Send { .. }));
    /// // The next call may start a second later: it sleeps first.
    /// let mut second = RetryMachine::new(&policy, get, now, 2).with_limiters(&limiters);
    /// assert_eq!(second.poll_action(), Action::Sleep { until: Instant::from_secs(1) });
    /// # Ok::<(), resil_core::PolicyError>(())
    /// ```
    pub fn with_limiters<L: Limiters + Sync>(mut self, limiters: &'p L) -> Self {
        // An empty list costs nothing: the machine runs as without limiters.
        self.limiters = (limiters.count() > 0).then_some(limiters as LimitersRef<'p>);
        self
    }

    /// The limiters, or none.
    #[inline]
    fn limiters(&self) -> LimitersRef<'p> {
        self.limiters.unwrap_or(&NO_LIMITERS)
    }

    /// Deposits first attempts in, and asks before every retry of, this shared budget.
    pub fn with_budget(mut self, budget: &'p (dyn Shared<RetryBudget> + Sync)) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Marks the request as begun by an earlier machine (a redirect's next hop, or a retry
    /// after a response body failed): its attempts are no new request for the budget, which
    /// was paid when the request began.
    pub fn continuing(mut self) -> Self {
        self.continued = true;
        self
    }

    /// Starts as if attempt number `attempts` (of the request this continues) had just
    /// failed with `kind`: for a response whose head came but whose body failed while it was
    /// read. The machine then does what it does after any failed attempt: schedules a retry
    /// if the policy, the request's method and body, the attempts left, the deadline and the
    /// budget allow it, or gives up. The breaker heard that attempt's head as its outcome and
    /// is not told again. Set the deadline and [`continuing`](Self::continuing) first.
    pub fn after_body_failure(mut self, attempts: u32, kind: TransportErrorKind) -> Self {
        self.attempts = attempts.max(1);
        self.phase = Phase::InFlight;
        self.at = self.now;
        self.finish_attempt(AttemptOutcome::Error(kind));
        self
    }

    /// Ends the request by `deadline` if that comes before its own total timeout: for a
    /// request that continues one begun earlier, such as a redirect's next hop, whose
    /// deadline covers the whole chain.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = self.deadline.min(deadline);
        self
    }

    /// Attempts sent so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The policy the machine runs under.
    pub fn policy(&self) -> &'p RetryPolicy {
        self.policy
    }

    /// The request, as the machine judges it.
    pub fn request(&self) -> RequestInfo {
        self.request
    }

    /// The latest instant an input brought (or the start).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The total deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the machine reached `Done` or `Fail`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed(_))
    }

    /// Feeds one input at `now`. Inputs for other attempts, early timers and anything after a
    /// terminal action are ignored; `now` earlier than a previous one is clamped.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        if self.flight.is_some() {
            return self.handle_hedged(input);
        }
        let current = Attempt::new(self.attempts);
        match (self.phase, input) {
            (Phase::InFlight, Input::Response { attempt, head }) if attempt == current => {
                self.finish_attempt(AttemptOutcome::Response(head));
            }
            (Phase::InFlight, Input::Error { attempt, kind }) if attempt == current => {
                self.finish_attempt(AttemptOutcome::Error(kind));
            }
            (Phase::InFlight, Input::Timer) if self.now >= self.attempt_deadline() => {
                self.finish_attempt(AttemptOutcome::Error(TransportErrorKind::Timeout));
            }
            (Phase::Backoff | Phase::Admitting, Input::Timer) if self.now >= self.at => {
                self.phase = Phase::Ready;
            }
            _ => {}
        }
    }

    /// The next action. `Send` is emitted once per attempt; asking again is always safe.
    pub fn poll_action(&mut self) -> Action {
        if let Some(flight) = self.flight.as_deref_mut() {
            if let Some((attempt, lost)) = flight.next_cancel() {
                let transition = u16::from(lost);
                self.events.push(EV_CANCELLED, transition, attempt);
                return Action::Cancel {
                    attempt: Attempt::new(attempt),
                };
            }
            if flight.len() == 0 && !matches!(self.phase, Phase::Done | Phase::Failed(_)) {
                // Nothing out and nothing to cancel: one attempt at a time again.
                self.flight = None;
            }
        }
        match self.phase {
            Phase::Ready if self.attempts > 0 && self.now >= self.deadline => {
                self.fail(Reason::DeadlineExceeded, 0);
                self.poll_action()
            }
            Phase::Ready => match self.acquire_permit() {
                Err(rejected) => {
                    self.opened_by = rejected.opened_by;
                    self.fail(Reason::CircuitOpen, rejected.until.as_nanos());
                    self.poll_action()
                }
                Ok(()) => {
                    if self.limiters.is_some() {
                        if let Some(action) = self.admit() {
                            return action;
                        }
                    }
                    self.attempts += 1;
                    self.phase = Phase::InFlight;
                    self.at = self.now;
                    self.events.push(EV_STARTED, 0, self.attempts);
                    if self.hedgeable {
                        self.schedule_hedge();
                    }
                    Action::Send {
                        attempt: Attempt::new(self.attempts),
                        deadline: self.attempt_deadline(),
                    }
                }
            },
            Phase::InFlight if self.now >= self.hedge_at => match self.try_hedge() {
                Some(send) => send,
                None => self.poll_action(),
            },
            Phase::InFlight if self.flight.is_some() => Action::Sleep {
                until: self.next_wake(),
            },
            Phase::InFlight => Action::Sleep {
                until: self.attempt_deadline().min(self.hedge_at),
            },
            Phase::Backoff | Phase::Admitting => Action::Sleep { until: self.at },
            Phase::Done => Action::Done {
                attempt: Attempt::new(self.flight.as_ref().map_or(self.attempts, |f| f.winner)),
            },
            Phase::Failed(reason) => Action::Fail(self.give_up(reason)),
        }
    }

    /// The next observation, oldest first; poll until `None` after every
    /// [`handle_input`](Self::handle_input) and [`poll_action`](Self::poll_action).
    // Out of line: inlined into the drivers' polling loop, it cost ~45 more instructions
    // per call (callgrind, tokio_loopback).
    #[inline(never)]
    pub fn poll_event(&mut self) -> Option<Event> {
        let (kind, transition, attempt) = self.events.pop(self.attempts)?;
        let attempt = Attempt::new(attempt);
        Some(match kind {
            EV_STARTED => Event::AttemptStarted {
                attempt,
                at: self.now,
            },
            EV_RETRY => Event::RetryScheduled {
                after: attempt,
                cause: self.last?,
                delay: Duration::from_nanos(self.delay),
                retry_after: (self.detail != NO_RETRY_AFTER)
                    .then(|| Duration::from_nanos(self.detail)),
                attempt_duration: Duration::from_nanos(self.took),
            },
            EV_COMPLETED if transition & 1 == 1 => Event::HedgeWon { attempt },
            EV_COMPLETED => match self.last? {
                Cause::Status(status) => Event::Completed { attempt, status },
                Cause::Error(_) => return self.poll_event(),
            },
            EV_HEDGE => Event::HedgeSent { attempt },
            EV_CANCELLED => Event::Cancelled {
                attempt,
                lost: transition & 1 == 1,
            },
            EV_GAVE_UP => match self.phase {
                Phase::Failed(reason) => Event::GaveUp(self.give_up(reason)),
                _ => return self.poll_event(),
            },
            EV_LIMITER_WAIT => {
                let (from, until) = self.held.wait().unwrap_or((self.now, self.now));
                Event::LimiterWait {
                    attempt: Attempt::new(attempt.number().saturating_add(1)),
                    until,
                    wait: until.saturating_duration_since(from),
                }
            }
            _ => Event::Breaker(Transition {
                from: state_from_code(transition >> 2),
                to: state_from_code(transition),
                at: self.now,
                enforced: transition & 0x10 != 0,
            }),
        })
    }

    /// Records the in-flight attempt's outcome and decides what comes next.
    fn finish_attempt(&mut self, outcome: AttemptOutcome<'_>) {
        let failure = self.policy.is_failure(&outcome);
        let mut rejects_until = None;
        let mut opened_by = None;
        let sent = self.at;
        self.took = self.now.as_nanos().saturating_sub(sent.as_nanos());
        if self.held.grants.any() {
            let cut_short = self.took < self.policy.attempt_timeout;
            let limiters = self.limiters.unwrap_or(&NO_LIMITERS);
            self.held
                .grants
                .record(limiters, self.now, &outcome, cut_short);
        }
        let breaker_failure = failure && !self.spares_breaker(&outcome);
        if let Some(held) = self
            .permit
            .take()
            .filter(|p| breaker_failure || !self.quiet_for(*p))
        {
            let call = if breaker_failure {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            };
            let cause = outcome.cause();
            self.with_breaker_mut(|b, now| {
                b.record_with_cause(now, held.permit(sent), call, cause);
                rejects_until = b.rejects_until();
                opened_by = b.opened_by();
            });
            self.opened_by = opened_by;
        }
        // The call's deposit waits for its first outcome, so one lock covers both; no retry
        // of this call can come sooner; a request begun by an earlier machine paid it then.
        // A later attempt tells the budget what the retry before it was for (a retry quota
        // gives back that retry's cost on success).
        let first = self.attempts == 1 && !self.continued;
        let retried_after = if self.attempts == 1 { None } else { self.last };
        self.with_budget_mut(|b, now| match (first, retried_after) {
            (true, _) => b.record_attempt(now, None, failure),
            (false, Some(cause)) => b.record_attempt(now, Some(cause), failure),
            (false, None) => b.record_outcome(failure),
        });
        self.last = Some(outcome.cause());
        let ctx = RetryContext {
            attempt: Attempt::new(self.attempts),
            method: self.request.method,
            outcome,
        };
        match self.policy.classify(&ctx) {
            Classification::Final => {
                self.phase = Phase::Done;
                self.events.push(EV_COMPLETED, 0, self.attempts);
            }
            Classification::Fatal => self.fail(Reason::NotRetryable, 0),
            Classification::Retryable => {
                self.schedule_retry(&outcome, rejects_until, self.attempts);
            }
        }
        if self.hedgeable {
            let ends = matches!(self.phase, Phase::Done | Phase::Failed(_));
            self.record_latency(&outcome, failure, ends);
        }
    }

    /// `rejects_until`: until when the breaker, as this attempt left it, refuses every call.
    /// The policy's backoff before the next attempt, at most `max_wait`.
    fn backoff_delay(&mut self) -> u64 {
        let retry = self.attempts - 1;
        let previous = self.delay;
        let schedule = self.policy.schedule;
        let computed = if schedule.is_random() {
            schedule.delay_nanos(retry, previous, self.rng())
        } else {
            schedule.delay_nanos(retry, previous, &mut NoRandomness)
        };
        computed.min(self.policy.max_wait)
    }

    /// `after`: the attempt that failed.
    fn schedule_retry(
        &mut self,
        outcome: &AttemptOutcome<'_>,
        rejects_until: Option<Instant>,
        after: u32,
    ) {
        if !self.policy.may_replay(&self.request, outcome) {
            return self.fail(Reason::NonIdempotent, 0);
        }
        if !self.request.body_replayable {
            return self.fail(Reason::BodyNotReplayable, 0);
        }
        if self.attempts >= self.policy.max_attempts {
            return self.fail(Reason::AttemptsExhausted, 0);
        }
        let cause = outcome.cause();
        let kind = RetryKind::of(cause).index();
        let limit = self.policy.kind_limits[kind];
        if limit != NO_LIMIT && u16::from(self.kind_retries[kind]) >= limit {
            return self.fail(Reason::KindExhausted, kind as u64);
        }
        let server_ask = match outcome {
            AttemptOutcome::Response(head) if self.policy.respect_retry_after => head
                .retry_after
                .and_then(|ra| ra.delay(head.wall_clock))
                .map(duration_to_nanos),
            AttemptOutcome::Response(_) | AttemptOutcome::Error(_) => None,
        };
        let (wait, honoured) = match server_ask {
            Some(asked) => {
                let limit = self.policy.max_retry_after.min(self.policy.max_wait);
                let asked = if asked <= limit {
                    asked
                } else if self.policy.clamp_retry_after {
                    limit
                } else {
                    return self.fail(Reason::RetryAfterTooLong, asked);
                };
                let spread = scale(asked, self.policy.retry_after_spread);
                let extra = if spread == 0 {
                    0
                } else {
                    uniform(self.rng(), spread)
                };
                let server = asked.saturating_add(extra).min(limit.max(asked));
                // The ask is a floor: a server that always says 0 still gets the backoff.
                let wait = if self.policy.retry_after_exact {
                    server
                } else {
                    server.max(self.backoff_delay())
                };
                (wait, asked)
            }
            None => (self.backoff_delay(), NO_RETRY_AFTER),
        };
        let wait = match self.policy.delay_fn {
            None => wait,
            Some(f) => self.chosen_delay(f, cause, wait, honoured),
        };
        let wake = self.now.saturating_add(Duration::from_nanos(wait));
        if wake >= self.deadline {
            return self.fail(Reason::DeadlineExceeded, 0);
        }
        // The breaker would refuse this retry when it wakes: give up now rather than wait
        // for the refusal (and announce, count and pay budget for a retry never sent).
        if let Some(until) = rejects_until.filter(|&until| wake < until) {
            return self.fail(Reason::CircuitOpen, until.as_nanos());
        }
        let mut granted = true;
        self.with_budget_mut(|b, now| granted = b.try_withdraw_after(now, cause));
        if !granted {
            return self.fail(Reason::BudgetExhausted, 0);
        }
        self.kind_retries[kind] = self.kind_retries[kind].saturating_add(1);
        self.delay = wait;
        self.detail = honoured;
        self.events.push(EV_RETRY, 0, after);
        if wait == 0 {
            self.phase = Phase::Ready;
        } else {
            self.phase = Phase::Backoff;
            self.at = wake;
        }
    }

    /// The wait the policy's delay function chooses, bounded as any wait: at most `max_delay`
    /// and `max_wait`; after a `Retry-After` (`honoured`), from the server's ask up to
    /// `max_retry_after`. `own` is the policy's own choice.
    #[cold]
    fn chosen_delay(
        &self,
        f: crate::policy::DelayFn,
        cause: Cause,
        own: u64,
        honoured: u64,
    ) -> u64 {
        let ctx = DelayContext {
            attempt: Attempt::new(self.attempts),
            cause,
            retry_after: (honoured != NO_RETRY_AFTER).then(|| Duration::from_nanos(honoured)),
            policy_delay: Duration::from_nanos(own),
        };
        let Some(chosen) = f(&ctx).map(duration_to_nanos) else {
            return own;
        };
        if honoured == NO_RETRY_AFTER {
            chosen
                .min(self.policy.schedule.cap_nanos())
                .min(self.policy.max_wait)
        } else {
            let limit = self.policy.max_retry_after.min(self.policy.max_wait);
            chosen.min(limit).max(honoured)
        }
    }

    /// When the attempt in flight is abandoned: its timeout after it was sent, and never past
    /// the total deadline.
    fn attempt_deadline(&self) -> Instant {
        self.at
            .saturating_add(Duration::from_nanos(self.policy.attempt_timeout))
            .min(self.deadline)
    }

    fn fail(&mut self, reason: Reason, detail: u64) {
        if self.held.holds() {
            let limiters = self.limiters.unwrap_or(&NO_LIMITERS);
            self.held.abandon(limiters, self.now);
        }
        self.phase = Phase::Failed(reason);
        self.at = Instant::from_nanos(detail);
        self.events.push(EV_GAVE_UP, 0, self.attempts);
    }

    fn give_up(&self, reason: Reason) -> GiveUp {
        let detail = self.at.as_nanos();
        let reason = match reason {
            Reason::AttemptsExhausted => GiveUpReason::AttemptsExhausted,
            Reason::KindExhausted => GiveUpReason::KindExhausted {
                kind: RetryKind::ALL[(detail as usize).min(3)],
            },
            Reason::DeadlineExceeded => GiveUpReason::DeadlineExceeded,
            Reason::RetryAfterTooLong => GiveUpReason::RetryAfterTooLong {
                requested: Duration::from_nanos(detail),
            },
            Reason::NotRetryable => GiveUpReason::NotRetryable,
            Reason::NonIdempotent => GiveUpReason::NonIdempotent,
            Reason::BodyNotReplayable => GiveUpReason::BodyNotReplayable,
            Reason::BudgetExhausted => GiveUpReason::BudgetExhausted,
            Reason::CircuitOpen => GiveUpReason::CircuitOpen {
                until: Instant::from_nanos(detail),
                opened_by: self.opened_by,
            },
            Reason::RejectedLocally => match self.held.rejected() {
                Some(why) => GiveUpReason::RejectedLocally(why),
                None => GiveUpReason::NotRetryable,
            },
        };
        GiveUp {
            reason,
            attempts: self.attempts,
            last: self.last,
        }
    }

    /// Takes a breaker permit for the next attempt; `Err` when rejected.
    fn acquire_permit(&mut self) -> Result<(), Rejected> {
        let Some(breaker) = self.breaker else {
            return Ok(());
        };
        let now = self.now;
        #[cfg(target_has_atomic = "64")]
        if let Some(generation) = self.gate.and_then(|g| g.quiet_generation()) {
            self.permit = Some(HeldPermit::closed(generation));
            return Ok(());
        }
        let mut result = None;
        let mut transitions = [None; 2];
        breaker.with_mut(&mut |b| {
            result = Some(b.try_acquire(now));
            drain_transitions(b, &mut transitions);
        });
        self.note_transitions(transitions);
        match result {
            Some(Ok(permit)) => {
                self.permit = Some(permit.hold());
                Ok(())
            }
            Some(Err(rejected)) => Err(rejected),
            // A `Shared` impl that never ran the closure: treat the breaker as unreachable
            // rather than calling without its permission.
            None => Err(Rejected {
                until: now,
                opened_by: None,
            }),
        }
    }

    /// Asks the limiters to admit the next attempt; `None` when they all did (send it).
    #[inline(never)]
    fn admit(&mut self) -> Option<Action> {
        let kind = match (self.attempts, self.last) {
            (0, _) => AttemptKind::First,
            (_, Some(Cause::Error(TransportErrorKind::Timeout))) => AttemptKind::RetryAfterTimeout,
            _ => AttemptKind::Retry,
        };
        let now = self.now;
        // The attempt must be able to start before the deadline, within `max_wait`.
        let not_after = Instant::from_nanos(self.deadline.as_nanos().saturating_sub(1))
            .min(now.saturating_add(Duration::from_nanos(self.policy.max_wait)));
        let ask = Ask::new(kind).not_after(not_after);
        match self.held.admit(self.limiters(), now, ask, true) {
            Gate::Open => None,
            Gate::Wait(until) => {
                // A half-open breaker's probe is not held through the wait; it is asked again.
                self.release_permit();
                self.phase = Phase::Admitting;
                self.at = until;
                // The attempt before the one that waits (events store attempts made).
                self.events.push(EV_LIMITER_WAIT, 0, self.attempts);
                Some(Action::Sleep { until })
            }
            Gate::Rejected(why) => {
                self.held.set_rejected(why);
                self.release_permit();
                self.fail(Reason::RejectedLocally, 0);
                Some(self.poll_action())
            }
        }
    }

    /// Hands the breaker permit taken for an attempt never sent back.
    fn release_permit(&mut self) {
        if let (Some(held), Some(breaker)) = (self.permit.take(), self.breaker) {
            let permit = held.permit(self.now);
            breaker.with_mut(&mut |b| b.release(permit));
        }
    }

    /// Whether the breaker does not count `outcome` as a failure although the policy's
    /// statuses say so: back pressure (the server answered), for the limiters and the retry
    /// schedule instead. A 429 or any response with `Retry-After` always; a bare 503 only
    /// when limiters take it (without them it may be a backend that fails).
    #[inline(never)]
    fn spares_breaker(&self, outcome: &AttemptOutcome<'_>) -> bool {
        match outcome {
            _ if self.policy.back_pressure_trips_breaker => false,
            AttemptOutcome::Response(head) => {
                head.status == 429
                    || head.retry_after.is_some()
                    || (head.status == 503 && self.limiters.is_some())
            }
            AttemptOutcome::Error(_) => false,
        }
    }

    /// Whether the breaker is quiet in `permit`'s generation, so a success under it would
    /// change nothing.
    fn quiet_for(&self, permit: HeldPermit) -> bool {
        #[cfg(target_has_atomic = "64")]
        if let Some(gate) = self.gate {
            return !permit.is_probe() && gate.quiet_generation() == Some(permit.generation());
        }
        let _ = permit;
        false
    }

    fn with_breaker_mut(&mut self, mut f: impl FnMut(&mut CircuitBreaker, Instant)) {
        let Some(breaker) = self.breaker else { return };
        let now = self.now;
        let mut transitions = [None; 2];
        breaker.with_mut(&mut |b| {
            f(b, now);
            drain_transitions(b, &mut transitions);
        });
        self.note_transitions(transitions);
    }

    fn with_budget_mut(&mut self, mut f: impl FnMut(&mut RetryBudget, Instant)) {
        if let Some(budget) = self.budget {
            let now = self.now;
            budget.with_mut(&mut |b| f(b, now));
        }
    }

    fn note_transitions(&mut self, transitions: [Option<Transition>; 2]) {
        for t in transitions.into_iter().flatten() {
            let enforced = if t.enforced { 0x10 } else { 0 };
            let transition = enforced | state_code(t.from) << 2 | state_code(t.to);
            self.events.push(EV_BREAKER, transition, self.attempts);
        }
    }

    fn rng(&mut self) -> &mut R {
        let seed = self.seed;
        self.rng.get_or_insert_with(|| R::seed_from_u64(seed))
    }
}

/// Hedging: several attempts out at once. Apart from the rest so a call that never hedges
/// runs none of it (it costs such a call a flag test per input and per action).
impl<'p, R: Rng + SeedableRng> RetryMachine<'p, R> {
    /// Sets when the next hedge may go out, the attempt just sent being the latest.
    fn schedule_hedge(&mut self) {
        let Some(hedging) = self.policy.hedging else {
            return;
        };
        if self.flight.as_ref().is_some_and(|f| f.stopped) {
            self.hedge_at = Instant::MAX;
            return;
        }
        let now = self.now;
        let mut sketch = None;
        if let Some(latency) = self.latency {
            latency.with_mut(&mut |l| sketch = l.current_hedge_delay(now));
        }
        self.hedge_at = match hedging.delay_nanos(sketch) {
            Some(delay) => now.saturating_add(Duration::from_nanos(delay)),
            None => Instant::MAX,
        };
    }

    /// Sends a hedge if the policy, the deadline, the hedge-rate cap, the breaker and the
    /// budget all allow one; otherwise stops hedging for this call (`None`).
    fn try_hedge(&mut self) -> Option<Action> {
        let max_in_flight = self
            .policy
            .hedging
            .map_or(1, |h| usize::from(h.max_in_flight));
        let out = self.flight.as_ref().map_or(1, |f| f.len());
        let stopped = self.flight.as_ref().is_some_and(|f| f.stopped);
        let now = self.now;
        if out >= max_in_flight {
            // Full: the next hedge waits for an attempt to fail.
            self.hedge_at = Instant::MAX;
            return None;
        }
        if stopped || self.attempts >= self.policy.max_attempts || now >= self.deadline {
            return self.stop_hedging();
        }
        if let Some(latency) = self.latency {
            let mut allowed = false;
            latency.with_mut(&mut |l| allowed = l.try_hedge(now));
            if !allowed {
                return self.stop_hedging();
            }
        }
        // The attempt out so far moves into the flight; the hedge becomes the latest.
        let flight = self.flight.get_or_insert_with(Default::default);
        if flight.len() == 0 {
            flight.add(Out {
                attempt: self.attempts,
                sent: self.at,
                permit: self.permit.take(),
                hedge: false,
                grants: self.held.grants.take(),
            });
        }
        if self.acquire_permit().is_err() {
            return self.stop_hedging();
        }
        if self.limiters.is_some() {
            // A hedge goes only if every limiter admits it at once.
            let ask = Ask::new(AttemptKind::Hedge).not_after(now);
            if self.held.admit(self.limiters(), now, ask, false) != Gate::Open {
                self.release_permit();
                return self.stop_hedging();
            }
        }
        let mut granted = true;
        self.with_budget_mut(|b, now| granted = b.try_withdraw(now));
        if !granted {
            self.release_permit();
            let limiters = self.limiters();
            self.held.grants.release(limiters, now);
            return self.stop_hedging();
        }
        self.attempts += 1;
        self.at = now;
        let hedge = Out {
            attempt: self.attempts,
            sent: now,
            permit: self.permit.take(),
            hedge: true,
            grants: self.held.grants.take(),
        };
        if let Some(flight) = self.flight.as_deref_mut() {
            flight.add(hedge);
        }
        self.events.push(EV_STARTED, 0, self.attempts);
        self.events.push(EV_HEDGE, 0, self.attempts);
        self.schedule_hedge();
        Some(Action::Send {
            attempt: Attempt::new(self.attempts),
            deadline: self.attempt_deadline(),
        })
    }

    /// No more hedges in this call.
    fn stop_hedging(&mut self) -> Option<Action> {
        self.hedge_at = Instant::MAX;
        if let Some(flight) = self.flight.as_deref_mut() {
            flight.stopped = true;
        }
        None
    }

    /// When the machine must next be woken while attempts are out: the earliest deadline of
    /// those out, or the next hedge.
    fn next_wake(&self) -> Instant {
        let timeout = Duration::from_nanos(self.policy.attempt_timeout);
        let earliest = self.flight.as_ref().and_then(|f| {
            f.out
                .iter()
                .flatten()
                .map(|o| o.sent.saturating_add(timeout))
                .min()
        });
        earliest
            .unwrap_or(Instant::MAX)
            .min(self.deadline)
            .min(self.hedge_at)
    }

    /// Feeds the sketch a finished attempt: its latency if it was a success or a timeout
    /// (the time it was given), never a fast failure, which would pull the hedge delay down;
    /// and the request, if the attempt ended it (`ends`). One lock either way.
    fn record_latency(&mut self, outcome: &AttemptOutcome<'_>, failure: bool, ends: bool) {
        let timeout = matches!(outcome, AttemptOutcome::Error(TransportErrorKind::Timeout));
        let took = (!failure || timeout).then(|| Duration::from_nanos(self.took));
        let (Some(latency), now) = (self.latency, self.now) else {
            return;
        };
        match (took, ends) {
            (took, true) => latency.with_mut(&mut |l| l.record_call(now, took)),
            (Some(took), false) => latency.with_mut(&mut |l| l.record(now, took)),
            (None, false) => {}
        }
    }

    /// An input while attempts are out at once.
    fn handle_hedged(&mut self, input: Input<'_>) {
        if self.phase != Phase::InFlight {
            return;
        }
        match input {
            Input::Response { attempt, head } => {
                self.finish_out(attempt.number(), AttemptOutcome::Response(head));
            }
            Input::Error { attempt, kind } => {
                self.finish_out(attempt.number(), AttemptOutcome::Error(kind));
            }
            Input::Timer => {
                let timeout = Duration::from_nanos(self.policy.attempt_timeout);
                let (now, deadline) = (self.now, self.deadline);
                let mut expired = [0u32; crate::hedge::MAX_IN_FLIGHT as usize];
                if let Some(flight) = self.flight.as_deref() {
                    for (slot, out) in expired.iter_mut().zip(&flight.out) {
                        if let Some(o) =
                            out.filter(|o| now >= o.sent.saturating_add(timeout).min(deadline))
                        {
                            *slot = o.attempt;
                        }
                    }
                }
                for attempt in expired.into_iter().filter(|&a| a != 0) {
                    if self.phase != Phase::InFlight {
                        break;
                    }
                    if let Some(flight) = self.flight.as_deref_mut() {
                        flight.abandon(attempt, false);
                    }
                    self.finish_out(attempt, AttemptOutcome::Error(TransportErrorKind::Timeout));
                }
            }
        }
    }

    /// Attempt `attempt`'s outcome while attempts are out at once; ignored unless it is out.
    fn finish_out(&mut self, attempt: u32, outcome: AttemptOutcome<'_>) {
        let Some(out) = self.flight.as_deref_mut().and_then(|f| f.take(attempt)) else {
            return;
        };
        let failure = self.policy.is_failure(&outcome);
        // The breaker, the budget and the limiters hear it as any attempt's.
        let mut rejects_until = None;
        self.took = self.now.as_nanos().saturating_sub(out.sent.as_nanos());
        if out.grants.any() {
            let mut grants = out.grants;
            let cut_short = self.took < self.policy.attempt_timeout;
            grants.record(self.limiters(), self.now, &outcome, cut_short);
        }
        let breaker_failure = failure && !self.spares_breaker(&outcome);
        if let Some(held) = out
            .permit
            .filter(|p| breaker_failure || !self.quiet_for(*p))
        {
            let call = if breaker_failure {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            };
            let cause = outcome.cause();
            let mut opened_by = None;
            self.with_breaker_mut(|b, now| {
                b.record_with_cause(now, held.permit(out.sent), call, cause);
                rejects_until = b.rejects_until();
                opened_by = b.opened_by();
            });
            self.opened_by = opened_by;
        }
        // The call's first outcome deposits its request, whichever attempt brings it.
        let first = !self.continued && self.last.is_none();
        self.with_budget_mut(|b, now| {
            if first {
                b.record_attempt(now, None, failure);
            } else {
                b.record_outcome(failure);
            }
        });
        self.last = Some(outcome.cause());
        let ctx = RetryContext {
            attempt: Attempt::new(attempt),
            method: self.request.method,
            outcome,
        };
        match self.policy.classify(&ctx) {
            Classification::Final => {
                self.phase = Phase::Done;
                self.events.push(EV_COMPLETED, 0, attempt);
                if out.hedge {
                    self.events.push(EV_COMPLETED, 1, attempt);
                }
                self.end_flight(attempt);
            }
            Classification::Fatal => {
                self.fail(Reason::NotRetryable, 0);
                self.end_flight(attempt);
            }
            Classification::Retryable if self.flight.as_ref().is_some_and(|f| f.len() > 0) => {
                // Others are still out: the next hedge goes at once, unless the server pushed
                // back or this request may not be sent again.
                let pushback =
                    matches!(outcome, AttemptOutcome::Response(h) if h.retry_after.is_some());
                let stopped = self.flight.as_ref().is_some_and(|f| f.stopped);
                if pushback
                    || !self.policy.may_replay(&self.request, &outcome)
                    || self.attempts >= self.policy.max_attempts
                {
                    self.stop_hedging();
                } else if !stopped {
                    self.hedge_at = self.now;
                }
            }
            Classification::Retryable => {
                // It was the last one out: the call retries as without hedging (the flight
                // goes once its cancellations are polled out).
                self.schedule_retry(&outcome, rejects_until, attempt);
            }
        }
        let ends = matches!(self.phase, Phase::Done | Phase::Failed(_));
        self.record_latency(&outcome, failure, ends);
    }

    /// The call ended with `winner`'s outcome: every other attempt out is cancelled, its
    /// permit handed back (it counts as neither success nor failure), its time so far fed to
    /// the sketch (it ran at least that long).
    fn end_flight(&mut self, winner: u32) {
        self.hedge_at = Instant::MAX;
        let Some(mut flight) = self.flight.take() else {
            return;
        };
        flight.winner = winner;
        let now = self.now;
        let outs = core::mem::take(&mut flight.out);
        for mut out in outs.into_iter().flatten() {
            if let (Some(held), Some(breaker)) = (out.permit, self.breaker) {
                let permit = held.permit(out.sent);
                breaker.with_mut(&mut |b| b.release(permit));
            }
            out.grants.release(self.limiters(), now);
            if let Some(latency) = self.latency {
                let ran = Duration::from_nanos(now.as_nanos().saturating_sub(out.sent.as_nanos()));
                latency.with_mut(&mut |l| l.record(now, ran));
            }
            flight.abandon(out.attempt, true);
        }
        self.flight = Some(flight);
    }
}

impl<R> Drop for RetryMachine<'_, R> {
    /// A machine dropped mid-attempt (a cancelled call) hands its permit back, so a lost
    /// half-open probe frees its slot at once instead of waiting for the probe timeout.
    fn drop(&mut self) {
        if let (Some(held), Some(breaker)) = (self.permit.take(), self.breaker) {
            let permit = held.permit(self.at);
            breaker.with_mut(&mut |b| b.release(permit));
        }
        // Its limiter grants and a wait's place, likewise: a dropped call frees its
        // concurrency slot and gives back a reserved start.
        if self.held.holds() {
            self.held
                .abandon(self.limiters.unwrap_or(&NO_LIMITERS), self.now);
        }
        // A hedging call's attempts still out, likewise.
        if let Some(flight) = self.flight.as_deref_mut() {
            for mut out in flight.out.iter_mut().filter_map(Option::take) {
                if let (Some(held), Some(breaker)) = (out.permit, self.breaker) {
                    let permit = held.permit(out.sent);
                    breaker.with_mut(&mut |b| b.release(permit));
                }
                out.grants
                    .release(self.limiters.unwrap_or(&NO_LIMITERS), self.now);
            }
        }
    }
}

/// Takes the transitions one breaker operation caused; one operation causes at most one,
/// two slots leave room for one left by a caller that does not drain the log.
fn drain_transitions(b: &mut CircuitBreaker, out: &mut [Option<Transition>; 2]) {
    let mut i = 0;
    while let Some(t) = b.poll_transition() {
        out[i.min(1)] = Some(t);
        i += 1;
    }
}

/// Stands in for an RNG when the schedule has no randomness, so the happy path and
/// deterministic schedules never seed one.
struct NoRandomness;

impl rand_core::TryRng for NoRandomness {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        Ok(())
    }
}

#[cfg(all(test, feature = "std"))]
#[allow(clippy::panic)]
mod gate_tests {
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::{Action, Input, RetryMachine};
    use crate::breaker::{BreakerState, CircuitBreaker, TripCondition};
    use crate::policy::{Method, RequestInfo, ResponseHead, RetryPolicy};
    use crate::shared::Shared;
    use crate::time::Instant;

    /// A breaker behind a lock that counts how often it is taken.
    struct CountedLock {
        breaker: Mutex<CircuitBreaker>,
        taken: AtomicUsize,
    }

    impl Shared<CircuitBreaker> for CountedLock {
        fn with_mut(&self, f: &mut dyn FnMut(&mut CircuitBreaker)) {
            self.taken.fetch_add(1, Ordering::SeqCst);
            f(&mut self.breaker.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// One single-attempt call answered with `status`; whether the breaker admitted it.
    fn call(lock: &CountedLock, gated: bool, status: u16, at_secs: u64) -> bool {
        let policy = RetryPolicy::builder()
            .max_attempts(1)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let gate = lock
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gate();
        let now = Instant::from_secs(at_secs);
        let mut machine =
            RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, 1).with_breaker(lock);
        if gated {
            machine = machine.with_breaker_gate(&gate);
        }
        let Action::Send { attempt, .. } = machine.poll_action() else {
            return false;
        };
        let head = ResponseHead::new(status);
        machine.handle_input(now, Input::Response { attempt, head });
        assert!(matches!(
            machine.poll_action(),
            Action::Done { .. } | Action::Fail(_)
        ));
        true
    }

    fn breaker() -> CountedLock {
        CountedLock {
            breaker: Mutex::new(
                CircuitBreaker::builder()
                    .trip(TripCondition::ConsecutiveFailures(3))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
            taken: AtomicUsize::new(0),
        }
    }

    #[test]
    fn a_quiet_closed_breaker_is_not_locked_for_permits_or_successes() {
        let lock = breaker();
        let taken = || lock.taken.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert!(call(&lock, true, 200, 1));
        }
        assert_eq!(taken(), 0, "permits and successes of a quiet breaker");
        assert!(call(&lock, true, 503, 2));
        assert_eq!(taken(), 1, "a failure is recorded under the lock");
        assert!(call(&lock, true, 200, 3));
        assert_eq!(
            taken(),
            3,
            "with a failure counted, the permit and the success lock"
        );
        assert!(call(&lock, true, 200, 4));
        assert_eq!(taken(), 3, "the success cleared the count: quiet again");
        for t in 5..8 {
            assert!(call(&lock, true, 503, t));
        }
        let state = lock.breaker.lock().map(|b| b.state()).ok();
        assert_eq!(state, Some(BreakerState::Open));
        let before = taken();
        assert!(!call(&lock, true, 200, 8), "an open breaker rejects");
        assert_eq!(
            taken(),
            before + 1,
            "the rejection came from under the lock"
        );
    }

    #[test]
    fn the_gate_changes_no_outcome() {
        // Statuses in an order that opens, half-opens, reopens and closes the breaker.
        let statuses = [
            200, 503, 200, 503, 503, 503, 200, 200, 503, 200, 200, 200, 503, 503, 503, 200,
        ];
        let run = |gated: bool| {
            let lock = breaker();
            let mut seen = alloc::vec::Vec::new();
            for (i, status) in statuses.iter().enumerate() {
                // 40 s apart: an open breaker has half-opened by the next call.
                let admitted = call(&lock, gated, *status, 40 * i as u64 + 1);
                let b = lock.breaker.lock().unwrap_or_else(|e| e.into_inner());
                seen.push((admitted, b.state(), b.consecutive_failures()));
            }
            seen
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn a_cloned_breaker_has_a_gate_of_its_own() {
        let mut original = CircuitBreaker::builder()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let copy = original.clone();
        original.isolate(Instant::from_secs(1));
        assert_eq!(original.gate().quiet_generation(), None);
        assert!(copy.gate().quiet_generation().is_some());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod transitions {
    //! The table on [`RetryMachine`], held by a property test.
    use alloc::collections::BTreeSet;
    use core::cell::RefCell;
    use core::time::Duration;
    use std::sync::Mutex;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::{Action, Input, Phase, RetryMachine};
    use crate::attempt::Attempt;
    use crate::backoff::{Backoff, Jitter};
    use crate::breaker::{CircuitBreaker, TripCondition};
    use crate::budget::RetryBudget;
    use crate::policy::{Method, RequestInfo, ResponseHead, RetryPolicy, TransportErrorKind};
    use crate::retry_after::RetryAfter;
    use crate::time::Instant;

    /// What happened to the machine, as the table's "on" column groups it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum On {
        Poll,
        /// The running attempt's response or error, or the timer at the phase's instant.
        Answer,
        /// Any other input.
        Other,
    }

    fn tag(phase: Phase) -> &'static str {
        match phase {
            Phase::Ready => "Ready",
            Phase::InFlight => "InFlight",
            Phase::Backoff => "Backoff",
            Phase::Admitting => "Admitting",
            Phase::Done => "Done",
            Phase::Failed(_) => "Failed",
        }
    }

    /// The table, row by row.
    const TABLE: &[(&str, On, &str)] = &[
        ("Ready", On::Poll, "Failed"),
        ("Ready", On::Poll, "InFlight"),
        ("InFlight", On::Poll, "InFlight"),
        ("InFlight", On::Answer, "Done"),
        ("InFlight", On::Answer, "Failed"),
        ("InFlight", On::Answer, "Ready"),
        ("InFlight", On::Answer, "Backoff"),
        ("InFlight", On::Other, "InFlight"),
        ("Backoff", On::Poll, "Backoff"),
        ("Backoff", On::Answer, "Ready"),
        ("Backoff", On::Other, "Backoff"),
        ("Ready", On::Other, "Ready"),
        ("Done", On::Poll, "Done"),
        ("Done", On::Other, "Done"),
        ("Failed", On::Poll, "Failed"),
        ("Failed", On::Other, "Failed"),
    ];

    /// One random call: the words pick the policy, the request and every step.
    fn run(
        words: &[u64],
        breaker: &Mutex<CircuitBreaker>,
        seen: &mut BTreeSet<(&'static str, On, &'static str)>,
    ) {
        let mut words = words.iter().copied();
        let mut next = move |n: u64| words.next().unwrap_or(0) % n;
        let policy = RetryPolicy::builder()
            .max_attempts(1 + next(4) as u32)
            .backoff(Backoff::Constant(Duration::from_millis(next(2) * 100)))
            .jitter(Jitter::None)
            .attempt_timeout(Some(Duration::from_secs(1)))
            .total_timeout(Some(Duration::from_secs(3)))
            .max_retry_after(Duration::from_secs(2))
            .build()
            .unwrap();
        let method = [Method::Get, Method::Post][next(2) as usize];
        let request = RequestInfo::new(method).body_replayable(next(4) != 0);
        let budget = Mutex::new(RetryBudget::default());
        let own = Mutex::new(
            CircuitBreaker::builder()
                .trip(TripCondition::ConsecutiveFailures(3))
                .build()
                .unwrap(),
        );
        // Now and then the breaker other calls tripped, so some find it open from the start.
        let breaker = if next(5) == 0 { breaker } else { &own };
        let mut now = Instant::from_secs(next(100));
        let mut m = RetryMachine::new(&policy, request, now, 7).with_breaker(breaker);
        if next(3) == 0 {
            m = m.with_budget(&budget);
        }
        for _ in 0..12 {
            let before = m.phase;
            let due = match m.phase {
                Phase::InFlight => m.attempt_deadline(),
                _ => m.at,
            };
            let on = match next(6) {
                0 | 1 => {
                    let _ = m.poll_action();
                    On::Poll
                }
                choice => {
                    now = now + Duration::from_millis(next(4) * 700);
                    let current = Attempt::new(m.attempts);
                    let attempt = if next(8) == 0 {
                        Attempt::new(9)
                    } else {
                        current
                    };
                    let retry_after = [None, Some(&b"1"[..]), Some(&b"5"[..])][next(3) as usize];
                    let status = [200, 404, 429, 503][next(4) as usize];
                    let head = ResponseHead::new(status)
                        .with_retry_after(retry_after.and_then(RetryAfter::parse), None);
                    let input = match choice {
                        2 | 3 => Input::Response { attempt, head },
                        4 => Input::Error {
                            attempt,
                            kind: [TransportErrorKind::Connect, TransportErrorKind::Reset]
                                [next(2) as usize],
                        },
                        _ => Input::Timer,
                    };
                    let answers = match (before, input) {
                        (
                            Phase::InFlight,
                            Input::Response { attempt, .. } | Input::Error { attempt, .. },
                        ) => attempt == current,
                        (Phase::InFlight | Phase::Backoff, Input::Timer) => now.max(m.now) >= due,
                        _ => false,
                    };
                    m.handle_input(now, input);
                    if answers { On::Answer } else { On::Other }
                }
            };
            let row = (tag(before), on, tag(m.phase));
            assert!(
                TABLE.contains(&row),
                "a transition outside the table: {row:?}"
            );
            seen.insert(row);
            while m.poll_event().is_some() {}
            if matches!(m.phase, Phase::Done | Phase::Failed(_)) && next(2) == 0 {
                break;
            }
        }
        let _: Action = m.poll_action();
    }

    #[test]
    fn every_transition_is_in_the_table_and_every_row_happens() {
        let seen = RefCell::new(BTreeSet::new());
        // One breaker shared by some of the calls.
        let breaker = Mutex::new(
            CircuitBreaker::builder()
                .trip(TripCondition::ConsecutiveFailures(2))
                .open_for(Duration::from_secs(30))
                .build()
                .unwrap(),
        );
        let mut runner = TestRunner::new(Config {
            cases: 4000,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(any::<u64>(), 40..80), |words| {
                run(&words, &breaker, &mut seen.borrow_mut());
                Ok(())
            })
            .unwrap();
        let missing: alloc::vec::Vec<_> = TABLE
            .iter()
            .filter(|row| !seen.borrow().contains(row))
            .collect();
        assert!(missing.is_empty(), "rows that never happened: {missing:?}");
    }
}
