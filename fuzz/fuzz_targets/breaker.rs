//! The circuit breaker under arbitrary acquire / record / release / isolate / reset / time
//! sequences: never a panic, at most K live probes, state consistent with its answers.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{
    BreakerState, CallOutcome, CircuitBreaker, Instant, Permit, SlowCalls, TripCondition, Window,
};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let probes = u.int_in_range(0..=4u32).unwrap_or(1);
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
        .half_open_probes(probes)
        .probe_timeout(Duration::from_millis(
            u.int_in_range(0..=60_000u64).unwrap_or(1),
        ));
    if bool::arbitrary(&mut u).unwrap_or(false) {
        builder = builder.slow_calls(SlowCalls {
            threshold: Duration::from_millis(u.int_in_range(0..=5_000u64).unwrap_or(1)),
            ratio: f64::arbitrary(&mut u).unwrap_or(0.5),
        });
    }
    let Ok(mut b) = builder.build() else { return };
    let mut now = Instant::ZERO;
    let mut held: Vec<Permit> = Vec::new();
    while !u.is_empty() {
        let step = u.int_in_range(0..=7u8).unwrap_or(0);
        now = now + Duration::from_millis(u.int_in_range(0..=10_000u64).unwrap_or(0));
        match step {
            0..=2 => match b.try_acquire(now) {
                Ok(p) => {
                    assert_ne!(b.state(), BreakerState::Open);
                    assert_ne!(b.state(), BreakerState::Isolated);
                    held.push(p);
                }
                Err(r) => {
                    assert_ne!(b.state(), BreakerState::Closed, "closed breakers admit");
                    assert!(r.until >= now || b.state() == BreakerState::HalfOpen);
                }
            },
            3 | 4 => {
                if !held.is_empty() {
                    let i = u.choose_index(held.len()).unwrap_or(0);
                    let p = held.swap_remove(i);
                    let outcome = if bool::arbitrary(&mut u).unwrap_or(false) {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    };
                    b.record(now, p, outcome);
                }
            }
            5 => {
                if !held.is_empty() {
                    let i = u.choose_index(held.len()).unwrap_or(0);
                    b.release(held.swap_remove(i));
                }
            }
            6 => b.isolate(now),
            _ => b.reset(now),
        }
        while b.poll_transition().is_some() {}
        if b.state() == BreakerState::Closed {
            held.retain(|p| !p.is_probe());
        }
    }
});
