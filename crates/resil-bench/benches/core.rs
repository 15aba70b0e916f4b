//! resil-core hot paths beside backon and a hand-written floor, in one run.
//!
//! `cargo bench -p resil-bench --bench core` (see BENCHMARKS.md for figures and method).

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use backon::BackoffBuilder;
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use resil_core::{
    Action, Backoff, BackoffSchedule, CallOutcome, CircuitBreaker, Input, Instant, Jitter, Method,
    RequestInfo, ResponseHead, RetryBudget, RetryMachine, RetryPolicy,
};

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(20);
const DELAYS: usize = 8;

/// The floor: `min(base · 2^n, cap)` by hand.
fn hand_written(n: u32) -> Duration {
    let base = BASE.as_nanos() as u64;
    let cap = CAP.as_nanos() as u64;
    let d = if n >= 64 {
        cap
    } else {
        base.checked_shl(n)
            .filter(|d| d >> n == base)
            .unwrap_or(cap)
    };
    Duration::from_nanos(d.min(cap))
}

fn delays(c: &mut Criterion) {
    let mut g = c.benchmark_group("delay");
    let plain = BackoffSchedule::new(Backoff::exponential(BASE), Jitter::None, CAP).unwrap();
    let full = BackoffSchedule::new(Backoff::exponential(BASE), Jitter::Full, CAP).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    // One delay at a random-access retry number.
    g.bench_function("one/hand_written", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) & 7;
            hand_written(black_box(n))
        })
    });
    g.bench_function("one/hand_written_full_jitter_chacha8", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) & 7;
            let d = hand_written(black_box(n)).as_nanos() as u64;
            let r = ((u128::from(rng.next_u64()) * u128::from(d + 1)) >> 64) as u64;
            Duration::from_nanos(r)
        })
    });
    g.bench_function("one/resil_no_jitter", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) & 7;
            plain.delay(black_box(n), Duration::ZERO, &mut rng)
        })
    });
    g.bench_function("one/resil_full_jitter", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) & 7;
            full.delay(black_box(n), Duration::ZERO, &mut rng)
        })
    });

    let mut fast = resil_core::rand::SplitMix64(1);
    g.bench_function("one/resil_full_jitter_splitmix64", |b| {
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) & 7;
            full.delay(black_box(n), Duration::ZERO, &mut fast)
        })
    });

    // A schedule of 8 delays through each library's iterator (divide by 8 for one delay).
    g.bench_function("iter8/hand_written", |b| {
        b.iter(|| {
            (0..DELAYS as u32)
                .map(|n| hand_written(black_box(n)))
                .sum::<Duration>()
        })
    });
    g.bench_function("iter8/resil_no_jitter", |b| {
        b.iter(|| {
            black_box(&plain)
                .delays(&mut rng)
                .take(DELAYS)
                .sum::<Duration>()
        })
    });
    g.bench_function("iter8/resil_full_jitter", |b| {
        b.iter(|| {
            black_box(&full)
                .delays(&mut rng)
                .take(DELAYS)
                .sum::<Duration>()
        })
    });
    let backon_plain = backon::ExponentialBuilder::new()
        .with_min_delay(BASE)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .with_max_times(DELAYS);
    let backon_jitter = backon_plain.with_jitter_seed(1);
    g.bench_function("iter8/backon_no_jitter", |b| {
        b.iter(|| black_box(backon_plain).build().sum::<Duration>())
    });
    g.bench_function("iter8/backon_jitter", |b| {
        b.iter(|| black_box(backon_jitter).build().sum::<Duration>())
    });
    g.finish();
}

/// One logical request: 503, 503, 200 (5 inputs, 8 actions).
fn three_attempts(policy: &RetryPolicy, seed: u64) -> u32 {
    let mut now = Instant::from_secs(1);
    let mut m = RetryMachine::new(policy, RequestInfo::new(Method::Get), now, seed);
    let mut statuses = [503u16, 503, 200].into_iter();
    loop {
        match m.poll_action() {
            Action::Send { attempt, .. } => {
                let head = ResponseHead::new(statuses.next().unwrap_or(200));
                now = now + Duration::from_micros(500);
                m.handle_input(now, Input::Response { attempt, head });
            }
            Action::Sleep { until } => {
                now = until;
                m.handle_input(now, Input::Timer);
            }
            Action::Done { attempt } => return attempt.number(),
            // This policy does not hedge: nothing is cancelled.
            Action::Fail(_) | Action::Cancel { .. } => return 0,
        }
    }
}

fn machine(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    let jittered = RetryPolicy::builder().build().unwrap();
    let plain = RetryPolicy::builder().jitter(Jitter::None).build().unwrap();
    g.bench_function("first_attempt_ok", |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            let now = Instant::from_secs(1);
            let mut m = RetryMachine::new(&jittered, RequestInfo::new(Method::Get), now, seed);
            let Action::Send { attempt, .. } = m.poll_action() else {
                unreachable!()
            };
            m.handle_input(
                now,
                Input::Response {
                    attempt,
                    head: ResponseHead::new(200),
                },
            );
            m.poll_action()
        })
    });
    g.bench_function("three_attempts_full_jitter", |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            three_attempts(black_box(&jittered), seed)
        })
    });
    g.bench_function("three_attempts_no_jitter", |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            three_attempts(black_box(&plain), seed)
        })
    });
    g.finish();
}

fn breaker_and_budget(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    let mut breaker = CircuitBreaker::builder().build().unwrap();
    g.bench_function("acquire_record", |b| {
        let mut t = 0u64;
        b.iter(|| {
            t += 1_000;
            let now = Instant::from_nanos(t);
            if let Ok(p) = breaker.try_acquire(black_box(now)) {
                breaker.record(now, p, black_box(CallOutcome::Success));
            }
        })
    });
    let shared = Mutex::new(CircuitBreaker::builder().build().unwrap());
    g.bench_function("acquire_record_mutex", |b| {
        let mut t = 0u64;
        b.iter(|| {
            t += 1_000;
            let now = Instant::from_nanos(t);
            let permit = shared.lock().unwrap().try_acquire(black_box(now));
            if let Ok(p) = permit {
                shared
                    .lock()
                    .unwrap()
                    .record(now, p, black_box(CallOutcome::Success));
            }
        })
    });
    let mut budget = RetryBudget::default();
    g.bench_function("budget_deposit_withdraw", |b| {
        let mut t = 0u64;
        b.iter(|| {
            t += 1_000;
            let now = Instant::from_nanos(t);
            budget.record_request(now);
            budget.try_withdraw(black_box(now))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(60)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = delays, machine, breaker_and_budget
}
criterion_main!(benches);
