//! Building policies, schedules, breakers and budgets from arbitrary numbers: either a clear
//! error naming a field, or a value whose delays stay under its cap for any retry number.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{
    Backoff, BackoffSchedule, Cause, Instant, Jitter, QuotaCosts, RetryBudget, RetryPolicy,
};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let d = |u: &mut Unstructured<'_>| {
        Duration::new(
            u64::arbitrary(u).unwrap_or(0),
            u32::arbitrary(u).unwrap_or(0) % 1_000_000_000,
        )
    };
    let f = |u: &mut Unstructured<'_>| f64::arbitrary(u).unwrap_or(0.0);
    let backoff = match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 => Backoff::Constant(d(&mut u)),
        1 => Backoff::Linear {
            initial: d(&mut u),
            step: d(&mut u),
        },
        2 => Backoff::exponential(d(&mut u)),
        3 => Backoff::Exponential {
            base: d(&mut u),
            multiplier: f(&mut u),
        },
        4 => Backoff::Fibonacci { base: d(&mut u) },
        _ => Backoff::DecorrelatedJitter { base: d(&mut u) },
    };
    let jitter = match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        3 => Jitter::Proportional(f(&mut u)),
        4 => Jitter::Additive(f(&mut u)),
        _ => Jitter::Range {
            low: f(&mut u),
            high: f(&mut u),
        },
    };
    let cap = d(&mut u);
    match BackoffSchedule::new(backoff, jitter, cap) {
        Ok(s) => {
            let mut rng =
                <resil_core::rand::ChaCha8Rng as resil_core::rand::SeedableRng>::seed_from_u64(
                    u64::arbitrary(&mut u).unwrap_or(0),
                );
            for _ in 0..8 {
                let retry = u32::arbitrary(&mut u).unwrap_or(0);
                assert!(s.delay(retry, d(&mut u), &mut rng) <= cap);
                assert!(s.nominal(retry) <= cap);
            }
        }
        Err(e) => assert!(!e.field().is_empty() && !e.to_string().is_empty()),
    }
    let statuses: Vec<u16> = (0..u.int_in_range(0..=4usize).unwrap_or(0))
        .map(|_| u16::arbitrary(&mut u).unwrap_or(0))
        .collect();
    let policy = RetryPolicy::builder()
        .backoff(backoff)
        .jitter(jitter)
        .max_attempts(u32::arbitrary(&mut u).unwrap_or(0))
        .retry_statuses(&statuses)
        .attempt_timeout(bool::arbitrary(&mut u).unwrap_or(false).then(|| d(&mut u)))
        .total_timeout(bool::arbitrary(&mut u).unwrap_or(false).then(|| d(&mut u)))
        .retry_after_spread(f(&mut u))
        .build();
    if let Err(e) = policy {
        assert!(!e.field().is_empty());
    }
    if let Ok(mut budget) =
        RetryBudget::ratio(f(&mut u), u32::arbitrary(&mut u).unwrap_or(0), d(&mut u))
    {
        let now = Instant::from_nanos(u64::arbitrary(&mut u).unwrap_or(0));
        budget.record_request(now);
        let _ = budget.try_withdraw(now);
        let _ = budget.available(now);
    }
    if let Ok(mut bucket) =
        RetryBudget::token_bucket(u32::arbitrary(&mut u).unwrap_or(0), f(&mut u))
    {
        bucket.record_outcome(bool::arbitrary(&mut u).unwrap_or(false));
        let _ = bucket.try_withdraw(Instant::ZERO);
        if let Ok(new) = RetryBudget::grpc(u32::arbitrary(&mut u).unwrap_or(0), f(&mut u)) {
            bucket.reconfigure(new);
            assert!(bucket.tokens().is_some());
        }
    }
    let costs = QuotaCosts {
        retry: u32::arbitrary(&mut u).unwrap_or(0),
        timeout: u32::arbitrary(&mut u).unwrap_or(0),
        throttled: u32::arbitrary(&mut u).unwrap_or(0),
        success: u32::arbitrary(&mut u).unwrap_or(0),
    };
    if let Ok(mut quota) = RetryBudget::quota(u32::arbitrary(&mut u).unwrap_or(0), costs) {
        let cause = Cause::Status(u16::arbitrary(&mut u).unwrap_or(0));
        let before = quota.tokens();
        let granted = quota.try_withdraw_after(Instant::ZERO, cause);
        quota.record_attempt(Instant::ZERO, Some(cause), false);
        assert!(
            !granted || quota.tokens() <= before,
            "a refund is never more than the cost"
        );
    }
});
