//! The overload-control machines through their public API, on a fake clock.

use core::time::Duration;

use resil_core::{
    Admission, Admit, Ask, AttemptKind, Feedback, Grant, Instant, LocalRejection, PolicyError,
    Ticket, TransportErrorKind,
};

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const FIRST: Ask = Ask::new(AttemptKind::First);

fn now_grant(admit: Admit) -> Grant {
    match admit {
        Admit::Now(grant) => grant,
        other => panic!("expected Now, got {other:?}"),
    }
}

fn wait_ticket(admit: Admit) -> (Instant, Ticket) {
    match admit {
        Admit::Wait { until, ticket } | Admit::Queued { until, ticket } => (until, ticket),
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn rejection(admit: Admit) -> LocalRejection {
    match admit {
        Admit::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the common shape

/// Each builder result must be an error naming `field`.
fn refused<T: core::fmt::Debug>(
    cases: impl IntoIterator<Item = (Result<T, PolicyError>, &'static str)>,
) {
    for (i, (result, field)) in cases.into_iter().enumerate() {
        let err = result.expect_err(&format!("case {i} ({field}) built"));
        assert_eq!(err.field(), field, "case {i}: {err}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn back_pressure_is_429_503_retry_after_and_timeouts() {
    assert_eq!(Feedback::for_status(429, false), Feedback::BackPressure);
    assert_eq!(Feedback::for_status(503, false), Feedback::BackPressure);
    assert_eq!(Feedback::for_status(500, true), Feedback::BackPressure);
    assert_eq!(Feedback::for_status(500, false), Feedback::Accepted);
    assert_eq!(Feedback::for_status(200, false), Feedback::Accepted);
    assert_eq!(
        Feedback::for_error(TransportErrorKind::Timeout),
        Feedback::BackPressure
    );
    assert_eq!(
        Feedback::for_error(TransportErrorKind::ConnectTimeout),
        Feedback::BackPressure
    );
    assert_eq!(
        Feedback::for_error(TransportErrorKind::Connect),
        Feedback::TransportError
    );
}

#[test]
fn local_rejections_read_as_sentences() {
    let cases = [
        (
            LocalRejection::RateLimited { wait: ms(1500) },
            "the client-side rate limit would delay the attempt by 1.5s, longer than allowed",
        ),
        (
            LocalRejection::Throttled {
                probability_ppm: 425_000,
            },
            "adaptive throttling rejected the attempt locally: the backend accepted too few \
             recent requests (42.5 % are being rejected)",
        ),
        (
            LocalRejection::ConcurrencyLimited { limit: 8 },
            "all 8 concurrency slots are in use",
        ),
        (
            LocalRejection::QueueFull {
                limit: 8,
                queued: 16,
            },
            "all 8 concurrency slots are in use and 16 callers are already queued",
        ),
        (
            LocalRejection::QueueTimeout { waited: ms(250) },
            "waited 250ms in the queue without a concurrency slot",
        ),
        (
            LocalRejection::QuotaExhausted {
                wait: Duration::from_secs(42),
            },
            "the server's rate-limit quota is used up for another 42s, longer than allowed",
        ),
    ];
    for (rejection, text) in cases {
        assert_eq!(rejection.to_string(), text);
    }
}

// ---------------------------------------------------------------- RateLimiter

use resil_core::RateLimiter;

#[test]
fn token_bucket_settings_are_validated() {
    let rate = |r: f64| RateLimiter::builder().rate(r).build();
    refused([
        (RateLimiter::builder().build(), "rate"),
        (rate(0.0), "rate"),
        (rate(-5.0), "rate"),
        (rate(f64::NAN), "rate"),
        (rate(f64::INFINITY), "rate"),
        (rate(1e-30), "rate"),
        (rate(2e9), "rate"),
        (RateLimiter::builder().rate(1.0).burst(0).build(), "burst"),
    ]);
}

#[test]
fn a_token_bucket_admits_its_burst_then_spaces_attempts_by_the_rate() {
    let mut limiter = RateLimiter::builder().rate(10.0).burst(3).build().unwrap();
    for _ in 0..3 {
        let _ = now_grant(limiter.acquire(t(0), FIRST));
    }
    let starts: Vec<_> = (0..3)
        .map(|_| wait_ticket(limiter.acquire(t(0), FIRST)).0)
        .collect();
    assert_eq!(starts, [t(100), t(200), t(300)], "each wait is reserved");
    assert_eq!(limiter.available(t(300)), 0);
    assert_eq!(limiter.available(t(1000)), 3);
}

#[test]
fn a_reserved_start_is_claimed_then_and_not_before() {
    let mut limiter = RateLimiter::builder().rate(1.0).burst(1).build().unwrap();
    let _ = now_grant(limiter.acquire(t(0), FIRST));
    let (until, ticket) = wait_ticket(limiter.acquire(t(0), FIRST));
    assert_eq!(until, t(1000));
    // An early timer is a no-op: the same wait again.
    assert_eq!(limiter.claim(t(400), ticket), Admit::Wait { until, ticket });
    let grant = now_grant(limiter.claim(until, ticket));
    assert_eq!(grant.issued_at(), until);
}

#[test]
fn a_cancelled_reservation_gives_its_start_back() {
    let mut limiter = RateLimiter::builder().rate(1.0).burst(1).build().unwrap();
    let _ = now_grant(limiter.acquire(t(0), FIRST));
    let (_, ticket) = wait_ticket(limiter.acquire(t(0), FIRST));
    let _ = limiter.cancel(t(10), ticket);
    assert_eq!(wait_ticket(limiter.acquire(t(10), FIRST)).0, t(1000));
}

#[test]
fn a_wait_past_the_deadline_or_max_wait_is_a_rejection_that_reserves_nothing() {
    let mut limiter = RateLimiter::builder()
        .rate(1.0)
        .burst(1)
        .max_wait(ms(1500))
        .build()
        .unwrap();
    let _ = now_grant(limiter.acquire(t(0), FIRST));
    let deadline = FIRST.not_after(t(500));
    assert_eq!(
        rejection(limiter.acquire(t(0), deadline)),
        LocalRejection::RateLimited { wait: ms(1000) }
    );
    let _ = wait_ticket(limiter.acquire(t(0), FIRST));
    assert_eq!(
        rejection(limiter.acquire(t(0), FIRST)),
        LocalRejection::RateLimited { wait: ms(2000) },
        "beyond max_wait"
    );
    assert_eq!(wait_ticket(limiter.acquire(t(1000), FIRST)).0, t(2000));
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut limiter = RateLimiter::builder().rate(1.0).burst(1).build().unwrap();
    let _ = now_grant(limiter.acquire(t(5000), FIRST));
    let (until, _) = wait_ticket(limiter.acquire(t(0), FIRST));
    assert_eq!(until, t(6000), "the clock never runs back below t+5s");
}

// ---------------------------------------------------------------- AdaptiveRateLimiter

use resil_core::AdaptiveRateLimiter;

#[test]
fn adaptive_rate_settings_are_validated() {
    let bounds = |min: f64, max: f64| AdaptiveRateLimiter::builder().rate_bounds(min, max).build();
    refused([
        (bounds(0.0, 10.0), "rate_bounds"),
        (bounds(-1.0, 10.0), "rate_bounds"),
        (bounds(f64::INFINITY, f64::INFINITY), "rate_bounds"),
        (bounds(5.0, 1.0), "rate_bounds"),
        (bounds(1.0, f64::NAN), "rate_bounds"),
        (AdaptiveRateLimiter::builder().beta(1.0).build(), "beta"),
        (AdaptiveRateLimiter::builder().beta(0.0).build(), "beta"),
        (
            AdaptiveRateLimiter::builder().scale_constant(-0.4).build(),
            "scale_constant",
        ),
    ]);
}

fn close(expected: f64, actual: f64, what: &str) {
    let tolerance = 1e-12 * expected.abs().max(1.0);
    assert!(
        (expected - actual).abs() <= tolerance,
        "{what}: expected {expected}, got {actual}"
    );
}

/// The Go v2 SDK's `TestAdaptiveRateLimit_Update` (also smithy-rs's
/// `test_client_sending_rates`): one answer every 200 ms, two of them throttles.
#[test]
fn measured_and_fill_rates_match_the_sdk_vectors() {
    let vectors: [(u64, bool, f64, f64); 17] = [
        (200, false, 0.0, 0.5),
        (400, false, 0.0, 0.5),
        (600, false, 4.8, 0.5),
        (800, false, 4.8, 0.5),
        (1000, false, 4.16, 0.5),
        (1200, false, 4.16, 0.6912),
        (1400, false, 4.16, 1.0976),
        (1600, false, 5.632, 1.6384),
        (1800, false, 5.632, 2.3328),
        (2000, true, 4.3264, 3.02848),
        (2200, false, 4.3264, 3.4866391734702598),
        (2400, false, 4.3264, 3.8218744160402554),
        (2600, false, 5.66528, 4.053385727709987),
        (2800, false, 5.66528, 4.200373108479455),
        (3000, false, 4.333056, 4.282036558348658),
        (3200, true, 4.333056, 2.99742559084406),
        (3400, false, 4.333056, 3.4522263943863463),
    ];
    let mut limiter = AdaptiveRateLimiter::builder().build().unwrap();
    // The vectors feed answers only: one grant, taken while nothing is limited, stands for all.
    let grant = now_grant(limiter.acquire(t(0), FIRST));
    for (at, throttled, measured, fill) in vectors {
        let feedback = if throttled {
            Feedback::BackPressure
        } else {
            Feedback::Accepted
        };
        let _ = limiter.record(t(at), grant, feedback);
        close(
            measured,
            limiter.measured_rate(),
            &format!("measured at {at} ms"),
        );
        close(fill, limiter.fill_rate(), &format!("fill at {at} ms"));
    }
}

#[test]
fn the_adaptive_bucket_admits_everything_until_the_first_throttle() {
    let mut limiter = AdaptiveRateLimiter::builder().build().unwrap();
    for i in 0..1000 {
        let g = now_grant(limiter.acquire(t(i), Ask::new(AttemptKind::RetryAfterTimeout)));
        let _ = limiter.record(t(i), g, Feedback::Accepted);
    }
    assert!(!limiter.is_enabled());
    let g = now_grant(limiter.acquire(t(1000), FIRST));
    let _ = limiter.record(t(1000), g, Feedback::BackPressure);
    assert!(limiter.is_enabled());
    // Now the bucket is empty: even a first attempt waits for its token, already reserved.
    let (until, ticket) = wait_ticket(limiter.acquire(t(1000), FIRST));
    assert!(until > t(1000));
    let _ = now_grant(limiter.claim(until, ticket));
}

#[test]
fn retries_cost_five_tokens_and_retries_after_timeouts_ten() {
    let mut limiter = AdaptiveRateLimiter::builder()
        .max_wait(Duration::from_secs(3600))
        .build()
        .unwrap();
    let g = now_grant(limiter.acquire(t(0), FIRST));
    let _ = limiter.record(t(0), g, Feedback::BackPressure);
    // Measured rate 0: the fill rate is the floor, 0.5 tokens per second.
    assert_eq!(limiter.fill_rate(), 0.5);
    let wait = |l: &mut AdaptiveRateLimiter, kind| {
        let (until, ticket) = wait_ticket(l.acquire(t(0), Ask::new(kind)));
        let _ = l.cancel(t(0), ticket);
        until.saturating_duration_since(t(0))
    };
    assert_eq!(
        wait(&mut limiter, AttemptKind::First),
        Duration::from_secs(2)
    );
    assert_eq!(
        wait(&mut limiter, AttemptKind::Retry),
        Duration::from_secs(10)
    );
    assert_eq!(
        wait(&mut limiter, AttemptKind::RetryAfterTimeout),
        Duration::from_secs(20)
    );
}

#[test]
fn an_adaptive_wait_past_the_bound_is_rejected() {
    let mut limiter = AdaptiveRateLimiter::builder().build().unwrap();
    let g = now_grant(limiter.acquire(t(0), FIRST));
    let _ = limiter.record(t(0), g, Feedback::BackPressure);
    let ask = Ask::new(AttemptKind::Retry).not_after(t(1000));
    assert_eq!(
        rejection(limiter.acquire(t(0), ask)),
        LocalRejection::RateLimited {
            wait: Duration::from_secs(10)
        }
    );
}

#[test]
fn the_adaptive_rate_stays_within_its_bounds() {
    let mut limiter = AdaptiveRateLimiter::builder()
        .rate_bounds(2.0, 50.0)
        .max_wait(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut now = t(0);
    for i in 0..20_000u64 {
        now = now + ms(1 + i % 7);
        let feedback = if i % 97 == 0 {
            Feedback::BackPressure
        } else {
            Feedback::Accepted
        };
        let grant = match limiter.acquire(now, FIRST) {
            Admit::Now(g) => g,
            Admit::Wait { until, ticket } | Admit::Queued { until, ticket } => {
                now = until;
                now_grant(limiter.claim(now, ticket))
            }
            Admit::Reject(r) => panic!("{r}"),
        };
        let _ = limiter.record(now, grant, feedback);
        assert!(
            (2.0..=50.0).contains(&limiter.fill_rate()),
            "{}",
            limiter.fill_rate()
        );
    }
}

// ---------------------------------------------------------------- AdaptiveThrottle

use resil_core::AdaptiveThrottle;

#[test]
fn sre_throttle_settings_are_validated() {
    refused([
        (AdaptiveThrottle::builder().k(0.5).build(), "k"),
        (AdaptiveThrottle::builder().k(-2.0).build(), "k"),
        (AdaptiveThrottle::builder().k(f64::NAN).build(), "k"),
        (AdaptiveThrottle::builder().window(ms(1)).build(), "window"),
    ]);
}

/// Offers `offered` attempts per second for `secs` seconds to a backend that accepts at most
/// `capacity` per second; returns attempts sent and accepted per second over the second half.
fn throttle_steady_state(k: f64, offered: u64, capacity: u64, secs: u64) -> (f64, f64) {
    let mut throttle = AdaptiveThrottle::builder().k(k).seed(7).build().unwrap();
    let step = 1_000_000_000 / offered;
    let (mut sent, mut accepted) = (0u64, 0u64);
    let mut second = u64::MAX;
    let mut accepted_this_second = 0;
    for i in 0..offered * secs {
        let now = Instant::from_nanos(i * step);
        if now.as_nanos() / 1_000_000_000 != second {
            second = now.as_nanos() / 1_000_000_000;
            accepted_this_second = 0;
        }
        let Admit::Now(grant) = throttle.acquire(now, FIRST) else {
            continue;
        };
        let ok = accepted_this_second < capacity;
        accepted_this_second += u64::from(ok);
        if second >= secs / 2 {
            sent += 1;
            accepted += u64::from(ok);
        }
        let feedback = if ok {
            Feedback::Accepted
        } else {
            Feedback::BackPressure
        };
        let _ = throttle.record(now, grant, feedback);
    }
    let span = (secs - secs / 2) as f64;
    (sent as f64 / span, accepted as f64 / span)
}

#[test]
fn sre_throttling_settles_at_k_times_what_the_backend_accepts() {
    // K = 2 (the default): the backend sees about twice its capacity, half of it accepted.
    let (sent, accepted) = throttle_steady_state(2.0, 1000, 100, 600);
    assert!((190.0..=210.0).contains(&sent), "sent {sent}/s");
    assert!((98.0..=100.0).contains(&accepted), "accepted {accepted}/s");
    // Offering twice as much changes nothing: local rejections count as requests.
    let (sent, _) = throttle_steady_state(2.0, 2000, 100, 600);
    assert!(
        (190.0..=210.0).contains(&sent),
        "sent {sent}/s at double the offer"
    );
    // A smaller K (failsafe-go's ~1.1) wastes less and reacts sooner.
    let (sent, _) = throttle_steady_state(1.1, 1000, 100, 600);
    assert!(
        (104.0..=116.0).contains(&sent),
        "sent {sent}/s with K = 1.1"
    );
}

#[test]
fn sre_throttling_rejects_nothing_while_half_the_answers_are_accepted() {
    let mut throttle = AdaptiveThrottle::builder().build().unwrap();
    for i in 0..10_000u64 {
        let now = t(i);
        let grant = now_grant(throttle.acquire(now, FIRST));
        let feedback = if i % 2 == 0 {
            Feedback::Accepted
        } else {
            Feedback::BackPressure
        };
        let _ = throttle.record(now, grant, feedback);
    }
    assert_eq!(throttle.reject_probability(t(10_000)), 0.0);
}

#[test]
fn sre_throttling_waits_for_min_requests_and_forgets_after_the_window() {
    let mut throttle = AdaptiveThrottle::builder()
        .min_requests(5)
        .window(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..4 {
        let g = now_grant(throttle.acquire(t(0), FIRST));
        let _ = throttle.record(t(0), g, Feedback::BackPressure);
    }
    assert_eq!(throttle.reject_probability(t(0)), 0.0, "4 < min_requests");
    let g = now_grant(throttle.acquire(t(0), FIRST));
    let _ = throttle.record(t(0), g, Feedback::BackPressure);
    assert!(throttle.reject_probability(t(0)) > 0.8);
    assert_eq!(throttle.counts(t(11_000)), (0, 0), "the window moved on");
    assert_eq!(throttle.reject_probability(t(11_000)), 0.0);
}

#[test]
fn an_abandoned_attempt_counts_for_nothing_in_sre_throttling() {
    let mut throttle = AdaptiveThrottle::builder().build().unwrap();
    for _ in 0..100 {
        let g = now_grant(throttle.acquire(t(0), FIRST));
        let _ = throttle.release(t(1), g);
    }
    assert_eq!(throttle.counts(t(1)), (0, 0));
}

// ---------------------------------------------------------------- ConcurrencyLimiter

use resil_core::{ConcurrencyLimiter, LimitAlgorithm};

#[test]
fn bulkhead_settings_are_validated() {
    let adaptive = || ConcurrencyLimiter::builder().algorithm(LimitAlgorithm::aimd());
    refused([
        (ConcurrencyLimiter::builder().limit(0).build(), "limit"),
        (
            ConcurrencyLimiter::builder().queue(0, ms(100)).build(),
            "queue",
        ),
        (
            ConcurrencyLimiter::builder()
                .queue(100_000, ms(100))
                .build(),
            "queue",
        ),
        (
            ConcurrencyLimiter::builder()
                .queue(4, Duration::ZERO)
                .build(),
            "queue",
        ),
        (
            ConcurrencyLimiter::builder()
                .max_latency(Duration::ZERO)
                .build(),
            "max_latency",
        ),
        (adaptive().bounds(0, 10).build(), "bounds"),
        (adaptive().bounds(10, 5).build(), "bounds"),
        (adaptive().limit(50).bounds(1, 10).build(), "limit"),
        (
            ConcurrencyLimiter::builder()
                .algorithm(LimitAlgorithm::Aimd { backoff_ratio: 1.0 })
                .build(),
            "algorithm",
        ),
        (
            ConcurrencyLimiter::builder()
                .algorithm(LimitAlgorithm::Gradient {
                    tolerance: 0.5,
                    smoothing: 0.2,
                    headroom: 4,
                })
                .build(),
            "algorithm",
        ),
        (
            ConcurrencyLimiter::builder()
                .algorithm(LimitAlgorithm::Gradient {
                    tolerance: 1.5,
                    smoothing: 0.0,
                    headroom: 4,
                })
                .build(),
            "algorithm",
        ),
    ]);
}

#[test]
fn a_bulkhead_without_a_queue_rejects_at_the_limit() {
    let mut bulkhead = ConcurrencyLimiter::builder().limit(2).build().unwrap();
    let a = now_grant(bulkhead.acquire(t(0), FIRST));
    let _b = now_grant(bulkhead.acquire(t(0), FIRST));
    assert_eq!(
        rejection(bulkhead.acquire(t(0), FIRST)),
        LocalRejection::ConcurrencyLimited { limit: 2 }
    );
    let _ = bulkhead.release(t(1), a);
    let _ = now_grant(bulkhead.acquire(t(1), FIRST));
}

#[test]
fn a_freed_slot_goes_to_the_oldest_waiter_not_to_a_newcomer() {
    let mut bulkhead = ConcurrencyLimiter::builder()
        .limit(1)
        .queue(4, ms(1000))
        .build()
        .unwrap();
    let a = now_grant(bulkhead.acquire(t(0), FIRST));
    let (_, first) = wait_ticket(bulkhead.acquire(t(1), FIRST));
    let (_, second) = wait_ticket(bulkhead.acquire(t(2), FIRST));
    let wake = bulkhead.record(t(10), a, Feedback::Accepted);
    assert_eq!(wake.count(), 1);
    assert!(
        matches!(bulkhead.acquire(t(10), FIRST), Admit::Queued { .. }),
        "a newcomer queues behind the waiters"
    );
    // The second waiter, woken too, finds no slot yet and waits on.
    assert!(matches!(
        bulkhead.claim(t(10), second),
        Admit::Queued { .. }
    ));
    let grant = now_grant(bulkhead.claim(t(11), first));
    assert_eq!(grant.issued_at(), t(11), "latency counts from the claim");
    assert_eq!(bulkhead.inflight(), 1);
}

#[test]
fn a_queued_caller_times_out_with_how_long_it_waited() {
    let mut bulkhead = ConcurrencyLimiter::builder()
        .limit(1)
        .queue(1, ms(100))
        .build()
        .unwrap();
    let _a = now_grant(bulkhead.acquire(t(0), FIRST));
    let (until, ticket) = wait_ticket(bulkhead.acquire(t(0), FIRST));
    assert_eq!(until, t(100));
    assert_eq!(
        rejection(bulkhead.acquire(t(0), FIRST)),
        LocalRejection::QueueFull {
            limit: 1,
            queued: 1
        }
    );
    assert_eq!(
        rejection(bulkhead.claim(until, ticket)),
        LocalRejection::QueueTimeout { waited: ms(100) }
    );
    assert_eq!(bulkhead.queued(), 0);
}

#[test]
fn the_queue_wait_never_outlasts_the_callers_deadline() {
    let mut bulkhead = ConcurrencyLimiter::builder()
        .limit(1)
        .queue(4, Duration::from_secs(10))
        .build()
        .unwrap();
    let _a = now_grant(bulkhead.acquire(t(0), FIRST));
    let (until, _) = wait_ticket(bulkhead.acquire(t(0), FIRST.not_after(t(250))));
    assert_eq!(until, t(250));
    assert_eq!(
        rejection(bulkhead.acquire(t(300), FIRST.not_after(t(300)))),
        LocalRejection::ConcurrencyLimited { limit: 1 },
        "no time left to wait"
    );
}

#[test]
fn a_slot_held_for_a_waiter_that_never_claims_is_reclaimed() {
    let mut bulkhead = ConcurrencyLimiter::builder()
        .limit(1)
        .queue(2, ms(100))
        .build()
        .unwrap();
    let a = now_grant(bulkhead.acquire(t(0), FIRST));
    let (_, _lost) = wait_ticket(bulkhead.acquire(t(0), FIRST));
    let _ = bulkhead.release(t(10), a);
    assert_eq!(bulkhead.inflight(), 1, "held for the waiter");
    let _ = now_grant(bulkhead.acquire(t(101), FIRST));
    assert_eq!(bulkhead.inflight(), 1);
}

#[test]
fn cancelling_a_queued_ticket_frees_its_place_and_any_slot_it_held() {
    let mut bulkhead = ConcurrencyLimiter::builder()
        .limit(1)
        .queue(2, ms(100))
        .build()
        .unwrap();
    let a = now_grant(bulkhead.acquire(t(0), FIRST));
    let (_, first) = wait_ticket(bulkhead.acquire(t(0), FIRST));
    let (_, second) = wait_ticket(bulkhead.acquire(t(0), FIRST));
    let _ = bulkhead.release(t(5), a);
    // The first waiter held the slot; cancelling hands it to the second.
    assert_eq!(bulkhead.cancel(t(6), first).count(), 1);
    let _ = now_grant(bulkhead.claim(t(6), second));
}

fn aimd(limit: u32) -> ConcurrencyLimiter {
    ConcurrencyLimiter::builder()
        .algorithm(LimitAlgorithm::aimd())
        .limit(limit)
        .bounds(1, 100)
        .build()
        .unwrap()
}

#[test]
fn aimd_never_grows_while_the_client_is_far_below_its_limit() {
    let mut limiter = aimd(20);
    for i in 0..10_000 {
        let g = now_grant(limiter.acquire(t(i), FIRST));
        let _ = limiter.record(t(i) + ms(1), g, Feedback::Accepted);
    }
    assert_eq!(limiter.limit(), 20);
}

#[test]
fn aimd_grows_by_about_one_per_round_when_busy_and_cuts_once_per_round() {
    let mut limiter = aimd(10);
    let mut now = t(0);
    for _round in 0..5 {
        let grants: Vec<_> = (0..limiter.limit())
            .map(|_| now_grant(limiter.acquire(now, FIRST)))
            .collect();
        now = now + ms(10);
        for g in grants {
            let _ = limiter.record(now, g, Feedback::Accepted);
        }
    }
    assert_eq!(limiter.limit(), 14, "+1 per full round, roughly");
    let grants: Vec<_> = (0..14)
        .map(|_| now_grant(limiter.acquire(now, FIRST)))
        .collect();
    now = now + ms(10);
    for g in grants {
        let _ = limiter.record(now, g, Feedback::BackPressure);
    }
    assert_eq!(limiter.limit(), 13, "14 × 0.9 once, not 0.9^14");
}

#[test]
fn an_absolute_latency_bound_counts_as_back_pressure() {
    let mut limiter = ConcurrencyLimiter::builder()
        .algorithm(LimitAlgorithm::aimd())
        .limit(10)
        .max_latency(ms(200))
        .build()
        .unwrap();
    let g = now_grant(limiter.acquire(t(0), FIRST));
    let _ = limiter.record(t(500), g, Feedback::Accepted);
    assert_eq!(limiter.limit(), 9);
}

#[test]
fn an_abandoned_attempt_frees_its_slot_and_moves_no_limit() {
    let mut limiter = aimd(2);
    let a = now_grant(limiter.acquire(t(0), FIRST));
    let b = now_grant(limiter.acquire(t(0), FIRST));
    let _ = limiter.release(t(10_000), a);
    let _ = limiter.release(t(10_000), b);
    assert_eq!((limiter.inflight(), limiter.limit()), (0, 2));
}

fn gradient(limit: u32) -> ConcurrencyLimiter {
    ConcurrencyLimiter::builder()
        .algorithm(LimitAlgorithm::gradient())
        .limit(limit)
        .bounds(4, 200)
        .build()
        .unwrap()
}

/// Keeps the limiter full for `rounds` rounds of `rtt(limit)` each.
fn run_busy(
    limiter: &mut ConcurrencyLimiter,
    now: &mut Instant,
    rounds: u32,
    rtt: impl Fn(u32) -> Duration,
) {
    for _ in 0..rounds {
        let n = limiter.limit();
        let grants: Vec<_> = (0..n)
            .map(|_| now_grant(limiter.acquire(*now, FIRST)))
            .collect();
        *now = *now + rtt(n);
        for g in grants {
            let _ = limiter.record(*now, g, Feedback::Accepted);
        }
    }
}

#[test]
fn the_gradient_never_grows_while_the_client_is_far_below_its_limit() {
    let mut limiter = gradient(50);
    for i in 0..10_000 {
        let g = now_grant(limiter.acquire(t(i), FIRST));
        let _ = limiter.record(t(i) + ms(1), g, Feedback::Accepted);
    }
    assert_eq!(limiter.limit(), 50);
}

#[test]
fn the_gradient_grows_while_latency_holds_and_shrinks_when_it_climbs() {
    let mut limiter = gradient(10);
    let mut now = t(0);
    run_busy(&mut limiter, &mut now, 20, |_| ms(10));
    let grown = limiter.limit();
    assert!(grown > 100, "flat latency: grew to {grown}");
    // The server starts queueing: five times slower.
    run_busy(&mut limiter, &mut now, 1, |_| ms(50));
    let shrunk = limiter.limit();
    assert!(
        shrunk < grown / 4,
        "queueing latency: shrank to {shrunk} from {grown}"
    );
    assert!(shrunk >= 4, "never below the minimum");
}

use resil_core::Shared;
use std::sync::Mutex;

#[test]
fn limiters_of_every_kind_share_one_dyn_shape() {
    let rate = Mutex::new(RateLimiter::builder().rate(10.0).build().unwrap());
    let bulkhead = Mutex::new(ConcurrencyLimiter::builder().limit(2).build().unwrap());
    let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
    let gates: [&(dyn Shared<dyn Admission + Send> + Sync); 3] = [&throttle, &rate, &bulkhead];
    let mut grants = Vec::new();
    for gate in gates {
        gate.with_mut(&mut |l| grants.push(now_grant(l.acquire(t(0), FIRST))));
    }
    for (gate, grant) in gates.into_iter().zip(grants) {
        gate.with_mut(&mut |l| assert!(!l.record(t(5), grant, Feedback::Accepted).any()));
    }
    assert_eq!(bulkhead.lock().unwrap().inflight(), 0);
}

// ---------------------------------------------------------------- QuotaPacer

use resil_core::{QuotaPacer, ServerQuota};

#[test]
fn pacer_settings_are_validated() {
    refused([
        (QuotaPacer::builder().jitter(1.5).build(), "jitter"),
        (QuotaPacer::builder().jitter(-0.1).build(), "jitter"),
        (QuotaPacer::builder().jitter(f64::NAN).build(), "jitter"),
        (QuotaPacer::builder().max_block(ms(10)).build(), "max_block"),
    ]);
}

fn pacer() -> QuotaPacer {
    QuotaPacer::builder()
        .max_wait(Duration::from_secs(3600))
        .seed(3)
        .build()
        .unwrap()
}

fn quota(remaining: u64, reset_secs: u64) -> Option<ServerQuota> {
    Some(ServerQuota {
        remaining,
        reset: Duration::from_secs(reset_secs),
    })
}

#[test]
fn a_used_up_quota_waits_for_the_reset_with_jitter_above_it() {
    let mut pacer = pacer();
    pacer.observe(t(0), quota(0, 30), None);
    let mut waits = Vec::new();
    for _ in 0..50 {
        let (until, ticket) = wait_ticket(pacer.acquire(t(0), FIRST));
        assert!(until >= t(30_000) && until <= t(33_000), "{until}");
        waits.push(until);
        let _ = pacer.cancel(t(0), ticket);
    }
    waits.sort();
    waits.dedup();
    assert!(waits.len() > 40, "waiters are spread out");
}

#[test]
fn the_pacer_counts_its_own_requests_against_the_remaining_quota() {
    let mut pacer = QuotaPacer::builder().jitter(0.0).build().unwrap();
    pacer.observe(t(0), quota(2, 10), None);
    let _ = now_grant(pacer.acquire(t(1), FIRST));
    let _ = now_grant(pacer.acquire(t(2), FIRST));
    assert_eq!(wait_ticket(pacer.acquire(t(3), FIRST)).0, t(10_000));
    // After the window, nothing is known: attempts go until the server says more.
    let _ = now_grant(pacer.acquire(t(10_000), FIRST));
    assert_eq!(pacer.remaining(), None);
}

#[test]
fn retry_after_wins_over_the_rate_limit_fields() {
    let mut pacer = QuotaPacer::builder().jitter(0.0).build().unwrap();
    pacer.observe(t(0), quota(50, 60), Some(Duration::from_secs(5)));
    assert_eq!(pacer.blocked_until(), Some(t(5000)));
    assert_eq!(wait_ticket(pacer.acquire(t(0), FIRST)).0, t(5000));
}

#[test]
fn a_reset_past_the_callers_bound_is_a_precise_rejection() {
    let mut pacer = pacer();
    pacer.observe(t(0), quota(0, 120), None);
    assert_eq!(
        rejection(pacer.acquire(t(0), FIRST.not_after(t(30_000)))),
        LocalRejection::QuotaExhausted {
            wait: Duration::from_secs(120)
        }
    );
}

#[test]
fn an_enormous_reset_is_believed_only_up_to_max_block() {
    let mut pacer = QuotaPacer::builder()
        .max_block(Duration::from_secs(600))
        .build()
        .unwrap();
    pacer.observe(t(0), quota(0, 999_999_999_999_999), None);
    assert_eq!(pacer.blocked_until(), Some(t(600_000)));
    pacer.observe(t(0), None, Some(Duration::MAX));
    assert_eq!(pacer.blocked_until(), Some(t(600_000)));
    let _ = now_grant(pacer.acquire(t(600_000), FIRST));
}

#[test]
fn a_later_answer_with_quota_left_lifts_the_block() {
    let mut pacer = QuotaPacer::builder().jitter(0.0).build().unwrap();
    pacer.observe(t(0), quota(0, 60), None);
    pacer.observe(t(1000), quota(10, 59), None);
    let _ = now_grant(pacer.acquire(t(1000), FIRST));
}
