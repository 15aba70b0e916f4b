//! Overflow edges: huge retry numbers and `Duration::MAX` in every duration setting.

mod common;

use core::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use resil_core::{
    Backoff, BackoffSchedule, CallOutcome, CircuitBreaker, Instant, Jitter, Method, RequestInfo,
    RetryBudget, RetryMachine, RetryPolicy, TripCondition, Window,
};

const RETRIES: [u32; 6] = [0, 32, 64, 1024, u32::MAX - 1, u32::MAX];

fn every_backoff(d: Duration) -> Vec<Backoff> {
    vec![
        Backoff::Constant(d),
        Backoff::Linear {
            initial: d,
            step: d,
        },
        Backoff::exponential(d),
        Backoff::Exponential {
            base: d,
            multiplier: 1.5,
        },
        Backoff::Exponential {
            base: d,
            multiplier: 1.0,
        },
        Backoff::Exponential {
            base: d,
            multiplier: f64::MAX,
        },
        Backoff::Fibonacci { base: d },
        Backoff::DecorrelatedJitter { base: d },
    ]
}

fn every_jitter() -> Vec<Jitter> {
    vec![
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Proportional(1.0),
        Jitter::Additive(1000.0),
        Jitter::Range {
            low: 0.8,
            high: 1.0,
        },
        Jitter::Range {
            low: 1000.0,
            high: 1000.0,
        },
    ]
}

#[test]
fn huge_retry_numbers_saturate_at_the_cap() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for base in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(100),
        Duration::MAX,
    ] {
        for cap in [Duration::ZERO, Duration::from_secs(20), Duration::MAX] {
            for backoff in every_backoff(base) {
                for jitter in every_jitter() {
                    let s = BackoffSchedule::new(backoff, jitter, cap).unwrap();
                    for retry in RETRIES {
                        let d = s.delay(retry, Duration::MAX, &mut rng);
                        assert!(
                            d <= cap,
                            "{backoff:?} {jitter:?} retry {retry}: {d:?} > {cap:?}"
                        );
                        assert!(s.nominal(retry) <= cap);
                    }
                }
            }
        }
    }
}

#[test]
fn exponential_reaches_the_cap_and_stays_there() {
    let s = BackoffSchedule::new(
        Backoff::exponential(Duration::from_millis(100)),
        Jitter::None,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(s.nominal(7), Duration::from_millis(12_800));
    for retry in [8, 32, 64, 1024, u32::MAX] {
        assert_eq!(s.nominal(retry), Duration::from_secs(20), "retry {retry}");
    }
    let fib = BackoffSchedule::new(
        Backoff::Fibonacci {
            base: Duration::from_secs(1),
        },
        Jitter::None,
        Duration::MAX,
    )
    .unwrap();
    let first: Vec<_> = (0..6).map(|n| fib.nominal(n).as_secs()).collect();
    assert_eq!(first, [1, 1, 2, 3, 5, 8]);
    assert_eq!(fib.nominal(u32::MAX), Duration::from_nanos(u64::MAX));
}

#[test]
fn duration_max_in_every_policy_setting() {
    for backoff in every_backoff(Duration::MAX) {
        let policy = RetryPolicy::builder()
            .backoff(backoff)
            .max_delay(Duration::MAX)
            .attempt_timeout(Some(Duration::MAX))
            .total_timeout(Some(Duration::MAX))
            .max_wait(Some(Duration::MAX))
            .max_retry_after(Duration::MAX)
            .max_attempts(u32::MAX)
            .build()
            .unwrap();
        let start = Instant::from_nanos(u64::MAX - 5);
        let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), start, 3);
        let out = common::drive(
            &mut m,
            start,
            &[
                common::Reply::RetryAfter(503, "99999999999999999999999"),
                common::Reply::Status(503),
            ],
        );
        // Every instant saturates at Instant::MAX, so no sleep can end before the deadline:
        // the machine gives up instead of overflowing.
        assert!(
            matches!(out.last, resil_core::Action::Fail(_)),
            "{:#?}",
            out.lines
        );
    }
}

#[test]
fn instant_arithmetic_saturates() {
    assert_eq!(Instant::MAX + Duration::MAX, Instant::MAX);
    assert_eq!(Instant::ZERO + Duration::MAX, Instant::MAX);
    assert_eq!(Instant::ZERO - Instant::MAX, Duration::ZERO);
    assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
}

#[test]
fn breaker_and_budget_accept_duration_max() {
    let mut b = CircuitBreaker::builder()
        .trip(TripCondition::FailureRatio {
            ratio: 0.5,
            min_calls: 1,
            window: Window::Time(Duration::MAX),
        })
        .open_for(Duration::MAX)
        .open_growth(f64::MAX, Duration::MAX)
        .open_jitter(1.0, 9)
        .probe_timeout(Duration::MAX)
        .build()
        .unwrap();
    let p = b.try_acquire(Instant::ZERO).unwrap();
    b.record(Instant::ZERO, p, CallOutcome::Failure);
    // Open "forever" saturates at Instant::MAX instead of wrapping to the past.
    let in_500_years = Instant::from_secs(31_556_952 * 500);
    assert_eq!(b.try_acquire(in_500_years).unwrap_err().until, Instant::MAX);

    let mut budget = RetryBudget::ratio(1000.0, u32::MAX, Duration::MAX).unwrap();
    budget.record_request(Instant::MAX);
    assert!(budget.try_withdraw(Instant::MAX));
    let mut bucket = RetryBudget::token_bucket(u32::MAX, 1000.0).unwrap();
    bucket.record_outcome(true);
    assert!(bucket.try_withdraw(Instant::MAX));
}
