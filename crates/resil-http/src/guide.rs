//! # Writing a driver
//!
//! A driver makes resil's decisions happen on a real network: it owns a clock, a transport
//! and a way to wait, and nothing else. resil-blocking (ureq, `std::thread::sleep`) and
//! resil-async (any async client behind its `AsyncTransport`, any runtime's timer) are the two
//! in this repository; this page is what they have in common.
//!
//! ## The contract
//!
//! 1. Build a [`ClientConfig`](crate::ClientConfig) from the user's settings, once:
//!    [`build`](crate::ClientConfig::build) (or
//!    [`build_client`](crate::ClientConfig::build_client), which also checks your
//!    transport's settings) checks everything and returns the [`ClientCore`](crate::ClientCore)
//!    every call shares.
//! 2. Per call, finish the request ([`RequestDraft::finish`](crate::RequestDraft::finish) for
//!    a builder, [`ClientCore::prepare_request`](crate::ClientCore::prepare_request) for a
//!    request the user built) and start a [`Call`](crate::Call) with
//!    [`ClientCore::start_call`](crate::ClientCore::start_call).
//! 3. Loop on [`Call::poll_step`](crate::Call::poll_step) and carry out each
//!    [`Step`](crate::Step) as its table says, reporting back through the call's `handle_*`
//!    methods with the time you read from your clock. That loop is the only place a driver
//!    calls into the call; it is a flat `match` with IO in every arm.
//! 4. Return what `Done` or `Fail` hands you.
//!
//! A driver never looks at a status, never computes a wait and never decides to send again:
//! if your loop has an `if status == 503`, it belongs in resil-core. What a driver does
//! decide is how its transport's failures are classified
//! ([`TransportErrorKind`](resil_core::TransportErrorKind): did the request reach the
//! server?), because only it can see that.
//!
//! ## Time and deadlines
//!
//! Pass [`Instant`](resil_core::Instant)s on one monotonic clock, never going back; a fake
//! clock in tests. `Send` names the attempt's deadline: stop waiting for it then (and call
//! [`handle_timeout`](crate::Call::handle_timeout)), and bound the response body's reads by
//! it too. `Sleep` never asks for a wait of zero; do not round one up to your timer's tick.
//!
//! ## Cancellation
//!
//! Dropping a `Call` at any point hands its circuit breaker permit back, so an abandoned
//! call counts as neither success nor failure. An async driver gets that for free by
//! keeping the call inside the future the user drops.
//!
//! ## A whole driver on a fake network
//!
//! Here the "transport" answers 503 then 200 and the clock is a number that jumps: the same
//! loop a real driver runs, with its IO replaced.
//!
//! ```
//! use std::time::Duration;
//!
//! use resil_core::{Backoff, Instant, Jitter, RetryPolicy};
//! use resil_http::{CallBody, ClientConfig, RequestDraft, Step, driver};
//!
//! /// The driver's response body: here nothing to read.
//! #[derive(Debug)]
//! struct NoBody;
//! impl CallBody for NoBody {
//!     fn set_limit(&mut self, _: u64) {}
//! }
//!
//! let mut config = ClientConfig::default();
//! config.policy(
//!     RetryPolicy::builder()
//!         .backoff(Backoff::Constant(Duration::from_millis(100)))
//!         .jitter(Jitter::None)
//!         .build()?,
//! );
//! let core = config.build()?;
//! let draft = RequestDraft::<NoBody>::new(&core, http::Method::GET, "http://127.0.0.1/x");
//! let (mut parts, policy) = draft.finish(&core, Some(0))?;
//!
//! let mut now = Instant::ZERO;
//! let mut answers = [503, 200].into_iter();
//! let mut call = core.start_call(policy.as_deref(), &mut parts, true, false, now);
//! let response = loop {
//!     match call.poll_step(&mut parts) {
//!         Step::Send { attempt, .. } => {
//!             let request = call.request(&parts, ()); // what goes on the wire
//!             assert_eq!(request.uri(), "http://127.0.0.1/x");
//!             now = now + Duration::from_millis(5); // the exchange took 5 ms
//!             let mut response = http::Response::new(NoBody);
//!             *response.status_mut() = http::StatusCode::from_u16(answers.next().unwrap())?;
//!             call.handle_response(now, attempt, response, driver::unix_now);
//!         }
//!         Step::Release(_stale) => {} // drain up to DRAIN_LIMIT bytes, then drop it
//!         Step::Refresh { .. } => call.handle_refreshed(now, false), // no credentials here
//!         Step::ReadPrefix { .. } => call.handle_prefix(now, b""), // no retry_if prefix here
//!         Step::Redirect { .. } => {} // a real driver drops its body when told
//!         Step::Cancel { .. } => {} // a hedging call's loser: a real driver drops it
//!         Step::Sleep { until } => {
//!             now = until; // a real driver sleeps
//!             call.handle_timeout(now);
//!         }
//!         Step::Done(response) => break response,
//!         Step::Fail(error) => return Err(error.into()),
//!     }
//! };
//! assert_eq!(response.status(), 200);
//! assert_eq!(now, Instant::from_millis(110)); // 5 ms, 100 ms of backoff, 5 ms
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A call whose policy hedges ([`Call::hedges`](crate::Call::hedges)) has several attempts
//! out at once: its driver keeps every `Send` out until it answers (fed back with its
//! attempt) or a `Cancel` drops it, and a `Sleep` waits for the first answer or the instant,
//! whichever comes first. resil-async's `drive` and resil-blocking's client each have that
//! loop beside the one-attempt loop above.
