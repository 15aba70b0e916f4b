//! The breaker controls the peers' users rely on, each against the peer's own numbers or
//! with resil's difference stated: resilience4j's minimum calls, modes, manual opening,
//! initial state, half-open ratio and half-open time limit; Polly's break-duration generator
//! and the outcome a rejection carries; gobreaker's count interval; seatbelt's progressive
//! half-open. Fake clock throughout.

use core::time::Duration;

use resil_core::{
    BreakContext, BreakerMode, BreakerState, CallOutcome, Cause, CircuitBreaker, HalfOpen, Instant,
    PROGRESSIVE_STAGES, Permit, SlowCalls, TransportErrorKind, TripCondition, Window,
};

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn fail(b: &mut CircuitBreaker, now: Instant) {
    let p = b.try_acquire(now).expect("admitted");
    b.record(now, p, CallOutcome::Failure);
}

fn succeed(b: &mut CircuitBreaker, now: Instant) {
    let p = b.try_acquire(now).expect("admitted");
    b.record(now, p, CallOutcome::Success);
}

fn transitions(b: &mut CircuitBreaker) -> Vec<(BreakerState, BreakerState, bool)> {
    std::iter::from_fn(|| b.poll_transition())
        .map(|t| (t.from, t.to, t.enforced))
        .collect()
}

/// resilience4j lowers `minimumNumberOfCalls` to a count-based window's size: a window of 5
/// calls never holds 6, and the breaker must still trip. Before, resil built one that never
/// could.
#[test]
fn a_minimum_above_a_count_window_is_lowered_to_the_window() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 0.5,
            min_calls: 6,
            window: Window::Calls(5),
        })
        .build()
        .unwrap();
    for _ in 0..4 {
        fail(&mut b, secs(1));
    }
    assert_eq!(b.state(), BreakerState::Closed, "4 calls, fewer than 5");
    fail(&mut b, secs(1));
    assert_eq!(b.state(), BreakerState::Open, "5 of 5 failed");
}

/// resilience4j's `DISABLED` always admits; resil's keeps counting (resilience4j's records
/// nothing) so the counts can be read, and an enforcing breaker carries on from them.
#[test]
fn a_disabled_breaker_admits_counts_and_never_trips() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(3))
        .mode(BreakerMode::Disabled)
        .build()
        .unwrap();
    for _ in 0..10 {
        fail(&mut b, secs(1));
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.consecutive_failures(), 10);
    assert_eq!(b.transitions_total(), 0);
    b.set_mode(secs(2), BreakerMode::Enforcing);
    fail(&mut b, secs(2));
    assert_eq!(b.state(), BreakerState::Open, "the counts carried over");
    // Disabling an open breaker closes it.
    b.set_mode(secs(3), BreakerMode::Disabled);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.consecutive_failures(), 0);
    assert!(b.try_acquire(secs(3)).is_ok());
    let err = CircuitBreaker::builder()
        .mode(BreakerMode::Disabled)
        .initial_state(BreakerState::Open)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "initial_state");
}

/// resilience4j's `METRICS_ONLY` admits every call; resil's also trips, half-opens and closes
/// as an enforcing breaker would and reports those transitions, marked not enforced.
#[test]
fn a_metrics_only_breaker_reports_what_it_would_do_and_rejects_nothing() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(2))
        .open_for(Duration::from_secs(10))
        .mode(BreakerMode::MetricsOnly)
        .build()
        .unwrap();
    fail(&mut b, secs(1));
    fail(&mut b, secs(1));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.rejects_until(), None, "a retry need not give up");
    let p = b.try_acquire(secs(2)).expect("admitted although open");
    assert!(!p.is_probe());
    b.record(secs(2), p, CallOutcome::Success);
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "an open breaker's call counts for nothing"
    );
    succeed(&mut b, secs(11));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(
        transitions(&mut b),
        [
            (BreakerState::Closed, BreakerState::Open, false),
            (BreakerState::Open, BreakerState::HalfOpen, false),
            (BreakerState::HalfOpen, BreakerState::Closed, false),
        ]
    );
    // Enforcing from here: it acts on what it counts.
    b.set_mode(secs(12), BreakerMode::Enforcing);
    fail(&mut b, secs(12));
    fail(&mut b, secs(12));
    assert!(b.try_acquire(secs(13)).is_err());
    assert_eq!(
        transitions(&mut b),
        [(BreakerState::Closed, BreakerState::Open, true)]
    );
}

/// resilience4j's `transitionToOpenStateFor` and `transitionToOpenStateUntil`: open by hand,
/// then half-open as after any break. A manual order makes a metrics-only breaker enforce.
#[test]
fn a_breaker_opens_by_hand_for_a_while_or_until_an_instant() {
    let mut b = CircuitBreaker::builder()
        .mode(BreakerMode::MetricsOnly)
        .build()
        .unwrap();
    b.trip_for(secs(10), Duration::from_secs(5));
    assert_eq!(b.mode(), BreakerMode::Enforcing);
    assert_eq!(b.state(), BreakerState::Open);
    let rejected = b.try_acquire(secs(14)).unwrap_err();
    assert_eq!(rejected.until, secs(15));
    assert_eq!(rejected.opened_by, None, "opened by hand");
    let probe = b.try_acquire(secs(15)).unwrap();
    assert!(probe.is_probe());
    b.record(secs(15), probe, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    b.trip_until(secs(20), secs(60));
    assert_eq!(b.rejects_until(), Some(secs(60)));
    b.trip_until(secs(21), secs(30));
    assert_eq!(
        b.rejects_until(),
        Some(secs(30)),
        "a new order replaces the old"
    );
    b.isolate(secs(22));
    b.trip_for(secs(23), Duration::from_secs(1));
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "a trip replaces an isolation too"
    );
}

/// resilience4j's `initialState`. Core has no clock: a breaker built open starts its break
/// at the first instant it is asked at.
#[test]
fn a_breaker_can_start_open_half_open_or_isolated() {
    let mut open = CircuitBreaker::builder()
        .open_for(Duration::from_secs(30))
        .initial_state(BreakerState::Open)
        .build()
        .unwrap();
    assert_eq!(open.state(), BreakerState::Open);
    assert_eq!(open.rejects_until(), None, "not yet known");
    assert_eq!(open.try_acquire(secs(100)).unwrap_err().until, secs(130));
    assert!(open.try_acquire(secs(130)).unwrap().is_probe());

    let mut half = CircuitBreaker::builder()
        .initial_state(BreakerState::HalfOpen)
        .build()
        .unwrap();
    let probe = half.try_acquire(secs(1)).unwrap();
    assert!(probe.is_probe());
    assert!(half.try_acquire(secs(1)).is_err(), "one probe at a time");
    half.record(secs(1), probe, CallOutcome::Success);
    assert_eq!(half.state(), BreakerState::Closed);

    let mut isolated = CircuitBreaker::builder()
        .initial_state(BreakerState::Isolated)
        .build()
        .unwrap();
    assert_eq!(
        isolated.try_acquire(secs(1)).unwrap_err().until,
        Instant::MAX
    );
    isolated.reset(secs(2));
    assert!(isolated.try_acquire(secs(2)).is_ok());
}

/// resilience4j's half-open state: `permittedNumberOfCallsInHalfOpenState` = 10 and a 50 %
/// `failureRateThreshold`: 4 failures in 10 close it, 5 reopen it, and an 11th call waits.
#[test]
fn a_ratio_half_open_judges_all_its_calls_together() {
    let judged = |failures: usize| {
        let mut b = CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .open_for(Duration::from_secs(60))
            .half_open(HalfOpen::Ratio {
                calls: 10,
                failure_ratio: 0.5,
            })
            .build()
            .unwrap();
        fail(&mut b, secs(0));
        let probes: Vec<Permit> = (0..10).map(|_| b.try_acquire(secs(60)).unwrap()).collect();
        assert!(b.try_acquire(secs(60)).is_err(), "the 11th waits");
        for (i, p) in probes.into_iter().enumerate() {
            let outcome = if i < failures {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            };
            assert_eq!(
                b.state(),
                BreakerState::HalfOpen,
                "no judgement before all 10"
            );
            b.record(secs(61), p, outcome);
        }
        b.state()
    };
    assert_eq!(judged(4), BreakerState::Closed);
    assert_eq!(judged(5), BreakerState::Open);
}

/// resilience4j's half-open slow-call ratio: with `SlowCalls`, slow probes reopen it too.
#[test]
fn a_ratio_half_open_counts_slow_probes() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 1.0,
            min_calls: 1,
            window: Window::Calls(10),
        })
        .slow_calls(SlowCalls {
            threshold: Duration::from_secs(2),
            ratio: 0.5,
        })
        .open_for(Duration::from_secs(10))
        .half_open(HalfOpen::Ratio {
            calls: 2,
            failure_ratio: 1.0,
        })
        .build()
        .unwrap();
    fail(&mut b, secs(0));
    let (a, c) = (
        b.try_acquire(secs(10)).unwrap(),
        b.try_acquire(secs(10)).unwrap(),
    );
    b.record(secs(11), a, CallOutcome::Success);
    b.record(secs(13), c, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Open, "one of two probes took 3 s");
}

/// resilience4j's `maxWaitDurationInHalfOpenState` with `transitionToStateAfterWaitDuration`:
/// half-open without a decision for that long goes to Open (the default there) or Closed.
#[test]
fn a_half_open_breaker_that_waits_too_long_moves_on() {
    let breaker = |then| {
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .open_for(Duration::from_secs(10))
            .half_open_probes(2)
            .half_open_max_wait(Duration::from_secs(5), then)
            .build()
            .unwrap()
    };
    let mut b = breaker(BreakerState::Open);
    fail(&mut b, secs(0));
    let p = b.try_acquire(secs(10)).unwrap();
    b.record(secs(11), p, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen, "one success of two");
    assert!(
        b.try_acquire(secs(15)).is_err(),
        "5 s half-open: open again"
    );
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.rejects_until(), Some(secs(25)));

    let mut b = breaker(BreakerState::Closed);
    fail(&mut b, secs(0));
    let _lost = b.try_acquire(secs(10)).unwrap();
    assert!(b.try_acquire(secs(15)).is_ok());
    assert_eq!(b.state(), BreakerState::Closed);
    for then in [BreakerState::HalfOpen, BreakerState::Isolated] {
        let err = CircuitBreaker::builder()
            .half_open_max_wait(Duration::from_secs(5), then)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "half_open_max_wait");
    }
}

/// Polly's documented `BreakDurationGenerator` (docs/strategies/circuit-breaker.md:
/// `TimeSpan.FromMinutes(args.FailureCount)`), with resil's difference: the answer is capped at
/// `max_open` (here 5 min); and a break that grows with how often the breaker reopened.
#[test]
fn a_break_duration_function_sets_each_open_period() {
    fn polly_example(ctx: &BreakContext) -> Duration {
        Duration::from_secs(60 * u64::from(ctx.failures))
    }
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(3))
        .break_duration(polly_example)
        .build()
        .unwrap();
    for _ in 0..3 {
        fail(&mut b, secs(0));
    }
    assert_eq!(b.rejects_until(), Some(secs(180)), "3 failures: 3 minutes");
    let probe = b.try_acquire(secs(180)).unwrap();
    b.record(secs(180), probe, CallOutcome::Failure);
    assert_eq!(
        b.rejects_until(),
        Some(secs(240)),
        "one failed probe: 1 minute"
    );
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(20))
        .break_duration(polly_example)
        .build()
        .unwrap();
    for _ in 0..20 {
        fail(&mut b, secs(0));
    }
    assert_eq!(
        b.rejects_until(),
        Some(secs(300)),
        "20 minutes, capped at 5"
    );

    fn doubling(ctx: &BreakContext) -> Duration {
        Duration::from_secs(10 << ctx.reopens.min(10))
    }
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(1))
        .break_duration(doubling)
        .build()
        .unwrap();
    fail(&mut b, secs(0));
    let mut now = secs(0);
    let mut breaks = Vec::new();
    for _ in 0..3 {
        let until = b.rejects_until().unwrap();
        breaks.push((until - now).as_secs());
        now = until;
        fail(&mut b, now);
    }
    assert_eq!(breaks, [10, 20, 40]);
}

/// Polly's `BrokenCircuitException` carries the exception that broke the circuit; resil's
/// rejection carries the outcome: a status or a transport error.
#[test]
fn a_rejection_carries_the_outcome_that_opened_the_circuit() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(2))
        .build()
        .unwrap();
    for cause in [
        Cause::Status(503),
        Cause::Error(TransportErrorKind::Connect),
    ] {
        let p = b.try_acquire(secs(1)).unwrap();
        b.record_with_cause(secs(1), p, CallOutcome::Failure, cause);
    }
    let rejected = b.try_acquire(secs(2)).unwrap_err();
    assert_eq!(
        rejected.opened_by,
        Some(Cause::Error(TransportErrorKind::Connect))
    );
    assert_eq!(
        rejected.to_string(),
        "circuit breaker is open until t+31s (opened by connection refused)"
    );
    b.reset(secs(3));
    assert_eq!(b.opened_by(), None);
}

/// gobreaker's `Interval` (README: "the cyclic period of the closed state for CircuitBreaker
/// to clear the internal Counts"; results of requests sent before the clearing are ignored).
/// gobreaker's default `ReadyToTrip`: more than 5 failures in a row.
#[test]
fn a_count_interval_clears_a_closed_breakers_counts() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(6))
        .count_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..5 {
        fail(&mut b, secs(0));
    }
    let late = b.try_acquire(secs(59)).unwrap();
    assert_eq!(b.consecutive_failures(), 5);
    fail(&mut b, secs(61));
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "the interval cleared the 5"
    );
    assert_eq!(b.consecutive_failures(), 1);
    b.record(secs(62), late, CallOutcome::Failure);
    assert_eq!(
        b.consecutive_failures(),
        1,
        "a call of the last interval counts for nothing"
    );
    for _ in 0..5 {
        fail(&mut b, secs(62));
    }
    assert_eq!(b.state(), BreakerState::Open);
    let err = CircuitBreaker::builder()
        .count_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "count_interval");
}

/// seatbelt's progressive half-open (`HalfOpenMode::progressive`): one probe, then stages
/// admitting 0.1 %, 1 %, 5 %, 10 %, 25 % and 50 % of calls, one break each; a stage whose
/// failure ratio reaches the limit reopens; after the last, closed. Here a break is 10 s and
/// 10,000 calls arrive in each stage.
#[test]
fn a_progressive_half_open_steps_the_load_back_up() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::ConsecutiveFailures(1))
        .open_for(Duration::from_secs(10))
        .half_open(HalfOpen::Progressive { failure_ratio: 0.1 })
        .open_jitter(0.0, 7)
        .build()
        .unwrap();
    fail(&mut b, secs(0));
    let probe = b.try_acquire(secs(10)).unwrap();
    assert!(b.try_acquire(secs(10)).is_err(), "the single probe first");
    b.record(secs(10), probe, CallOutcome::Success);
    let mut admitted = Vec::new();
    let mut now = Instant::from_secs(10);
    for stage in 0..PROGRESSIVE_STAGES.len() {
        let mut n = 0;
        for i in 0..10_000u64 {
            let at = now + Duration::from_micros(i * 900);
            if let Ok(p) = b.try_acquire(at) {
                n += 1;
                b.record(at, p, CallOutcome::Success);
            }
        }
        admitted.push(n);
        assert_eq!(b.state(), BreakerState::HalfOpen, "stage {stage}");
        now = now + Duration::from_secs(10);
        // The first report after the stage's end judges it.
        let p = loop {
            if let Ok(p) = b.try_acquire(now) {
                break p;
            }
            now = now + Duration::from_millis(1);
        };
        b.record(now, p, CallOutcome::Success);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    println!("admitted per stage: {admitted:?}");
    for (n, share) in admitted.iter().zip(PROGRESSIVE_STAGES) {
        let expected = share * 10_000.0;
        assert!(
            (*n as f64) > expected * 0.5 && (*n as f64) < expected * 1.5 + 5.0,
            "{n} admitted at a share of {share}: {admitted:?}"
        );
    }
    // A failing stage reopens.
    fail(&mut b, now);
    now = now + Duration::from_secs(10);
    succeed(&mut b, now);
    let mut failed = 0;
    for i in 0..2_000u64 {
        if let Ok(p) = b.try_acquire(now + Duration::from_millis(i)) {
            b.record(now, p, CallOutcome::Failure);
            failed += 1;
        }
    }
    assert!(failed > 0);
    let p = loop {
        now = now + Duration::from_secs(1);
        if let Ok(p) = b.try_acquire(now) {
            break p;
        }
    };
    b.record(now, p, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Open);
}

/// Settings that would build a breaker unable to trip or to close are refused, naming the
/// field.
#[test]
fn impossible_breaker_settings_are_refused() {
    let b = CircuitBreaker::builder;
    let cases = [
        (
            b().trip(TripCondition::FailureRatio {
                ratio: 0.5,
                min_calls: 5,
                window: Window::Calls(10),
            })
            .slow_calls(SlowCalls {
                threshold: Duration::ZERO,
                ratio: 0.5,
            })
            .build(),
            "slow_calls",
        ),
        (
            b().half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
                .open_for(Duration::ZERO)
                .build(),
            "half_open",
        ),
        (
            b().half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
                .open_for(Duration::from_secs(10))
                .half_open_max_wait(Duration::from_secs(60), BreakerState::Open)
                .build(),
            "half_open_max_wait",
        ),
        (
            b().half_open(HalfOpen::Ratio {
                calls: 0,
                failure_ratio: 0.5,
            })
            .build(),
            "half_open",
        ),
        (
            b().half_open(HalfOpen::Ratio {
                calls: 3,
                failure_ratio: 0.0,
            })
            .build(),
            "half_open",
        ),
        (
            b().half_open(HalfOpen::Progressive { failure_ratio: 1.5 })
                .build(),
            "half_open",
        ),
        (
            b().half_open_max_wait(Duration::ZERO, BreakerState::Open)
                .build(),
            "half_open_max_wait",
        ),
    ];
    for (built, field) in cases {
        assert_eq!(built.unwrap_err().field(), field);
    }
    // Long enough for the six stages: fine.
    assert!(
        b().half_open(HalfOpen::Progressive { failure_ratio: 0.5 })
            .open_for(Duration::from_secs(10))
            .half_open_max_wait(Duration::from_secs(61), BreakerState::Open)
            .build()
            .is_ok()
    );
}
