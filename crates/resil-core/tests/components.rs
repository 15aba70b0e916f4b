//! Breaker, budget and policy behaviour through the public API.

use core::time::Duration;

use resil_core::{
    Backoff, BreakerState, CallOutcome, CircuitBreaker, Instant, Jitter, RetryBudget, RetryPolicy,
    SlowCalls, TripCondition, Window,
};

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn invalid_settings_name_their_field() {
    let cases = [
        (
            RetryPolicy::builder().max_attempts(0).build().err(),
            "max_attempts",
        ),
        (
            RetryPolicy::builder().retry_statuses(&[42]).build().err(),
            "retry_statuses",
        ),
        (
            RetryPolicy::builder()
                .failure_statuses(&[600])
                .build()
                .err(),
            "failure_statuses",
        ),
        (
            RetryPolicy::builder()
                .attempt_timeout(Some(Duration::ZERO))
                .build()
                .err(),
            "attempt_timeout",
        ),
        (
            RetryPolicy::builder()
                .total_timeout(Some(Duration::ZERO))
                .build()
                .err(),
            "total_timeout",
        ),
        (
            RetryPolicy::builder()
                .retry_after_spread(f64::NAN)
                .build()
                .err(),
            "retry_after_spread",
        ),
        (
            RetryPolicy::builder()
                .backoff(Backoff::Exponential {
                    base: Duration::from_millis(1),
                    multiplier: 0.5,
                })
                .build()
                .err(),
            "backoff.multiplier",
        ),
        (
            RetryPolicy::builder()
                .backoff(Backoff::Exponential {
                    base: Duration::from_millis(1),
                    multiplier: f64::INFINITY,
                })
                .build()
                .err(),
            "backoff.multiplier",
        ),
        (
            RetryPolicy::builder()
                .jitter(Jitter::Proportional(1.5))
                .build()
                .err(),
            "jitter",
        ),
        (
            RetryPolicy::builder()
                .jitter(Jitter::Additive(-1.0))
                .build()
                .err(),
            "jitter",
        ),
        (
            RetryPolicy::builder()
                .jitter(Jitter::Range {
                    low: 0.9,
                    high: 0.8,
                })
                .build()
                .err(),
            "jitter",
        ),
    ];
    for (err, field) in cases {
        let err = err.unwrap_or_else(|| panic!("{field} should be rejected"));
        assert_eq!(err.field(), field);
        assert!(
            err.to_string()
                .starts_with(&format!("invalid setting `{field}`")),
            "{err}"
        );
    }
    let breaker_cases = [
        (
            CircuitBreaker::builder()
                .trip(TripCondition::ConsecutiveFailures(0))
                .build()
                .err(),
            "trip",
        ),
        (
            CircuitBreaker::builder()
                .trip(TripCondition::FailureRatio {
                    ratio: 0.5,
                    min_calls: 1,
                    window: Window::Calls(129),
                })
                .build()
                .err(),
            "trip",
        ),
        (
            CircuitBreaker::builder()
                .slow_calls(SlowCalls {
                    threshold: Duration::from_secs(1),
                    ratio: 0.5,
                })
                .build()
                .err(),
            "slow_calls",
        ),
        (
            CircuitBreaker::builder().half_open_probes(0).build().err(),
            "half_open_probes",
        ),
        (
            CircuitBreaker::builder()
                .open_growth(0.5, Duration::MAX)
                .build()
                .err(),
            "open_growth",
        ),
        (
            CircuitBreaker::builder().open_jitter(2.0, 0).build().err(),
            "open_jitter",
        ),
        (
            CircuitBreaker::builder()
                .probe_timeout(Duration::ZERO)
                .build()
                .err(),
            "probe_timeout",
        ),
    ];
    for (err, field) in breaker_cases {
        assert_eq!(err.unwrap_or_else(|| panic!("{field}")).field(), field);
    }
    assert_eq!(
        RetryBudget::ratio(-0.1, 0, Duration::from_secs(1))
            .unwrap_err()
            .field(),
        "budget.ratio"
    );
    assert_eq!(
        RetryBudget::ratio(0.1, 0, Duration::ZERO)
            .unwrap_err()
            .field(),
        "budget.ttl"
    );
    assert_eq!(
        RetryBudget::token_bucket(0, 0.1).unwrap_err().field(),
        "budget.max_tokens"
    );
    assert_eq!(
        RetryBudget::token_bucket(10, 0.0).unwrap_err().field(),
        "budget.token_ratio"
    );
}

#[test]
fn defaults_build_and_match_the_design_table() {
    let p = RetryPolicy::default();
    assert_eq!(
        format!("{p:?}"),
        format!("{:?}", RetryPolicy::builder().build().unwrap())
    );
    assert_eq!(p.max_attempts(), 4);
    assert_eq!(p.attempt_timeout(), Duration::from_secs(10));
    assert_eq!(p.total_timeout(), Duration::from_secs(30));
    assert_eq!(p.schedule().nominal(0), Duration::from_millis(100));
    assert_eq!(p.schedule().nominal(1), Duration::from_millis(200));
    assert_eq!(p.schedule().nominal(30), Duration::from_secs(20));
    assert!(p.schedule().is_random(), "full jitter by default");
    assert_eq!(
        RetryPolicy::builder()
            .max_retries(3)
            .build()
            .unwrap()
            .max_attempts(),
        4
    );
    assert_eq!(
        RetryPolicy::builder()
            .max_retries(u32::MAX)
            .build()
            .unwrap()
            .max_attempts(),
        u32::MAX
    );
}

#[test]
fn ratio_breaker_needs_min_calls_and_trips_on_ratio() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 0.5,
            min_calls: 4,
            window: Window::Calls(10),
        })
        .build()
        .unwrap();
    for outcome in [
        CallOutcome::Failure,
        CallOutcome::Failure,
        CallOutcome::Failure,
    ] {
        let p = b.try_acquire(t(0)).unwrap();
        b.record(t(0), p, outcome);
    }
    assert_eq!(b.state(), BreakerState::Closed, "3 calls < min_calls 4");
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(0), p, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Open, "3 of 4 failed >= 50 %");
}

#[test]
fn call_window_forgets_old_calls() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 0.6,
            min_calls: 5,
            window: Window::Calls(5),
        })
        .build()
        .unwrap();
    fn record(b: &mut CircuitBreaker, o: CallOutcome) {
        let p = b.try_acquire(t(0)).unwrap();
        b.record(t(0), p, o);
    }
    use CallOutcome::{Failure as F, Success as S};
    for o in [F, F, S, S, S, S, S, F, F] {
        record(&mut b, o);
    }
    // The window now holds S S S F F: 40 % < 60 %.
    assert_eq!(b.state(), BreakerState::Closed);
    record(&mut b, F);
    // S S F F F: 60 %.
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn time_window_expires_buckets() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 0.5,
            min_calls: 4,
            window: Window::Time(Duration::from_secs(10)),
        })
        .build()
        .unwrap();
    for i in 0..3 {
        let p = b.try_acquire(t(i)).unwrap();
        b.record(t(i), p, CallOutcome::Failure);
    }
    // 20 s later those failures have left the window.
    for i in 0..3 {
        let p = b.try_acquire(t(20_000 + i)).unwrap();
        b.record(t(20_000 + i), p, CallOutcome::Success);
    }
    let p = b.try_acquire(t(20_010)).unwrap();
    b.record(t(20_010), p, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Closed, "1 of 4 in the window");
}

#[test]
fn slow_calls_trip_the_breaker() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 1.0,
            min_calls: 2,
            window: Window::Calls(4),
        })
        .slow_calls(SlowCalls {
            threshold: Duration::from_secs(2),
            ratio: 0.5,
        })
        .build()
        .unwrap();
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(100), p, CallOutcome::Success);
    let p = b.try_acquire(t(1_000)).unwrap();
    b.record(t(3_500), p, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Open, "1 of 2 calls slow");
}

#[test]
fn half_open_admits_at_most_k_probes_and_needs_k_successes() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(1))
        .open_for(Duration::from_secs(1))
        .half_open_probes(2)
        .build()
        .unwrap();
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(0), p, CallOutcome::Failure);
    let p1 = b.try_acquire(t(1_000)).unwrap();
    let p2 = b.try_acquire(t(1_001)).unwrap();
    assert!(b.try_acquire(t(1_002)).is_err(), "a third probe is refused");
    b.record(t(1_010), p1, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.record(t(1_011), p2, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn lost_probe_is_reclaimed_after_probe_timeout_and_its_late_result_ignored() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(1))
        .open_for(Duration::from_secs(1))
        .probe_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(0), p, CallOutcome::Failure);
    let lost = b.try_acquire(t(1_000)).unwrap();
    assert_eq!(b.try_acquire(t(2_000)).unwrap_err().until, t(6_000));
    let fresh = b.try_acquire(t(6_000)).unwrap();
    b.record(t(6_100), lost, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::HalfOpen, "stale permit ignored");
    b.record(t(6_200), fresh, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn released_probe_frees_its_slot_at_once() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(1))
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(0), p, CallOutcome::Failure);
    let probe = b.try_acquire(t(1_000)).unwrap();
    b.release(probe);
    assert!(b.try_acquire(t(1_001)).is_ok());
}

#[test]
fn permits_from_before_a_transition_are_ignored() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(2))
        .build()
        .unwrap();
    let old = b.try_acquire(t(0)).unwrap();
    let p = b.try_acquire(t(0)).unwrap();
    b.record(t(1), p, CallOutcome::Failure);
    b.reset(t(2));
    b.record(t(3), old, CallOutcome::Failure);
    assert_eq!(b.consecutive_failures(), 0);
}

#[test]
fn isolate_and_reset() {
    let mut b = CircuitBreaker::builder().build().unwrap();
    b.isolate(t(0));
    assert_eq!(b.state(), BreakerState::Isolated);
    assert_eq!(
        b.try_acquire(t(u64::MAX / 2_000_000)).unwrap_err().until,
        Instant::MAX
    );
    b.reset(t(1));
    assert_eq!(b.state(), BreakerState::Closed);
    let log: Vec<_> = std::iter::from_fn(|| b.poll_transition())
        .map(|tr| (tr.from, tr.to))
        .collect();
    assert_eq!(
        log,
        [
            (BreakerState::Closed, BreakerState::Isolated),
            (BreakerState::Isolated, BreakerState::Closed)
        ]
    );
    assert_eq!(b.transitions_total(), 2);
}

#[test]
fn open_jitter_is_deterministic_per_seed_and_bounded() {
    let open_until = |seed| {
        let mut b = CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .open_for(Duration::from_secs(10))
            .open_jitter(0.5, seed)
            .build()
            .unwrap();
        let p = b.try_acquire(t(0)).unwrap();
        b.record(t(0), p, CallOutcome::Failure);
        b.try_acquire(t(0)).unwrap_err().until
    };
    assert_eq!(open_until(1), open_until(1));
    let spread: std::collections::BTreeSet<_> = (0..50).map(open_until).collect();
    assert!(spread.len() > 40, "seeds spread the reopen");
    assert!(spread.iter().all(|u| (t(10_000)..=t(15_000)).contains(u)));
}

#[test]
fn ratio_budget_keeps_a_minimum_for_quiet_clients_and_expires() {
    let mut budget = RetryBudget::ratio(0.2, 1, Duration::from_secs(10)).unwrap();
    // No traffic at all: 1 retry/s over 10 s = 10 retries.
    let granted = (0..20).filter(|_| budget.try_withdraw(t(0))).count();
    assert_eq!(granted, 10);
    // 30 s later the window has moved on.
    assert_eq!(budget.available(t(30_000)), 10);
    for _ in 0..100 {
        budget.record_request(t(30_000));
    }
    assert_eq!(budget.available(t(30_000)), 30);
}

#[test]
fn token_bucket_stops_retries_below_half() {
    let mut b = RetryBudget::token_bucket(10, 0.1).unwrap();
    for _ in 0..4 {
        b.record_outcome(true);
    }
    assert!(b.try_withdraw(t(0)), "6 tokens > 5");
    b.record_outcome(true);
    assert!(!b.try_withdraw(t(0)), "5 tokens is not more than half");
    for _ in 0..10 {
        b.record_outcome(false);
    }
    assert!(b.try_withdraw(t(0)), "successes refill: 6 tokens");
}

#[test]
fn budget_refusal_is_its_own_give_up_reason() {
    use std::sync::Mutex;
    let policy = RetryPolicy::builder().jitter(Jitter::None).build().unwrap();
    // One first attempt at 10 % earns a tenth of a retry: not one.
    let budget = Mutex::new(RetryBudget::ratio(0.1, 0, Duration::from_secs(10)).unwrap());
    let mut m = resil_core::RetryMachine::new(
        &policy,
        resil_core::RequestInfo::new(resil_core::Method::Get),
        t(0),
        1,
    )
    .with_budget(&budget);
    let resil_core::Action::Send { attempt, .. } = m.poll_action() else {
        panic!()
    };
    m.handle_input(
        t(5),
        resil_core::Input::Response {
            attempt,
            head: resil_core::ResponseHead::new(503),
        },
    );
    match m.poll_action() {
        resil_core::Action::Fail(g) => {
            assert_eq!(g.reason, resil_core::GiveUpReason::BudgetExhausted);
            assert_eq!(
                g.to_string(),
                "gave up after 1 attempt: the retry budget is exhausted (last: status 503)"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_call_deposits_in_the_budget_when_its_first_attempt_ends() {
    use resil_core::{Action, Input, Method, RequestInfo, ResponseHead, RetryMachine};
    use std::sync::Mutex;
    let policy = RetryPolicy::builder().jitter(Jitter::None).build().unwrap();
    // One retry earned per call and none in reserve: a call's retry is paid by its own deposit.
    let budget = Mutex::new(RetryBudget::ratio(1.0, 0, Duration::from_secs(10)).unwrap());
    let available = |at| budget.lock().unwrap().available(t(at));
    let call = |start| {
        RetryMachine::new(&policy, RequestInfo::new(Method::Get), t(start), 1).with_budget(&budget)
    };
    let mut failing = call(0);
    let Action::Send { attempt, .. } = failing.poll_action() else {
        panic!()
    };
    assert_eq!(
        available(0),
        0,
        "nothing deposited while the first attempt runs"
    );
    let head = ResponseHead::new(503);
    failing.handle_input(t(5), Input::Response { attempt, head });
    assert!(
        matches!(failing.poll_action(), Action::Sleep { .. }),
        "its own deposit pays for the retry"
    );
    assert_eq!(available(5), 0, "one deposit, one withdrawal");
    let mut succeeding = call(10);
    let Action::Send { attempt, .. } = succeeding.poll_action() else {
        panic!()
    };
    let head = ResponseHead::new(200);
    succeeding.handle_input(t(15), Input::Response { attempt, head });
    assert_eq!(
        available(15),
        1,
        "a call that succeeds at once deposits too"
    );
}

#[test]
fn retry_if_sees_headers_and_body_and_overrides_sets() {
    use resil_core::{Action, Input, Method, RequestInfo, ResponseHead, RetryMachine};
    let policy = RetryPolicy::builder()
        .jitter(Jitter::None)
        .retry_if(|ctx| {
            if ctx.header("x-retry") == Some(b"no") {
                return Some(false);
            }
            if ctx
                .body_prefix()
                .is_some_and(|b| b.starts_with(b"{\"error\":\"busy\""))
            {
                return Some(true);
            }
            None
        })
        .build()
        .unwrap();
    let headers: [(&str, &[u8]); 1] = [("X-Retry", b"no")];
    let step = |head: ResponseHead<'_>| {
        let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), t(0), 1);
        let Action::Send { attempt, .. } = m.poll_action() else {
            panic!()
        };
        m.handle_input(t(1), Input::Response { attempt, head });
        m.poll_action()
    };
    assert!(matches!(
        step(ResponseHead::new(503).with_headers(&headers)),
        Action::Done { .. }
    ));
    assert!(matches!(
        step(ResponseHead::new(200).with_body_prefix(b"{\"error\":\"busy\"}")),
        Action::Sleep { .. }
    ));
    assert!(matches!(step(ResponseHead::new(503)), Action::Sleep { .. }));
}
