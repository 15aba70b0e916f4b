//! The retry machine under an arbitrary policy and arbitrary input sequences, with the
//! invariants asserted on every step; half the runs ask a throttle, a rate limiter and a
//! concurrency limiter before every attempt, and every slot must be back once the machine is
//! gone.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

use resil_core::{
    Action, AdaptiveThrottle, Attempt, Backoff, ConcurrencyLimiter, DelayContext, Input, Instant,
    Jitter, LimiterRef, Method, RateLimiter, RequestInfo, ResponseHead, RetryAfter, RetryKind,
    RetryMachine, RetryPolicy, TransportErrorKind, UnixTime,
};

fn nothing(_: &DelayContext) -> Option<Duration> {
    None
}
fn zero(_: &DelayContext) -> Option<Duration> {
    Some(Duration::ZERO)
}
fn huge(_: &DelayContext) -> Option<Duration> {
    Some(Duration::MAX)
}
fn from_context(ctx: &DelayContext) -> Option<Duration> {
    Some(
        ctx.policy_delay.saturating_mul(ctx.attempt.number()) + ctx.retry_after.unwrap_or_default(),
    )
}

fn duration(u: &mut Unstructured<'_>) -> Duration {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => Duration::ZERO,
        1 => Duration::from_millis(u.int_in_range(0..=60_000u64).unwrap_or(0)),
        2 => Duration::from_nanos(u64::arbitrary(u).unwrap_or(0)),
        _ => Duration::MAX,
    }
}

/// A policy from the fuzzer's bytes, and whether it opted in to replaying non-idempotent
/// requests. `None` when the bytes ran out or the builder rejected them.
fn policy(u: &mut Unstructured<'_>) -> Option<(RetryPolicy, bool)> {
    let base = duration(u);
    let backoff = match u.int_in_range(0..=5u8).ok()? {
        0 => Backoff::Constant(base),
        1 => Backoff::Linear {
            initial: base,
            step: duration(u),
        },
        2 => Backoff::exponential(base),
        3 => Backoff::Exponential {
            base,
            multiplier: f64::arbitrary(u).ok()?,
        },
        4 => Backoff::Fibonacci { base },
        _ => Backoff::DecorrelatedJitter { base },
    };
    let jitter = match u.int_in_range(0..=5u8).ok()? {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        3 => Jitter::Proportional(f64::arbitrary(u).ok()?),
        4 => Jitter::Additive(f64::arbitrary(u).ok()?),
        _ => Jitter::Range {
            low: f64::arbitrary(u).ok()?,
            high: f64::arbitrary(u).ok()?,
        },
    };
    let opt = |u: &mut Unstructured<'_>| bool::arbitrary(u).unwrap_or(false).then(|| duration(u));
    let opt_in = bool::arbitrary(u).ok()?;
    let mut builder = RetryPolicy::builder();
    for kind in [
        RetryKind::Connect,
        RetryKind::Read,
        RetryKind::Status,
        RetryKind::Other,
    ] {
        if bool::arbitrary(u).ok()? {
            builder = builder.kind_retries(kind, u.int_in_range(0..=300u32).ok()?);
        }
    }
    let delay_fns = [nothing, zero, huge, from_context];
    if let Some(f) = delay_fns.get(usize::from(u.int_in_range(0..=4u8).ok()?)) {
        builder = builder.delay_fn(*f);
    }
    builder
        .respect_retry_after(bool::arbitrary(u).ok()?)
        .max_attempts(u.int_in_range(0..=12u32).ok()?)
        .backoff(backoff)
        .jitter(jitter)
        .max_delay(duration(u))
        .attempt_timeout(opt(u))
        .total_timeout(opt(u))
        .max_wait(opt(u))
        .max_retry_after(duration(u))
        .clamp_retry_after(bool::arbitrary(u).ok()?)
        .retry_after_spread(f64::arbitrary(u).ok()?)
        .retry_non_idempotent(opt_in)
        .build()
        .ok()
        .map(|p| (p, opt_in))
}

const KINDS: [TransportErrorKind; 9] = [
    TransportErrorKind::Dns,
    TransportErrorKind::Connect,
    TransportErrorKind::ConnectTimeout,
    TransportErrorKind::TlsHandshake,
    TransportErrorKind::RefusedStream,
    TransportErrorKind::Reset,
    TransportErrorKind::Timeout,
    TransportErrorKind::Protocol,
    TransportErrorKind::Other,
];
const METHODS: [Method; 7] = [
    Method::Get,
    Method::Head,
    Method::Put,
    Method::Delete,
    Method::Post,
    Method::Patch,
    Method::Other,
];

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Some((policy, opt_in)) = policy(&mut u) else {
        return;
    };
    let Ok(method) = u.choose(&METHODS) else {
        return;
    };
    let req = RequestInfo::new(*method)
        .idempotency_key(bool::arbitrary(&mut u).unwrap_or(false))
        .body_replayable(bool::arbitrary(&mut u).unwrap_or(true));
    let replay_safe = method.is_idempotent() || req.has_idempotency_key || opt_in;
    // The machine's clock: inputs that go back in time are clamped to it.
    let mut clock = Instant::from_nanos(u.int_in_range(0..=u64::MAX / 2).unwrap_or(0));
    let throttle = Mutex::new(AdaptiveThrottle::builder().min_requests(0).build().unwrap());
    let rate = RateLimiter::builder()
        .rate(f64::from(u.int_in_range(1..=1000u32).unwrap_or(1)) / 10.0)
        .burst(u.int_in_range(1..=4u32).unwrap_or(1))
        .build();
    let Ok(rate) = rate else { return };
    let rate = Mutex::new(rate);
    let bulkhead = Mutex::new(ConcurrencyLimiter::builder().limit(1).build().unwrap());
    let limiters: [LimiterRef<'_>; 3] = [&throttle, &rate, &bulkhead];
    let none: [LimiterRef<'_>; 0] = [];
    let limited = bool::arbitrary(&mut u).unwrap_or(false);
    let m = RetryMachine::new(&policy, req, clock, u64::arbitrary(&mut u).unwrap_or(0));
    let mut m = if limited {
        m.with_limiters(&limiters)
    } else {
        m.with_limiters(&none)
    };
    let deadline = m.deadline();
    let mut sends = 0u32;
    let mut in_flight: Option<(Attempt, Instant)> = None;
    let mut may_have_been_processed = false;
    let mut terminal: Option<Action> = None;
    for _ in 0..64 {
        let action = m.poll_action();
        while m.poll_event().is_some() {}
        if let Some(t) = terminal {
            assert_eq!(action, t, "terminal actions are sticky");
        }
        match action {
            Action::Send {
                attempt,
                deadline: attempt_deadline,
            } => {
                assert!(bulkhead.lock().unwrap().inflight() <= 1);
                sends += 1;
                assert!(sends <= policy.max_attempts(), "too many attempts");
                assert_eq!(attempt.number(), sends);
                assert!(
                    attempt_deadline <= deadline,
                    "attempt outlives the deadline"
                );
                assert!(
                    replay_safe || !may_have_been_processed,
                    "re-sent a non-idempotent request that may have been processed"
                );
                in_flight = Some((attempt, attempt_deadline));
            }
            Action::Sleep { until } => {
                assert!(until <= deadline, "sleep past the deadline");
                if in_flight.is_none() {
                    assert!(
                        until < deadline,
                        "backoff ends at the deadline: no time to send"
                    );
                }
            }
            Action::Done { .. } | Action::Fail(_) => {
                terminal = Some(action);
                in_flight = None;
            }
            // These policies do not hedge (the `hedging` target drives that).
            Action::Cancel { .. } => panic!("a policy without hedging cancelled an attempt"),
        }
        // Feed something: the in-flight attempt's answer, a stale answer, a timer, time travel.
        let advance = u.int_in_range(0..=5_000u64).unwrap_or(0) * 1_000_000;
        let now = if u.ratio(1u8, 10).unwrap_or(false) {
            Instant::from_nanos(clock.as_nanos().saturating_sub(advance))
        } else {
            clock + Duration::from_nanos(advance)
        };
        clock = clock.max(now);
        let attempt = in_flight.map_or(Attempt::new(1), |(a, _)| a);
        match u.int_in_range(0..=5u8).unwrap_or(5) {
            0 | 1 => {
                let status = u.int_in_range(0..=700u16).unwrap_or(200);
                let raw: &[u8] = u.arbitrary().unwrap_or(b"");
                let wall = UnixTime(u.int_in_range(0..=300_000_000_000u64).unwrap_or(0));
                let head =
                    ResponseHead::new(status).with_retry_after(RetryAfter::parse(raw), Some(wall));
                m.handle_input(now, Input::Response { attempt, head });
                if in_flight.take().is_some() {
                    may_have_been_processed = true;
                }
            }
            2 => {
                let kind = *u.choose(&KINDS).unwrap_or(&TransportErrorKind::Other);
                m.handle_input(now, Input::Error { attempt, kind });
                if in_flight.take().is_some() {
                    may_have_been_processed |= kind.reached_server();
                }
            }
            3 => {
                let stale = Attempt::new(u32::arbitrary(&mut u).unwrap_or(0).max(sends + 1));
                m.handle_input(
                    now,
                    Input::Response {
                        attempt: stale,
                        head: ResponseHead::new(200),
                    },
                );
            }
            _ => {
                m.handle_input(now, Input::Timer);
                if in_flight.is_some_and(|(_, d)| clock >= d) {
                    in_flight = None;
                    may_have_been_processed = true;
                }
            }
        }
    }
    drop(m);
    assert_eq!(
        bulkhead.lock().unwrap().inflight(),
        0,
        "a slot outlived its call"
    );
});
