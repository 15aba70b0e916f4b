//! Properties over arbitrary policies and input sequences (proptest).

use core::time::Duration;
use std::sync::Mutex;

use proptest::prelude::*;
use resil_core::{
    Action, Attempt, Backoff, CallOutcome, CircuitBreaker, DelayContext, DelayFn, Input, Instant,
    Jitter, Method, RequestInfo, ResponseHead, RetryAfter, RetryBudget, RetryKind, RetryMachine,
    RetryPolicy, TransportErrorKind, TripCondition, UnixTime,
};

const WALL_ORIGIN: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
struct PolicySpec {
    max_attempts: u32,
    backoff: Backoff,
    jitter: Jitter,
    max_delay: Duration,
    attempt_timeout: Option<Duration>,
    total_timeout: Option<Duration>,
    max_wait: Option<Duration>,
    max_retry_after: Duration,
    clamp: bool,
    spread: f64,
    non_idempotent: bool,
    /// Which delay function, if any (see `DELAY_FNS`).
    delay_fn: usize,
    /// Retries allowed after connect, read, status and other failures, if bounded.
    kind_limits: [Option<u32>; 4],
}

fn zero(_: &DelayContext) -> Option<Duration> {
    Some(Duration::ZERO)
}
fn an_hour(_: &DelayContext) -> Option<Duration> {
    Some(Duration::from_secs(3600))
}
fn tripled(ctx: &DelayContext) -> Option<Duration> {
    Some(ctx.policy_delay * 3)
}
fn keep(_: &DelayContext) -> Option<Duration> {
    None
}

/// Delay functions at the edges: zero, far too long, a multiple of the policy's, none.
const DELAY_FNS: [Option<DelayFn>; 5] =
    [None, Some(zero), Some(an_hour), Some(tripled), Some(keep)];

impl PolicySpec {
    fn build(&self) -> RetryPolicy {
        let builder = RetryPolicy::builder()
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .jitter(self.jitter)
            .max_delay(self.max_delay)
            .attempt_timeout(self.attempt_timeout)
            .total_timeout(self.total_timeout)
            .max_wait(self.max_wait)
            .max_retry_after(self.max_retry_after)
            .clamp_retry_after(self.clamp)
            .retry_after_spread(self.spread)
            .retry_non_idempotent(self.non_idempotent);
        let mut builder = match DELAY_FNS[self.delay_fn] {
            Some(f) => builder.delay_fn(f),
            None => builder,
        };
        let kinds = [
            RetryKind::Connect,
            RetryKind::Read,
            RetryKind::Status,
            RetryKind::Other,
        ];
        for (kind, limit) in kinds.into_iter().zip(self.kind_limits) {
            if let Some(limit) = limit {
                builder = builder.kind_retries(kind, limit);
            }
        }
        builder
            .build()
            .expect("the strategy only makes valid policies")
    }
}

fn ms(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_millis)
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    let backoff = prop_oneof![
        ms(2_000).prop_map(Backoff::Constant),
        (ms(2_000), ms(2_000)).prop_map(|(initial, step)| Backoff::Linear { initial, step }),
        (ms(2_000), 1.0..4.0f64)
            .prop_map(|(base, multiplier)| Backoff::Exponential { base, multiplier }),
        ms(2_000).prop_map(Backoff::exponential),
        ms(2_000).prop_map(|base| Backoff::Fibonacci { base }),
        ms(2_000).prop_map(|base| Backoff::DecorrelatedJitter { base }),
    ];
    let jitter = prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        (0.0..=1.0f64).prop_map(Jitter::Proportional),
        (0.0..=2.0f64).prop_map(Jitter::Additive),
        (0.0..=1.0f64, 0.0..=1.0f64).prop_map(|(a, b)| Jitter::Range {
            low: a.min(b),
            high: a.max(b)
        }),
    ];
    (
        (1u32..8, backoff, jitter, ms(30_000)),
        (
            proptest::option::of((1u64..20_000).prop_map(Duration::from_millis)),
            proptest::option::of((1u64..60_000).prop_map(Duration::from_millis)),
            proptest::option::of(ms(20_000)),
            ms(120_000),
        ),
        (any::<bool>(), 0.0..=1.0f64, any::<bool>()),
        (
            0..DELAY_FNS.len(),
            std::array::from_fn(|_| proptest::option::of(0u32..4)),
        ),
    )
        .prop_map(
            |(
                (max_attempts, backoff, jitter, max_delay),
                (attempt_timeout, total_timeout, max_wait, max_retry_after),
                (clamp, spread, non_idempotent),
                (delay_fn, kind_limits),
            )| PolicySpec {
                max_attempts,
                backoff,
                jitter,
                max_delay,
                attempt_timeout,
                total_timeout,
                max_wait,
                max_retry_after,
                clamp,
                spread,
                non_idempotent,
                delay_fn,
                kind_limits,
            },
        )
}

fn request() -> impl Strategy<Value = RequestInfo> {
    let method = prop_oneof![
        Just(Method::Get),
        Just(Method::Head),
        Just(Method::Put),
        Just(Method::Delete),
        Just(Method::Post),
        Just(Method::Patch),
        Just(Method::Other),
    ];
    (method, any::<bool>(), prop::bool::weighted(0.9)).prop_map(|(m, key, replayable)| {
        RequestInfo::new(m)
            .idempotency_key(key)
            .body_replayable(replayable)
    })
}

#[derive(Clone, Debug)]
enum RetryAfterSpec {
    Seconds(u64),
    DateIn(u64),
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Reply {
    Response {
        status: u16,
        retry_after: Option<RetryAfterSpec>,
    },
    Error(TransportErrorKind),
    Stall,
}

/// Noise the driver injects before the real reply: none must change anything.
#[derive(Clone, Debug)]
enum Noise {
    None,
    StaleReply(u32),
    EarlyTimer,
    TimeBackwards(u64),
}

fn error_kind() -> impl Strategy<Value = TransportErrorKind> {
    prop_oneof![
        Just(TransportErrorKind::Dns),
        Just(TransportErrorKind::Connect),
        Just(TransportErrorKind::ConnectTimeout),
        Just(TransportErrorKind::TlsHandshake),
        Just(TransportErrorKind::RefusedStream),
        Just(TransportErrorKind::Reset),
        Just(TransportErrorKind::Timeout),
        Just(TransportErrorKind::Protocol),
        Just(TransportErrorKind::Other),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let retry_after = prop_oneof![
        (0u64..200).prop_map(RetryAfterSpec::Seconds),
        any::<u64>().prop_map(RetryAfterSpec::Seconds),
        (0u64..200).prop_map(RetryAfterSpec::DateIn),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(RetryAfterSpec::Raw),
    ];
    let status = prop_oneof![
        3 => prop::sample::select(vec![200u16, 201, 204, 404, 408, 429, 500, 501, 502, 503, 504]),
        1 => 100u16..600,
    ];
    prop_oneof![
        6 => (status, proptest::option::of(retry_after))
            .prop_map(|(status, retry_after)| Reply::Response { status, retry_after }),
        3 => error_kind().prop_map(Reply::Error),
        1 => Just(Reply::Stall),
    ]
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        6 => Just(Noise::None),
        1 => (0u32..10).prop_map(Noise::StaleReply),
        1 => Just(Noise::EarlyTimer),
        1 => (0u64..5_000).prop_map(Noise::TimeBackwards),
    ]
}

#[derive(Debug, PartialEq)]
struct Run {
    transcript: Vec<String>,
}

/// Drives a machine through `script`, checking every invariant on the way.
fn drive(spec: &PolicySpec, req: RequestInfo, script: &[(u64, Reply, Noise)], seed: u64) -> Run {
    let policy = spec.build();
    let start = Instant::from_secs(1);
    let mut now = start;
    let mut m = RetryMachine::new(&policy, req, now, seed);
    let deadline = m.deadline();
    let mut transcript = Vec::new();
    let mut sends = 0u32;
    let mut steps = script.iter().cycle();
    // (length the server asked for, the attempt it answered)
    let mut asked: Option<Duration> = None;
    let mut may_have_been_processed = false;
    let replay_safe = req.method.is_idempotent() || req.has_idempotency_key || spec.non_idempotent;
    for _ in 0..200 {
        let action = m.poll_action();
        transcript.push(format!("{} {action:?}", now.as_nanos()));
        while let Some(e) = m.poll_event() {
            transcript.push(format!("  {e:?}"));
        }
        match action {
            Action::Send {
                attempt,
                deadline: attempt_deadline,
            } => {
                sends += 1;
                assert!(sends <= spec.max_attempts, "more attempts than allowed");
                assert_eq!(attempt.number(), sends);
                assert!(
                    attempt_deadline <= deadline,
                    "attempt outlives the total deadline"
                );
                assert!(attempt_deadline > now || attempt_deadline == deadline);
                assert!(
                    replay_safe || !may_have_been_processed,
                    "re-sent a request that may have been processed"
                );
                asked = None;
                let (latency, reply, noise) = steps.next().expect("non-empty script").clone();
                match noise {
                    Noise::None => {}
                    Noise::StaleReply(n) => m.handle_input(
                        now,
                        Input::Response {
                            attempt: Attempt::new(n + sends + 1),
                            head: ResponseHead::new(200),
                        },
                    ),
                    Noise::EarlyTimer => m.handle_input(now, Input::Timer),
                    Noise::TimeBackwards(back) => m.handle_input(
                        Instant::from_nanos(now.as_nanos().saturating_sub(back * 1_000_000)),
                        Input::Timer,
                    ),
                }
                match reply {
                    Reply::Stall => {
                        now = attempt_deadline;
                        m.handle_input(now, Input::Timer);
                        may_have_been_processed = true;
                    }
                    Reply::Error(kind) => {
                        now = now + Duration::from_millis(latency).min(attempt_deadline - now);
                        m.handle_input(now, Input::Error { attempt, kind });
                        may_have_been_processed |= kind.reached_server();
                    }
                    Reply::Response {
                        status,
                        retry_after,
                    } => {
                        now = now + Duration::from_millis(latency).min(attempt_deadline - now);
                        let wall = UnixTime(WALL_ORIGIN + now.as_nanos() / 1_000_000_000);
                        let raw = match &retry_after {
                            None => None,
                            Some(RetryAfterSpec::Seconds(s)) => Some(s.to_string().into_bytes()),
                            Some(RetryAfterSpec::DateIn(s)) => {
                                let at = std::time::UNIX_EPOCH + Duration::from_secs(wall.0 + s);
                                Some(httpdate::fmt_http_date(at).into_bytes())
                            }
                            Some(RetryAfterSpec::Raw(bytes)) => Some(bytes.clone()),
                        };
                        let parsed = raw.as_deref().and_then(RetryAfter::parse);
                        asked = parsed.and_then(|ra| ra.delay(Some(wall)));
                        let head = ResponseHead::new(status).with_retry_after(parsed, Some(wall));
                        m.handle_input(now, Input::Response { attempt, head });
                        may_have_been_processed = true;
                    }
                }
            }
            Action::Sleep { until } => {
                let wait = until - now;
                assert!(
                    until < deadline,
                    "a backoff sleep ends at or past the deadline"
                );
                if let Some(max_wait) = spec.max_wait {
                    assert!(wait <= max_wait, "sleep {wait:?} > max_wait {max_wait:?}");
                }
                if asked.is_none() {
                    assert!(wait <= spec.max_delay, "sleep {wait:?} > max_delay");
                }
                if let Some(asked) = asked {
                    // The ask is a floor under the backoff: the longer of the two.
                    assert!(
                        wait <= spec.max_retry_after.max(spec.max_delay),
                        "sleep {wait:?} after Retry-After {asked:?} > max_retry_after and max_delay"
                    );
                    let floor = if spec.clamp {
                        asked.min(spec.max_retry_after)
                    } else {
                        asked
                    };
                    let floor = match spec.max_wait {
                        Some(w) if spec.clamp => floor.min(w),
                        _ => floor,
                    };
                    assert!(wait >= floor, "Retry-After {asked:?} shortened to {wait:?}");
                }
                now = until;
                m.handle_input(now, Input::Timer);
            }
            Action::Cancel { .. } => panic!("a policy without hedging cancelled an attempt"),
            Action::Done { .. } | Action::Fail(_) => {
                // Sticky.
                m.handle_input(now + Duration::from_secs(1), Input::Timer);
                assert_eq!(m.poll_action(), action);
                return Run { transcript };
            }
        }
    }
    panic!(
        "no terminal action within 200 steps:\n{}",
        transcript.join("\n")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn machine_invariants_hold(
        spec in policy(),
        req in request(),
        script in proptest::collection::vec((0u64..3_000, reply(), noise()), 1..10),
        seed in any::<u64>(),
    ) {
        let first = drive(&spec, req, &script, seed);
        let second = drive(&spec, req, &script, seed);
        prop_assert_eq!(first, second, "same seed, same transcript");
    }

    #[test]
    fn half_open_admits_at_most_k_probes(
        probes in 1u32..4,
        ops in proptest::collection::vec((0u8..4, 0u64..3_000, any::<bool>()), 1..200),
    ) {
        let mut b = CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(2))
            .open_for(Duration::from_secs(1))
            .half_open_probes(probes)
            .probe_timeout(Duration::from_secs(1_000_000))
            .build()
            .unwrap();
        let mut now = Instant::ZERO;
        let mut held = Vec::new();
        let mut outstanding_probes = 0u32;
        for (op, advance_ms, fail) in ops {
            now = now + Duration::from_millis(advance_ms);
            match op {
                0 | 1 => if let Ok(p) = b.try_acquire(now) { held.push(p) },
                2 => if let Some(p) = held.pop() {
                    b.record(now, p, if fail { CallOutcome::Failure } else { CallOutcome::Success });
                },
                _ => if let Some(p) = held.pop() { b.release(p) },
            }
            // Count live probes in this half-open period; a transition starts a new period.
            let mut moved = false;
            while b.poll_transition().is_some() { moved = true; }
            if moved {
                held.retain(|p| !p.is_probe());
                outstanding_probes = 0;
            }
            let live = held.iter().filter(|p| p.is_probe()).count() as u32;
            outstanding_probes = outstanding_probes.max(live);
            prop_assert!(live <= probes, "{live} probes out, limit {probes}");
        }
    }

    #[test]
    fn budget_never_grants_more_than_it_earned(
        ratio in 0.0..2.0f64,
        min_per_second in 0u32..5,
        requests in 0u32..200,
        asks in 0u32..400,
    ) {
        // A ratio of 0 with no reserve never grants a retry, and is refused at build.
        prop_assume!(ratio > 0.0 || min_per_second > 0);
        let mut budget = RetryBudget::ratio(ratio, min_per_second, Duration::from_secs(10)).unwrap();
        let now = Instant::from_secs(5);
        for _ in 0..requests { budget.record_request(now); }
        let granted = (0..asks).filter(|_| budget.try_withdraw(now)).count() as f64;
        // The budget keeps its ratio in parts per million, rounded to nearest: the exact
        // allowance is the ratio as it keeps it.
        let kept = (ratio * 1e6).round() / 1e6;
        let earned = kept * f64::from(requests) + f64::from(min_per_second) * 10.0;
        prop_assert!(granted <= earned.floor() + 1e-9, "granted {granted} of {earned}");
        prop_assert!(granted >= (earned.floor() - 1.0).min(f64::from(asks)), "granted {granted} of {earned}");
    }

    #[test]
    fn shared_breaker_and_budget_never_panic(
        seeds in proptest::collection::vec(any::<u64>(), 1..20),
        statuses in proptest::collection::vec(prop::sample::select(vec![200u16, 500, 503, 429]), 1..20),
    ) {
        let policy = RetryPolicy::builder().build().unwrap();
        let breaker = Mutex::new(CircuitBreaker::builder().build().unwrap());
        let budget = Mutex::new(RetryBudget::default());
        let mut now = Instant::ZERO;
        for (i, seed) in seeds.iter().enumerate() {
            let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, *seed)
                .with_breaker(&breaker)
                .with_budget(&budget);
            for step in 0..20 {
                match m.poll_action() {
                    Action::Send { attempt, .. } => {
                        now = now + Duration::from_millis(5);
                        let status = statuses[(i + step) % statuses.len()];
                        m.handle_input(now, Input::Response { attempt, head: ResponseHead::new(status) });
                    }
                    Action::Sleep { until } => { now = until; m.handle_input(now, Input::Timer); }
                    Action::Done { .. } | Action::Fail(_) | Action::Cancel { .. } => break,
                }
                while m.poll_event().is_some() {}
            }
        }
    }
}

/// Seed sweep: with full jitter, delays differ across seeds but repeat for the same seed.
#[test]
fn seed_sweep_spreads_delays_and_repeats_them() {
    let policy = RetryPolicy::builder().build().unwrap();
    let first_sleep = |seed| {
        let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), Instant::ZERO, seed);
        let Action::Send { attempt, .. } = m.poll_action() else {
            panic!()
        };
        m.handle_input(
            Instant::ZERO,
            Input::Response {
                attempt,
                head: ResponseHead::new(503),
            },
        );
        match m.poll_action() {
            Action::Sleep { until } => until,
            other => panic!("{other:?}"),
        }
    };
    let sleeps: Vec<_> = (0..1000).map(first_sleep).collect();
    assert_eq!(sleeps, (0..1000).map(first_sleep).collect::<Vec<_>>());
    let distinct: std::collections::BTreeSet<_> = sleeps.iter().collect();
    assert!(distinct.len() > 990);
    let mean = sleeps.iter().map(|i| i.as_nanos() as f64).sum::<f64>() / 1000.0;
    // Full jitter over [0, 100 ms]: mean about 50 ms.
    assert!((45e6..55e6).contains(&mean), "mean {mean}");
}
