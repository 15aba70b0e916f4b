//! # resil-core
//!
//! The decisions behind resilient HTTP calls — retry, backoff and jitter, `Retry-After`,
//! deadlines, circuit breaking, retry budgets and overload control (rate, concurrency and
//! server-quota limits) — as **sans-IO state machines** in `no_std + alloc` Rust. Core never
//! reads a clock, opens a socket or spawns a thread: time and randomness are inputs, so every
//! behaviour replays bit for bit from a seed on a fake clock.
//! The drivers (`resil-blocking`, `resil-tokio`, `resil-isahc`) only move bytes and keep time.
//!
//! ## The driving loop
//!
//! A [`RetryMachine`] takes inputs with [`handle_input`](RetryMachine::handle_input) and
//! answers [`poll_action`](RetryMachine::poll_action) with one of five actions:
//!
//! 1. Build a [`RetryPolicy`] once; share it.
//! 2. Per request, make a machine with the request's [`RequestInfo`], the current
//!    [`Instant`] and a seed drawn from the driver's RNG.
//! 3. Loop on `poll_action()`:
//!    - [`Action::Send`]: start that attempt; feed its [`Input::Response`] or
//!      [`Input::Error`], or [`Input::Timer`] once its deadline passes.
//!    - [`Action::Sleep`]: wait until the instant, then feed [`Input::Timer`].
//!    - [`Action::Done`]: return that attempt's response.
//!    - [`Action::Fail`]: stop; [`GiveUp`] says why.
//!    - [`Action::Cancel`]: only when the policy hedges ([`Hedging`]): stop that attempt,
//!      which lost to another or ran out of time while others are out.
//! 4. After each call, drain [`poll_event`](RetryMachine::poll_event) for hooks and stats.
//!
//! Here the "server" answers 503, 503 (asking for 2 s via `Retry-After`), then 200, and the
//! clock is a number we jump:
//!
//! ```
//! use core::time::Duration;
//! use resil_core::{
//!     Action, Backoff, Event, Input, Instant, Jitter, Method, RequestInfo, ResponseHead,
//!     RetryAfter, RetryMachine, RetryPolicy,
//! };
//!
//! let policy = RetryPolicy::builder()
//!     .max_attempts(4)
//!     .backoff(Backoff::exponential(Duration::from_millis(100)))
//!     .jitter(Jitter::None)
//!     .retry_after_spread(0.0)
//!     .build()?;
//! let mut now = Instant::ZERO;
//! let mut machine = RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, 42);
//! let mut server = [(503, None), (503, Some(&b"2"[..])), (200, None)].into_iter();
//! let mut log = Vec::new();
//!
//! loop {
//!     match machine.poll_action() {
//!         Action::Send { attempt, .. } => {
//!             let (status, retry_after) = server.next().expect("server script");
//!             let head = ResponseHead::new(status)
//!                 .with_retry_after(retry_after.and_then(RetryAfter::parse), None);
//!             now = now + Duration::from_millis(10); // the call took 10 ms
//!             machine.handle_input(now, Input::Response { attempt, head });
//!         }
//!         Action::Sleep { until } => {
//!             now = until; // a fake clock jumps; a driver would sleep here
//!             machine.handle_input(now, Input::Timer);
//!         }
//!         Action::Done { attempt } => {
//!             log.push(format!("done: {attempt} at {now}"));
//!             break;
//!         }
//!         Action::Fail(give_up) => panic!("{give_up}"),
//!         // Only a hedging policy has attempts to cancel (see `Hedging`).
//!         Action::Cancel { .. } => unreachable!(),
//!     }
//!     while let Some(event) = machine.poll_event() {
//!         if let Event::RetryScheduled { after, cause, delay, .. } = event {
//!             log.push(format!("{after} failed with {cause}; retry in {delay:?}"));
//!         }
//!     }
//! }
//! assert_eq!(log, [
//!     "attempt 1 failed with status 503; retry in 100ms",
//!     "attempt 2 failed with status 503; retry in 2s",
//!     "done: attempt 3 at t+2.13s",
//! ]);
//! # Ok::<(), resil_core::PolicyError>(())
//! ```
//!
//! ## What is in here
//!
//! | item | models |
//! |---|---|
//! | [`RetryPolicy`] | what is retried, backoff, time limits; validated once by its builder |
//! | [`RetryMachine`] | one logical request across attempts |
//! | [`BackoffSchedule`] | constant, linear, exponential, Fibonacci, decorrelated; five jitters |
//! | [`RetryAfter`], [`parse_http_date`] | `Retry-After` seconds and all three HTTP-date forms |
//! | [`CircuitBreaker`] | consecutive or ratio trips, slow calls, count intervals; half-open by probes, by ratio or progressively; metrics-only and disabled modes |
//! | [`RetryBudget`] | Finagle ratio budget, AWS retry quota, gRPC token bucket |
//! | [`LatencySketch`] | recent latencies in fixed memory: adaptive hedge delays and the hedge-rate cap |
//! | [`RedirectPolicy`] | whether a 3xx is followed, with which method, body and credentials |
//! | [`Http1Framing`] | the framing of the responses on one HTTP/1.1 connection, checked |
//! | [`Admission`] | the one shape of every limiter below: acquire, claim, record, release |
//! | [`RateLimiter`] | a static rate with a burst (token bucket); waiting for a token is an action |
//! | [`AdaptiveRateLimiter`] | AWS adaptive mode: throttles cut the rate, successes grow it on a cubic curve |
//! | [`AdaptiveThrottle`] | Google SRE client-side throttling from requests and accepts (K = 2) |
//! | [`ConcurrencyLimiter`] | a bulkhead with a bounded queue; static, AIMD or latency-gradient limit |
//! | [`QuotaPacer`], [`ServerQuota`] | pacing by `RateLimit`/`RateLimit-Policy`, `X-RateLimit-*` and `Retry-After` |
//! | [`Shared`] | the lock through which machines share a breaker, budget, latency sketch or limiter |
//!
//! A [`RetryMachine`] asks its limiters ([`RetryMachine::with_limiters`]) before every attempt,
//! hedges included: a wait is an [`Action::Sleep`] (with [`Event::LimiterWait`]), a refusal a
//! [`GiveUpReason::RejectedLocally`] before anything is sent, and every attempt's outcome is
//! fed back to them. A 429 or a `Retry-After` (and, with limiters, a 503) is back pressure for
//! them, not a failure for the breaker.
//!
//! Coming from Polly, resilience4j, gobreaker, urllib3, tenacity or stamina, backon,
//! reqwest-retry, tower-resilience, gRPC or an AWS SDK? [`coming_from`] maps their options to
//! these.
//!
//! ## Safety rules the machine enforces
//!
//! - GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried. POST, PATCH and other methods only
//!   when the error proves the request never reached the server ([`TransportErrorKind::reached_server`]),
//!   when it carries an `Idempotency-Key`, or when the policy opts in. A request that may
//!   have been processed is never silently replayed.
//! - `Retry-After` is a floor, never shortened: the wait is the longer of the server's ask
//!   (jitter only above it) and the backoff, so `Retry-After: 0` cannot make a tight loop
//!   ([`retry_after_exact`](RetryPolicyBuilder::retry_after_exact) waits just the ask). A
//!   longer ask than `max_retry_after` (or one past the deadline) gives up at once and hands
//!   back that response.
//! - No sleep ends past the total deadline; a wait of zero is not a sleep at all.
//! - The happy path (first attempt succeeds) never touches the RNG and never allocates.
//!
//! ## Features
//!
//! - `std`: [`Shared`] for `std::sync::Mutex`, `Instant::now` (on a process-wide origin,
//!   so every driver in a process agrees on time), and nothing else. Core's decisions never
//!   read a clock, the environment or a process id under any feature; the HTTP half every
//!   client shares (errors, configuration, hooks, the `Call` bookkeeping) is `resil-http`'s.
//!
//! Dependencies: `rand_core` (the RNG trait every Rust RNG implements) and `rand_chacha`
//! (the seeded, portable default jitter RNG; `default-features = false` keeps it `no_std`).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod attempt;
mod backoff;
mod breaker;
mod budget;
pub mod coming_from;
mod error;
mod framing;
mod hedge;
mod latency;
mod limiter;
mod policy;
mod redirect;
mod retry;
mod retry_after;
mod shared;
mod splitmix;
mod time;

pub use attempt::Attempt;
pub use backoff::{Backoff, BackoffSchedule, Delays, Jitter};
#[cfg(target_has_atomic = "64")]
pub use breaker::BreakerGate;
pub use breaker::{
    BreakContext, BreakDurationFn, BreakerMode, BreakerState, CallOutcome, CircuitBreaker,
    CircuitBreakerBuilder, HalfOpen, PROGRESSIVE_STAGES, Permit, Rejected, SlowCalls, Transition,
    TripCondition, Window,
};
pub use budget::{QuotaCosts, RetryBudget};
pub use error::PolicyError;
pub use framing::{FramingError, Http1Framing, MAX_LINE};
pub use hedge::{HedgeDelay, Hedging, MAX_IN_FLIGHT};
pub use latency::{LatencySketch, LatencySketchBuilder};
pub use limiter::{
    AdaptiveRateLimiter, AdaptiveRateLimiterBuilder, AdaptiveThrottle, AdaptiveThrottleBuilder,
    Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter, ConcurrencyLimiterBuilder,
    CurrentLimit, Feedback, Grant, LimitAlgorithm, LimiterRef, Limiters, LocalRejection,
    MAX_LIMITERS, QuotaPacer, QuotaPacerBuilder, QuotaPolicy, QuotaUnit, RateLimitField,
    RateLimitPolicyField, RateLimiter, RateLimiterBuilder, ServerQuota, ServiceLimit, Ticket, Wake,
};
pub use policy::{
    AttemptOutcome, Cause, DelayContext, DelayFn, HeaderLookup, Method, RequestInfo, ResponseHead,
    RetryContext, RetryKind, RetryPolicy, RetryPolicyBuilder, RetryPredicate, StatusSet,
    TransportErrorKind, TransportErrorKinds,
};
pub use redirect::{
    Hop, RedirectDecision, RedirectInput, RedirectPolicy, RedirectRefusal, RedirectTarget,
};
pub use retry::{Action, Event, GiveUp, GiveUpReason, Input, RetryMachine};
pub use retry_after::{RetryAfter, parse_http_date};
pub use shared::Shared;
pub use time::{Instant, UnixTime};

/// The RNG crates core builds on, re-exported so drivers and tests use the same versions.
pub mod rand {
    pub use crate::splitmix::{SplitMix64, mix};
    pub use rand_chacha::ChaCha8Rng;
    pub use rand_core::{Rng, SeedableRng};
}
