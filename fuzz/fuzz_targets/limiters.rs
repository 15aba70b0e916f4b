//! The limiters under arbitrary settings and operation sequences, with time that may go
//! backwards and garbage `RateLimit` / `X-RateLimit-*` headers: never a panic, no wait past
//! the caller's bound or the limiter's `max_wait`, no grant above a bulkhead's limit, no slot
//! lost.
#![no_main]

use core::time::Duration;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_core::{
    AdaptiveRateLimiter, AdaptiveThrottle, Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter,
    Feedback, Grant, Instant, LimitAlgorithm, QuotaPacer, RateLimitField, RateLimitPolicyField,
    RateLimiter, ServerQuota, Ticket, UnixTime,
};

enum Machine {
    Rate(RateLimiter),
    Adaptive(AdaptiveRateLimiter),
    Throttle(AdaptiveThrottle),
    Bulkhead(ConcurrencyLimiter),
    Pacer(QuotaPacer),
}

impl Machine {
    fn admission(&mut self) -> &mut dyn Admission {
        match self {
            Machine::Rate(m) => m,
            Machine::Adaptive(m) => m,
            Machine::Throttle(m) => m,
            Machine::Bulkhead(m) => m,
            Machine::Pacer(m) => m,
        }
    }
}

fn duration(u: &mut Unstructured<'_>) -> Duration {
    Duration::from_millis(u.int_in_range(0..=120_000u64).unwrap_or(0))
}

/// Builds one machine from the input; `None` when the settings are refused (which must be a
/// clean error, never a panic).
fn build(u: &mut Unstructured<'_>) -> Option<(Machine, Duration)> {
    let max_wait = duration(u);
    let machine = match u.int_in_range(0..=4u8).ok()? {
        0 => Machine::Rate(
            RateLimiter::builder()
                .rate(f64::arbitrary(u).ok()?)
                .burst(u.int_in_range(0..=100u32).ok()?)
                .max_wait(max_wait)
                .build()
                .ok()?,
        ),
        1 => Machine::Adaptive(
            AdaptiveRateLimiter::builder()
                .rate_bounds(f64::arbitrary(u).ok()?, f64::arbitrary(u).ok()?)
                .beta(f64::arbitrary(u).ok()?)
                .scale_constant(f64::arbitrary(u).ok()?)
                .max_wait(max_wait)
                .build()
                .ok()?,
        ),
        2 => Machine::Throttle(
            AdaptiveThrottle::builder()
                .k(f64::arbitrary(u).ok()?)
                .window(duration(u))
                .min_requests(u.int_in_range(0..=50u32).ok()?)
                .seed(u64::arbitrary(u).ok()?)
                .build()
                .ok()?,
        ),
        3 => {
            let algorithm = match u.int_in_range(0..=2u8).ok()? {
                0 => LimitAlgorithm::Static,
                1 => LimitAlgorithm::Aimd {
                    backoff_ratio: f64::arbitrary(u).ok()?,
                },
                _ => LimitAlgorithm::Gradient {
                    tolerance: f64::arbitrary(u).ok()?,
                    smoothing: f64::arbitrary(u).ok()?,
                    headroom: u.int_in_range(0..=16u32).ok()?,
                },
            };
            let mut builder = ConcurrencyLimiter::builder()
                .algorithm(algorithm)
                .limit(u.int_in_range(0..=40u32).ok()?)
                .bounds(
                    u.int_in_range(0..=8u32).ok()?,
                    u.int_in_range(0..=64u32).ok()?,
                );
            if bool::arbitrary(u).ok()? {
                builder = builder.queue(u.int_in_range(0..=16u32).ok()?, max_wait);
            }
            if bool::arbitrary(u).ok()? {
                builder = builder.max_latency(duration(u));
            }
            Machine::Bulkhead(builder.build().ok()?)
        }
        _ => Machine::Pacer(
            QuotaPacer::builder()
                .jitter(f64::arbitrary(u).ok()?)
                .max_wait(max_wait)
                .max_block(duration(u))
                .seed(u64::arbitrary(u).ok()?)
                .build()
                .ok()?,
        ),
    };
    Some((machine, max_wait))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Some((mut machine, max_wait)) = build(&mut u) else {
        return;
    };
    let mut now = Instant::from_secs(u.int_in_range(0..=10_000u64).unwrap_or(0));
    // The latest instant the machine was told: its clock never runs back below it.
    let mut latest = Instant::ZERO;
    let mut grants: Vec<Grant> = Vec::new();
    let mut tickets: Vec<Ticket> = Vec::new();
    while !u.is_empty() {
        let step = u.int_in_range(0..=8u8).unwrap_or(0);
        let mut answer = None;
        match step {
            0 => {
                now = now + duration(&mut u);
                continue;
            }
            1 => {
                let back = duration(&mut u);
                now = Instant::from_nanos(now.as_nanos().saturating_sub(back.as_nanos() as u64));
                continue;
            }
            2 | 3 => {
                let kind = *u
                    .choose(&[
                        AttemptKind::First,
                        AttemptKind::Retry,
                        AttemptKind::RetryAfterTimeout,
                        AttemptKind::Hedge,
                    ])
                    .unwrap_or(&AttemptKind::First);
                let not_after = if bool::arbitrary(&mut u).unwrap_or(false) {
                    now + duration(&mut u)
                } else {
                    Instant::MAX
                };
                let admit = machine
                    .admission()
                    .acquire(now, Ask::new(kind).not_after(not_after));
                answer = Some((admit, not_after));
            }
            4 if !tickets.is_empty() => {
                let i = u.choose_index(tickets.len()).unwrap_or(0);
                let ticket = tickets.swap_remove(i);
                if bool::arbitrary(&mut u).unwrap_or(false) {
                    let _ = machine.admission().cancel(now, ticket);
                } else {
                    answer = Some((machine.admission().claim(now, ticket), Instant::MAX));
                }
            }
            5 | 6 if !grants.is_empty() => {
                let i = u.choose_index(grants.len()).unwrap_or(0);
                let grant = grants.swap_remove(i);
                let _ = match u.int_in_range(0..=3u8).unwrap_or(0) {
                    0 => machine.admission().release(now, grant),
                    1 => machine
                        .admission()
                        .record(now, grant, Feedback::BackPressure),
                    2 => machine
                        .admission()
                        .record(now, grant, Feedback::TransportError),
                    _ => machine.admission().record(now, grant, Feedback::Accepted),
                };
            }
            7 => {
                // The server's answer, as raw header values.
                let len = u.int_in_range(0..=64usize).unwrap_or(0);
                let value = u.bytes(len).unwrap_or(&[]);
                let _ = RateLimitField::parse(value).map(|f| f.iter().count());
                let _ = RateLimitPolicyField::parse(value).map(|f| f.iter().count());
                let wall = Some(UnixTime(u64::arbitrary(&mut u).unwrap_or(0)));
                let headers = [
                    ("RateLimit", value),
                    ("RateLimit-Policy", value),
                    ("X-RateLimit-Remaining", value),
                    ("X-RateLimit-Reset", value),
                ];
                let quota = ServerQuota::from_headers(&headers, wall);
                let retry_after = bool::arbitrary(&mut u)
                    .unwrap_or(false)
                    .then(|| Duration::from_secs(u64::arbitrary(&mut u).unwrap_or(0)));
                if let Machine::Pacer(pacer) = &mut machine {
                    pacer.observe(now, quota, retry_after);
                } else {
                    continue;
                }
            }
            _ => continue,
        }
        latest = latest.max(now);
        if let Some((admit, not_after)) = answer {
            match admit {
                Admit::Now(grant) => grants.push(grant),
                Admit::Wait { until, ticket } | Admit::Queued { until, ticket } => {
                    assert!(until > latest, "a wait that already ended");
                    assert!(until <= not_after, "a wait past the caller's bound");
                    assert!(until <= latest + max_wait, "a wait past max_wait");
                    tickets.push(ticket);
                }
                Admit::Reject(reason) => assert!(!reason.to_string().is_empty()),
            }
        }
        match &mut machine {
            Machine::Bulkhead(b) => {
                assert!(b.inflight() >= grants.len() as u32, "a slot was lost");
                assert!(b.inflight() <= grants.len() as u32 + b.queued());
            }
            Machine::Throttle(t) => {
                let p = t.reject_probability(latest);
                assert!((0.0..1.0).contains(&p));
            }
            Machine::Adaptive(a) => assert!(a.fill_rate().is_finite() && a.fill_rate() > 0.0),
            Machine::Rate(_) | Machine::Pacer(_) => {}
        }
    }
});
