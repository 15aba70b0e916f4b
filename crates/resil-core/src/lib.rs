//! # resil-core
//!
//! The decisions behind resilient HTTP calls — retry, backoff and jitter, `Retry-After`,
//! deadlines, circuit breaking and retry budgets — as **sans-IO state machines** in
//! `no_std + alloc` Rust. Core never reads a clock, opens a socket or spawns a thread: time and
//! randomness are inputs, so every behaviour replays bit for bit from a seed on a fake clock.
//! The drivers (`resil-blocking`, `resil-tokio`, `resil-isahc`) only move bytes and keep time.
//!
//! ## The driving loop
//!
//! A [`RetryMachine`] takes inputs with [`handle_input`](RetryMachine::handle_input) and
//! answers [`poll_action`](RetryMachine::poll_action) with one of four actions:
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
//! | [`CircuitBreaker`] | consecutive or ratio trips, slow calls, half-open probes |
//! | [`RetryBudget`] | Finagle ratio budget and gRPC token bucket |
//! | [`Shared`] | the lock through which machines share a breaker or budget |
//!
//! ## Safety rules the machine enforces
//!
//! - GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried. POST, PATCH and other methods only
//!   when the error proves the request never reached the server ([`ErrorKind::reached_server`]),
//!   when it carries an `Idempotency-Key`, or when the policy opts in. A request that may
//!   have been processed is never silently replayed.
//! - `Retry-After` is never shortened; a longer ask than `max_retry_after` (or one past the
//!   deadline) gives up at once and hands back that response.
//! - No sleep ends past the total deadline; a wait of zero is not a sleep at all.
//! - The happy path (first attempt succeeds) never touches the RNG and never allocates.
//!
//! ## Features
//!
//! - `std`: [`UnixTime::now`], [`Shared`] for `std::sync::Mutex`, and what every driver
//!   shares: [`Hooks`], [`Stats`] and the [`Observer`] that feeds them from machine events,
//!   and [`EnvConfig`] (`RESIL_*` variables).
//! - `tracing` (implies `std`): the [`Observer`] also emits `tracing` events (`tracing` is the
//!   ecosystem's standard structured-logging facade).
//! - `http` (implies `std`): glue for the `http` crate — request and response heads in,
//!   base-URL joining, default-header merging, sensitive-header redaction — and the IO-free
//!   half of every client, so the blocking and async drivers share it instead of repeating
//!   it: [`ClientConfig`]/[`ClientCore`] (a client's settings, checked once), [`RequestDraft`]
//!   (a request being built) and [`Call`] (one call's machine, observer, last response and
//!   final result; a driver only sends, drains and waits) with the [`CallError`] it returns.
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

mod backoff;
mod breaker;
mod budget;
#[cfg(feature = "http")]
mod call;
#[cfg(feature = "http")]
mod call_error;
#[cfg(feature = "http")]
mod client_config;
#[cfg(feature = "std")]
mod env;
#[cfg(feature = "http")]
mod http_glue;
#[cfg(feature = "std")]
mod observe;
#[cfg(feature = "http")]
mod origin_breakers;
mod policy;
#[cfg(feature = "http")]
mod proxy;
#[cfg(feature = "http")]
mod request_draft;
mod retry;
mod retry_after;
mod shared;
mod splitmix;
mod time;

pub use backoff::{Backoff, BackoffSchedule, Delays, Jitter};
pub use breaker::{
    BreakerState, CallOutcome, CircuitBreaker, CircuitBreakerBuilder, Permit, Rejected, SlowCalls,
    Transition, TripCondition, Window,
};
pub use budget::RetryBudget;
#[cfg(feature = "http")]
pub use call::{Call, CallBody, CallLabel, CallStep, DRAIN_LIMIT, refresh_credentials};
#[cfg(feature = "http")]
pub use call_error::{CallError, IncompleteBody, TransportError, write_causes};
#[cfg(feature = "http")]
pub use client_config::{ClientConfig, ClientCore, DEFAULT_BODY_LIMIT};
#[cfg(feature = "std")]
pub use env::{EnvConfig, EnvError, TransportEnv, parse_duration};
#[cfg(feature = "http")]
pub use http_glue::{
    AttemptId, ClientErrorKind, SENSITIVE_QUERY_PARAMS, UrlError, attempt_budget, attempt_request,
    auth_error, check_request_headers, check_url, declare_empty_body, fill_host_header,
    form_urlencode, is_sensitive_header, join_url, merge_default_headers, redact_url,
    redact_url_str, redacted_headers, remember_last, request_id, request_info, response_head,
    set_bearer, take_url_credentials, unsendable_request,
};
#[cfg(feature = "std")]
pub use observe::{CallInfo, Hooks, Observer, RetryInfo, RetryReason, Stats, StatsSnapshot};
#[cfg(feature = "http")]
pub use origin_breakers::MAX_ORIGIN_BREAKERS;
pub use policy::{
    AttemptOutcome, DEFAULT_RETRY_STATUSES, ErrorKind, ErrorKinds, HeaderLookup, Method,
    PolicyError, RequestInfo, ResponseHead, RetryContext, RetryPolicy, RetryPolicyBuilder,
    RetryPredicate, StatusSet,
};
#[cfg(feature = "http")]
pub use proxy::{Proxy, check_proxy_url};
#[cfg(feature = "http")]
pub use request_draft::RequestDraft;
pub use retry::{Action, Attempt, Cause, Event, GiveUp, GiveUpReason, Input, RetryMachine};
pub use retry_after::{RetryAfter, parse_http_date};
pub use shared::Shared;
pub use time::{Instant, MAX_TIMEOUT, UnixTime, library_timeout, read_deadline};

/// The RNG crates core builds on, re-exported so drivers and tests use the same versions.
pub mod rand {
    pub use crate::splitmix::{SplitMix64, mix};
    pub use rand_chacha::ChaCha8Rng;
    pub use rand_core::{Rng, SeedableRng};
}
