//! The circuit breaker under arbitrary settings of every control (trip conditions, slow calls,
//! growth, jitter, a break-duration function, half-open by probes, by ratio or progressively,
//! a half-open time limit, a count interval, modes, an initial state) and arbitrary
//! acquire / record / release / isolate / reset / trip / mode-change / time sequences: never a
//! panic, no rejection from a closed, metrics-only or disabled breaker, no rejection that
//! names a time already past, state consistent with its answers.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{
    BreakContext, BreakerMode, BreakerState, CallOutcome, Cause, CircuitBreaker, HalfOpen, Instant,
    Permit, SlowCalls, TransportErrorKind, TripCondition, Window,
};

fn short(_: &BreakContext) -> Duration {
    Duration::from_millis(1)
}

fn by_reopens(ctx: &BreakContext) -> Duration {
    Duration::from_secs(u64::from(ctx.reopens) * 1_000 + u64::from(ctx.failures))
}

fn forever(_: &BreakContext) -> Duration {
    Duration::MAX
}

fn state(u: &mut Unstructured<'_>) -> BreakerState {
    [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::Isolated,
    ][usize::from(u.int_in_range(0..=3u8).unwrap_or(0))]
}

fn mode(u: &mut Unstructured<'_>) -> BreakerMode {
    [
        BreakerMode::Enforcing,
        BreakerMode::MetricsOnly,
        BreakerMode::Disabled,
    ][usize::from(u.int_in_range(0..=2u8).unwrap_or(0))]
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let trip = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => TripCondition::ConsecutiveFailures(u.int_in_range(0..=10u32).unwrap_or(5)),
        1 => TripCondition::FailureRatio {
            ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
            min_calls: u32::arbitrary(&mut u).unwrap_or(1),
            window: Window::Calls(u.int_in_range(0..=200u32).unwrap_or(10)),
        },
        _ => TripCondition::FailureRatio {
            ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
            min_calls: u.int_in_range(0..=20u32).unwrap_or(1),
            window: Window::Time(Duration::from_nanos(u64::arbitrary(&mut u).unwrap_or(1))),
        },
    };
    let half_open = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => HalfOpen::Probes(u.int_in_range(0..=4u32).unwrap_or(1)),
        1 => HalfOpen::Ratio {
            calls: u.int_in_range(0..=6u32).unwrap_or(2),
            failure_ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
        },
        _ => HalfOpen::Progressive {
            failure_ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
        },
    };
    let mut builder = CircuitBreaker::builder()
        .trip(trip)
        .open_for(Duration::from_millis(
            u.int_in_range(0..=60_000u64).unwrap_or(1),
        ))
        .open_growth(
            f64::arbitrary(&mut u).unwrap_or(1.0),
            Duration::from_nanos(u64::arbitrary(&mut u).unwrap_or(0)),
        )
        .open_jitter(
            f64::arbitrary(&mut u).unwrap_or(0.0),
            u64::arbitrary(&mut u).unwrap_or(0),
        )
        .half_open(half_open)
        .probe_timeout(Duration::from_millis(
            u.int_in_range(0..=60_000u64).unwrap_or(1),
        ))
        .mode(mode(&mut u))
        .initial_state(state(&mut u));
    if bool::arbitrary(&mut u).unwrap_or(false) {
        builder = builder.slow_calls(SlowCalls {
            threshold: Duration::from_millis(u.int_in_range(0..=5_000u64).unwrap_or(1)),
            ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
        });
    }
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        1 => builder = builder.break_duration(short),
        2 => builder = builder.break_duration(by_reopens),
        3 => builder = builder.break_duration(forever),
        _ => {}
    }
    if bool::arbitrary(&mut u).unwrap_or(false) {
        let wait = Duration::from_millis(u.int_in_range(0..=600_000u64).unwrap_or(1));
        builder = builder.half_open_max_wait(wait, state(&mut u));
    }
    if bool::arbitrary(&mut u).unwrap_or(false) {
        builder = builder.count_interval(Duration::from_millis(
            u.int_in_range(0..=60_000u64).unwrap_or(1),
        ));
    }
    let Ok(mut b) = builder.build() else { return };
    let mut now = Instant::ZERO;
    let mut held: Vec<Permit> = Vec::new();
    while !u.is_empty() {
        let step = u.int_in_range(0..=10u8).unwrap_or(0);
        now = now + Duration::from_millis(u.int_in_range(0..=10_000u64).unwrap_or(0));
        match step {
            0..=2 => {
                let before = (b.state(), b.mode());
                match b.try_acquire(now) {
                    Ok(p) => {
                        if b.mode() == BreakerMode::Enforcing {
                            assert_ne!(b.state(), BreakerState::Open);
                            assert_ne!(b.state(), BreakerState::Isolated);
                        }
                        held.push(p);
                    }
                    Err(r) => {
                        assert_eq!(b.mode(), BreakerMode::Enforcing, "only enforcing rejects");
                        assert_ne!(b.state(), BreakerState::Closed, "closed breakers admit");
                        assert!(r.until > now || r.until == Instant::MAX, "{r} at {now}");
                    }
                }
                if before.1 == BreakerMode::Disabled {
                    assert_eq!(b.state(), BreakerState::Closed, "from {before:?}");
                }
            }
            3 | 4 => {
                if !held.is_empty() {
                    let i = u.choose_index(held.len()).unwrap_or(0);
                    let p = held.swap_remove(i);
                    let outcome = if bool::arbitrary(&mut u).unwrap_or(false) {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    };
                    if bool::arbitrary(&mut u).unwrap_or(false) {
                        let cause = if bool::arbitrary(&mut u).unwrap_or(false) {
                            Cause::Status(u16::arbitrary(&mut u).unwrap_or(503))
                        } else {
                            Cause::Error(TransportErrorKind::Reset)
                        };
                        b.record_with_cause(now, p, outcome, cause);
                    } else {
                        b.record(now, p, outcome);
                    }
                }
            }
            5 => {
                if !held.is_empty() {
                    let i = u.choose_index(held.len()).unwrap_or(0);
                    b.release(held.swap_remove(i));
                }
            }
            6 => b.isolate(now),
            7 => b.reset(now),
            8 => {
                let d = Duration::from_millis(u.int_in_range(0..=120_000u64).unwrap_or(0));
                if bool::arbitrary(&mut u).unwrap_or(false) {
                    b.trip_for(now, d);
                } else {
                    b.trip_until(now, now + d);
                }
                assert_eq!(b.state(), BreakerState::Open);
                assert_eq!(b.mode(), BreakerMode::Enforcing);
            }
            9 => {
                let m = mode(&mut u);
                b.set_mode(now, m);
                if m == BreakerMode::Disabled {
                    assert_eq!(b.state(), BreakerState::Closed);
                }
            }
            _ => {
                if b.mode() != BreakerMode::Enforcing {
                    assert_eq!(b.rejects_until(), None);
                }
            }
        }
        while b.poll_transition().is_some() {}
        if b.state() == BreakerState::Closed {
            held.retain(|p| !p.is_probe());
        }
    }
});
