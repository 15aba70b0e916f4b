//! Properties of the limiters over arbitrary settings and operation sequences (proptest):
//! waits never end past the caller's bound or the limiter's `max_wait`, rates and limits stay
//! within their bounds, a bulkhead never admits above its limit nor loses a slot, and nothing
//! panics — time going backwards and garbage `RateLimit` headers included.

use core::time::Duration;

use proptest::prelude::*;
use resil_core::{
    AdaptiveRateLimiter, AdaptiveThrottle, Admission, Admit, Ask, AttemptKind, ConcurrencyLimiter,
    Feedback, Grant, Instant, LimitAlgorithm, QuotaPacer, RateLimitField, RateLimitPolicyField,
    RateLimiter, ServerQuota, Ticket, UnixTime,
};

#[derive(Clone, Debug)]
enum Op {
    /// Ask, with a bound this many ms ahead (or none).
    Acquire(AttemptKind, Option<u32>),
    Claim(usize),
    Cancel(usize),
    Record(usize, Feedback),
    Release(usize),
    Forward(u32),
    Back(u32),
    /// For the pacer: a quota (remaining, reset in s) and a `Retry-After` in s.
    Observe(Option<(u64, u64)>, Option<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(AttemptKind::First),
        Just(AttemptKind::Retry),
        Just(AttemptKind::RetryAfterTimeout),
        Just(AttemptKind::Hedge),
    ];
    let feedback = prop_oneof![
        Just(Feedback::Accepted),
        Just(Feedback::BackPressure),
        Just(Feedback::TransportError),
    ];
    prop_oneof![
        4 => (kind, proptest::option::of(0..60_000u32)).prop_map(|(k, b)| Op::Acquire(k, b)),
        2 => any::<usize>().prop_map(Op::Claim),
        1 => any::<usize>().prop_map(Op::Cancel),
        3 => (any::<usize>(), feedback).prop_map(|(i, f)| Op::Record(i, f)),
        1 => any::<usize>().prop_map(Op::Release),
        3 => (0..5_000u32).prop_map(Op::Forward),
        1 => (0..5_000u32).prop_map(Op::Back),
        1 => (
            proptest::option::of((0..5u64, prop_oneof![0..120u64, Just(u64::MAX / 2)])),
            proptest::option::of(prop_oneof![0..60u64, Just(u64::MAX)]),
        )
            .prop_map(|(q, r)| Op::Observe(q, r)),
    ]
}

/// What the driver holds.
#[derive(Default)]
struct Held {
    grants: Vec<Grant>,
    tickets: Vec<Ticket>,
}

fn take<T>(items: &mut Vec<T>, i: usize) -> Option<T> {
    (!items.is_empty()).then(|| items.swap_remove(i % items.len()))
}

/// Runs `ops` against `limiter`, checking every answer's bounds; `check` sees the limiter
/// after each step with the grants held (and whether `acquire` just admitted one), and
/// `observe` handles [`Op::Observe`].
fn drive<L: Admission>(
    limiter: &mut L,
    ops: &[Op],
    max_wait: Duration,
    mut check: impl FnMut(&mut L, &Held, Instant, bool),
    mut observe: impl FnMut(&mut L, Instant, Option<ServerQuota>, Option<Duration>) -> bool,
) {
    let mut now = Instant::from_secs(1000);
    // The latest instant the limiter was told: its own clock never runs back below it.
    let mut latest = Instant::ZERO;
    let mut held = Held::default();
    for op in ops {
        let mut answer = None;
        let mut called = true;
        let mut admitted = false;
        match *op {
            Op::Acquire(kind, bound) => {
                let not_after = bound.map_or(Instant::MAX, |ms| {
                    now + Duration::from_millis(u64::from(ms))
                });
                let ask = Ask::new(kind).not_after(not_after);
                let admit = limiter.acquire(now, ask);
                admitted = matches!(admit, Admit::Now(_));
                answer = Some((admit, not_after));
            }
            Op::Claim(i) => match take(&mut held.tickets, i) {
                Some(ticket) => answer = Some((limiter.claim(now, ticket), Instant::MAX)),
                None => called = false,
            },
            Op::Cancel(i) => match take(&mut held.tickets, i) {
                Some(ticket) => {
                    let _ = limiter.cancel(now, ticket);
                }
                None => called = false,
            },
            Op::Record(i, feedback) => match take(&mut held.grants, i) {
                Some(grant) => {
                    let _ = limiter.record(now, grant, feedback);
                }
                None => called = false,
            },
            Op::Release(i) => match take(&mut held.grants, i) {
                Some(grant) => {
                    let _ = limiter.release(now, grant);
                }
                None => called = false,
            },
            Op::Forward(ms) => {
                now = now + Duration::from_millis(u64::from(ms));
                called = false;
            }
            Op::Back(ms) => {
                now = Instant::from_nanos(now.as_nanos().saturating_sub(u64::from(ms) * 1_000_000));
                called = false;
            }
            Op::Observe(quota, retry_after) => {
                let quota = quota.map(|(remaining, reset)| ServerQuota {
                    remaining,
                    reset: Duration::from_secs(reset),
                });
                called = observe(limiter, now, quota, retry_after.map(Duration::from_secs));
            }
        }
        if called {
            latest = latest.max(now);
        }
        if let Some((admit, not_after)) = answer {
            match admit {
                Admit::Now(grant) => held.grants.push(grant),
                Admit::Wait { until, ticket } | Admit::Queued { until, ticket } => {
                    assert!(
                        until > latest,
                        "a wait that ended already: {until} at {latest}"
                    );
                    assert!(
                        until <= not_after,
                        "{until} is past the caller's {not_after}"
                    );
                    assert!(
                        until <= latest + max_wait,
                        "{until} is past max_wait from {latest}"
                    );
                    held.tickets.push(ticket);
                }
                Admit::Reject(reason) => assert!(!reason.to_string().is_empty()),
            }
        }
        check(limiter, &held, latest, admitted);
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..200)
}

/// Only the pacer observes responses.
fn ignore<L>(_: &mut L, _: Instant, _: Option<ServerQuota>, _: Option<Duration>) -> bool {
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn token_bucket_waits_stay_within_bounds(
        rate in prop_oneof![0.001..10.0f64, 10.0..1e6f64],
        burst in 1..50u32,
        max_wait_ms in 0..100_000u64,
        ops in ops(),
    ) {
        let max_wait = Duration::from_millis(max_wait_ms);
        let mut limiter = RateLimiter::builder()
            .rate(rate)
            .burst(burst)
            .max_wait(max_wait)
            .build()
            .unwrap();
        drive(&mut limiter, &ops, max_wait, |l, _, now, _| {
            assert!(l.available(now) <= u64::from(burst));
        }, ignore);
    }

    #[test]
    fn adaptive_rate_stays_within_its_bounds(
        min in 0.01..5.0f64,
        span in 0.0..100.0f64,
        beta in 0.05..0.95f64,
        scale in 0.01..10.0f64,
        max_wait_ms in 0..100_000u64,
        ops in ops(),
    ) {
        let max_wait = Duration::from_millis(max_wait_ms);
        let max = min + span;
        let mut limiter = AdaptiveRateLimiter::builder()
            .rate_bounds(min, max)
            .beta(beta)
            .scale_constant(scale)
            .max_wait(max_wait)
            .build()
            .unwrap();
        drive(&mut limiter, &ops, max_wait, |l, _, _, _| {
            let fill = l.fill_rate();
            assert!(fill >= min && fill <= max, "fill rate {fill} outside [{min}, {max}]");
            assert!(l.measured_rate().is_finite() && l.measured_rate() >= 0.0);
        }, ignore);
    }

    #[test]
    fn sre_throttle_probability_is_a_probability(
        k in 1.0..10.0f64,
        window_ms in 10..600_000u64,
        min_requests in 0..20u32,
        seed in any::<u64>(),
        ops in ops(),
    ) {
        let mut throttle = AdaptiveThrottle::builder()
            .k(k)
            .window(Duration::from_millis(window_ms))
            .min_requests(min_requests)
            .seed(seed)
            .build()
            .unwrap();
        drive(&mut throttle, &ops, Duration::ZERO, |l, _, now, _| {
            let p = l.reject_probability(now);
            assert!((0.0..1.0).contains(&p), "{p}");
            let (requests, accepts) = l.counts(now);
            assert!(accepts <= requests);
        }, ignore);
    }

    #[test]
    fn a_bulkhead_never_admits_above_its_limit_nor_loses_a_slot(
        limit in 1..20u32,
        adaptive in 0..3u8,
        queue in proptest::option::of((1..10u32, 1..10_000u64)),
        max_latency in proptest::option::of(1..5_000u64),
        ops in ops(),
    ) {
        let algorithm = match adaptive {
            0 => LimitAlgorithm::Static,
            1 => LimitAlgorithm::aimd(),
            _ => LimitAlgorithm::gradient(),
        };
        let mut builder = ConcurrencyLimiter::builder()
            .algorithm(algorithm)
            .limit(limit)
            .bounds(1, 40);
        if let Some((capacity, timeout)) = queue {
            builder = builder.queue(capacity, Duration::from_millis(timeout));
        }
        if let Some(bound) = max_latency {
            builder = builder.max_latency(Duration::from_millis(bound));
        }
        let mut limiter = builder.build().unwrap();
        let (min, max) = if adaptive == 0 { (limit, limit) } else { (1, 40) };
        let max_wait = Duration::from_millis(queue.map_or(0, |(_, t)| t));
        drive(
            &mut limiter,
            &ops,
            max_wait,
            |l, held, _, admitted| {
                assert!((min..=max).contains(&l.limit()));
                if admitted {
                    assert!(l.inflight() <= l.limit(), "admitted above the limit");
                }
                // Every grant out holds a slot; the rest are held for queued callers.
                let held_grants = held.grants.len() as u32;
                assert!(l.inflight() >= held_grants, "{} < {held_grants}", l.inflight());
                assert!(l.inflight() <= held_grants + l.queued());
            },
            ignore,
        );
    }

    #[test]
    fn pacer_waits_stay_within_bounds(
        jitter in 0.0..=1.0f64,
        max_wait_ms in 0..100_000u64,
        max_block_s in 1..1_000u64,
        seed in any::<u64>(),
        ops in ops(),
    ) {
        let max_wait = Duration::from_millis(max_wait_ms);
        let max_block = Duration::from_secs(max_block_s);
        let mut pacer = QuotaPacer::builder()
            .jitter(jitter)
            .max_wait(max_wait)
            .max_block(max_block)
            .seed(seed)
            .build()
            .unwrap();
        drive(&mut pacer, &ops, max_wait, |p, _, now, _| {
            if let Some(until) = p.blocked_until() {
                assert!(until <= now + max_block, "a block longer than max_block");
            }
        }, |p, now, quota, retry_after| {
                p.observe(now, quota, retry_after);
                true
            });
    }

    #[test]
    fn rate_limit_parsers_never_panic_on_garbage(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        text in "[ -~]{0,80}",
        wall in any::<u64>(),
    ) {
        for value in [&bytes[..], text.as_bytes()] {
            if let Some(field) = RateLimitField::parse(value) {
                assert!(field.iter().count() > 0);
            }
            if let Some(field) = RateLimitPolicyField::parse(value) {
                assert!(field.iter().all(|p| p.window != Some(Duration::ZERO)));
            }
            let _ = ServerQuota::from_x_rate_limit(value, value, Some(UnixTime(wall)));
            let headers = [("RateLimit", value), ("RateLimit-Policy", value)];
            let _ = ServerQuota::from_headers(&headers, None);
        }
    }

    #[test]
    fn well_formed_rate_limit_fields_read_back(
        items in proptest::collection::vec(
            (0..1_000_000u64, proptest::option::of(0..1_000_000u64), any::<bool>()),
            1..8,
        ),
        spaces in "[ ]{0,2}",
    ) {
        let value = items
            .iter()
            .enumerate()
            .map(|(i, (r, t, token))| {
                let name = if *token { format!("p{i}") } else { format!("\"p{i}\"") };
                let reset = t.map(|t| format!(";t={t}")).unwrap_or_default();
                format!("{name};r={r}{reset};acme-x=?1")
            })
            .collect::<Vec<_>>()
            .join(&format!(",{spaces}"));
        let field = RateLimitField::parse(value.as_bytes()).expect("valid");
        let read: Vec<_> = field.iter().map(|l| (l.remaining, l.reset.map(|d| d.as_secs()))).collect();
        let written: Vec<_> = items.iter().map(|(r, t, _)| (*r, *t)).collect();
        prop_assert_eq!(read, written);
    }
}
