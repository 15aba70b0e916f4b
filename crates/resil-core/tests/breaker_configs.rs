//! No impossible configuration: every breaker the builder accepts, from random settings of
//! every control, can trip and can close again. Refused settings are refused by name; the
//! ones accepted are driven with failures until open, then with successes (waiting whenever
//! it rejects) until closed. Disabled and isolated breakers are left out: not tripping, or
//! waiting for a reset, is what they are for.

use core::time::Duration;
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use resil_core::{
    BreakContext, BreakerMode, BreakerState, CallOutcome, CircuitBreaker, CircuitBreakerBuilder,
    HalfOpen, Instant, SlowCalls, TripCondition, Window,
};

fn no_break(_: &BreakContext) -> Duration {
    Duration::ZERO
}
fn growing(ctx: &BreakContext) -> Duration {
    Duration::from_secs(u64::from(ctx.reopens.min(20)) * 7 + u64::from(ctx.failures))
}
fn forever(_: &BreakContext) -> Duration {
    Duration::MAX
}

fn ms(max: u64) -> impl Strategy<Value = Duration> {
    (0..=max).prop_map(Duration::from_millis)
}

/// Mostly valid ratios, with the edges: exactly 1, and now and then 0 or above 1 (refused).
fn ratio() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.001..=1.0f64,
        2 => Just(1.0),
        1 => prop_oneof![Just(0.0), Just(1.5)],
    ]
}

fn trip() -> impl Strategy<Value = TripCondition> {
    let window = prop_oneof![
        (0u32..=130).prop_map(Window::Calls),
        (0u64..60_000_000_000).prop_map(|n| Window::Time(Duration::from_nanos(n))),
    ];
    prop_oneof![
        (0u32..30).prop_map(TripCondition::ConsecutiveFailures),
        (ratio(), 0u32..300, window).prop_map(|(ratio, min_calls, window)| {
            TripCondition::FailureRatio {
                ratio,
                min_calls,
                window,
            }
        }),
    ]
}

fn half_open() -> impl Strategy<Value = HalfOpen> {
    prop_oneof![
        (0u32..12).prop_map(HalfOpen::Probes),
        (0u32..40, ratio()).prop_map(|(calls, failure_ratio)| HalfOpen::Ratio {
            calls,
            failure_ratio
        }),
        ratio().prop_map(|failure_ratio| HalfOpen::Progressive { failure_ratio }),
    ]
}

#[derive(Clone, Debug)]
struct Settings {
    trip: TripCondition,
    slow: Option<SlowCalls>,
    open_for: Duration,
    growth: (f64, Duration),
    jitter: (f64, u64),
    break_fn: usize,
    half_open: HalfOpen,
    probe_timeout: Duration,
    max_wait: Option<(Duration, BreakerState)>,
    interval: Option<Duration>,
    mode: BreakerMode,
    initial: BreakerState,
}

impl Settings {
    fn builder(&self) -> CircuitBreakerBuilder {
        let mut b = CircuitBreaker::builder()
            .trip(self.trip)
            .open_for(self.open_for)
            .open_growth(self.growth.0, self.growth.1)
            .open_jitter(self.jitter.0, self.jitter.1)
            .half_open(self.half_open)
            .probe_timeout(self.probe_timeout)
            .mode(self.mode)
            .initial_state(self.initial);
        if let Some(slow) = self.slow {
            b = b.slow_calls(slow);
        }
        if let Some(f) = [
            None,
            Some(no_break as fn(&BreakContext) -> Duration),
            Some(growing),
            Some(forever),
        ][self.break_fn]
        {
            b = b.break_duration(f);
        }
        if let Some((wait, then)) = self.max_wait {
            b = b.half_open_max_wait(wait, then);
        }
        if let Some(interval) = self.interval {
            b = b.count_interval(interval);
        }
        b
    }
}

fn settings() -> impl Strategy<Value = Settings> {
    let state = |states: Vec<BreakerState>| proptest::sample::select(states);
    (
        (
            trip(),
            prop_oneof![
                3 => Just(None),
                1 => (prop_oneof![Just(Duration::ZERO), ms(5_000)], ratio())
                    .prop_map(|(threshold, ratio)| Some(SlowCalls { threshold, ratio })),
            ],
            ms(120_000),
            (
                prop_oneof![4 => Just(1.0), 4 => 1.0..4.0f64, 1 => 0.5..1.0f64],
                ms(600_000),
            ),
            (prop_oneof![9 => 0.0..=1.0f64, 1 => Just(1.2)], any::<u64>()),
            0usize..4,
        ),
        (
            half_open(),
            ms(60_000),
            proptest::option::of((
                ms(900_000),
                state(vec![
                    BreakerState::Open,
                    BreakerState::Closed,
                    BreakerState::HalfOpen,
                ]),
            )),
            proptest::option::of(ms(120_000)),
            proptest::sample::select(vec![BreakerMode::Enforcing, BreakerMode::MetricsOnly]),
            state(vec![
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ]),
        ),
    )
        .prop_map(
            |(
                (trip, slow, open_for, growth, jitter, break_fn),
                (half_open, probe_timeout, max_wait, interval, mode, initial),
            )| Settings {
                trip,
                slow,
                open_for,
                growth,
                jitter,
                break_fn,
                half_open,
                probe_timeout,
                max_wait,
                interval,
                mode,
                initial,
            },
        )
}

const STEPS: usize = 200_000;

/// Fails calls at one instant until the breaker opens, moving on past the longest window
/// (and any count interval) every thousand calls, so that successes counted before fall out;
/// how many steps it took.
fn trip_it(b: &mut CircuitBreaker, now: &mut Instant) -> Option<usize> {
    for step in 0..STEPS {
        if b.state() == BreakerState::Open {
            return Some(step);
        }
        if step % 1_000 == 999 {
            *now = *now + Duration::from_secs(121);
        }
        match b.try_acquire(*now) {
            Ok(p) => b.record(*now, p, CallOutcome::Failure),
            Err(r) => *now = r.until.max(*now + Duration::from_nanos(1)),
        }
    }
    None
}

/// Succeeds calls, waiting out every rejection, until the breaker closes. A metrics-only
/// breaker rejects nothing: after a call it admitted without counting it, the driver waits as
/// long as an enforcing twin in the same state would have rejected it.
fn close_it(b: &mut CircuitBreaker, now: &mut Instant) -> Option<usize> {
    for step in 0..STEPS {
        if b.state() == BreakerState::Closed {
            return Some(step);
        }
        match b.try_acquire(*now) {
            Ok(p) => {
                let counted = p.is_probe() || b.state() == BreakerState::Closed;
                b.record(*now, p, CallOutcome::Success);
                if !counted {
                    let mut twin = b.clone();
                    twin.set_mode(*now, BreakerMode::Enforcing);
                    let wait = twin.try_acquire(*now).err().map(|r| r.until);
                    *now = wait.unwrap_or(*now).max(*now + Duration::from_nanos(1));
                }
            }
            Err(r) => *now = r.until.max(*now + Duration::from_nanos(1)),
        }
    }
    None
}

#[test]
fn every_breaker_the_builder_accepts_can_trip_and_close() {
    let built = Cell::new(0usize);
    let refused = Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: 4_000,
        ..Config::default()
    });
    runner
        .run(&settings(), |s| {
            let mut b = match s.builder().build() {
                Ok(b) => b,
                Err(e) => {
                    refused.set(refused.get() + 1);
                    // Refusals name a setting the builder has.
                    prop_assert!(!e.field().is_empty());
                    return Ok(());
                }
            };
            built.set(built.get() + 1);
            let mut now = Instant::from_secs(1);
            prop_assert!(
                close_it(&mut b, &mut now).is_some(),
                "never closed at first: {s:?}"
            );
            prop_assert!(trip_it(&mut b, &mut now).is_some(), "never tripped: {s:?}");
            prop_assert!(
                close_it(&mut b, &mut now).is_some(),
                "never closed again: {s:?}"
            );
            Ok(())
        })
        .unwrap();
    println!("built {}, refused {}", built.get(), refused.get());
    assert!(
        built.get() > 1_500,
        "too few accepted settings to judge: {}",
        built.get()
    );
}
