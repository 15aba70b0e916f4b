//! The retry machine with limiters, on a fake clock: waits become sleeps, refusals give up
//! before anything is sent, every attempt's outcome reaches the limiters, nothing a call
//! holds outlives it, and back pressure does not open the breaker.

use core::time::Duration;
use std::sync::Mutex;

use proptest::prelude::*;
use resil_core::{
    Action, AdaptiveThrottle, Attempt, CircuitBreaker, ConcurrencyLimiter, Event, GiveUpReason,
    Hedging, Input, Instant, LimiterRef, LocalRejection, Method, RateLimiter, RequestInfo,
    ResponseHead, RetryAfter, RetryMachine, RetryPolicy, TransportErrorKind,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn get(policy: &RetryPolicy, now: Instant, seed: u64) -> RetryMachine<'_> {
    RetryMachine::new(policy, RequestInfo::new(Method::Get), now, seed)
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(resil_core::Backoff::Constant(ms(10)))
        .jitter(resil_core::Jitter::None)
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap()
}

fn bulkhead(limit: u32) -> Mutex<ConcurrencyLimiter> {
    Mutex::new(ConcurrencyLimiter::builder().limit(limit).build().unwrap())
}

fn inflight(limiter: &Mutex<ConcurrencyLimiter>) -> u32 {
    limiter.lock().unwrap().inflight()
}

fn answer(m: &mut RetryMachine<'_>, now: Instant, attempt: Attempt, status: u16) {
    m.handle_input(
        now,
        Input::Response {
            attempt,
            head: ResponseHead::new(status),
        },
    );
}

fn sent(action: Action) -> Attempt {
    match action {
        Action::Send { attempt, .. } => attempt,
        other => panic!("expected a send, got {other:?}"),
    }
}

#[test]
fn a_rate_limited_call_sleeps_until_its_reserved_start_then_sends() {
    let policy = quick_policy();
    let limiter = Mutex::new(RateLimiter::builder().rate(1.0).burst(1).build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let attempt = sent(first.poll_action());
    answer(&mut first, Instant::ZERO + ms(5), attempt, 200);
    assert!(matches!(first.poll_action(), Action::Done { .. }));

    let mut second = get(&policy, Instant::ZERO + ms(5), 2).with_limiters(&limiters);
    assert_eq!(
        second.poll_action(),
        Action::Sleep {
            until: Instant::from_secs(1)
        }
    );
    assert_eq!(
        second.poll_event(),
        Some(Event::LimiterWait {
            attempt: Attempt::new(1),
            until: Instant::from_secs(1),
            wait: ms(995),
        })
    );
    // Polling again, or an early timer, changes nothing.
    assert!(matches!(second.poll_action(), Action::Sleep { .. }));
    second.handle_input(Instant::ZERO + ms(500), Input::Timer);
    assert!(matches!(second.poll_action(), Action::Sleep { .. }));
    second.handle_input(Instant::from_secs(1), Input::Timer);
    assert_eq!(sent(second.poll_action()), Attempt::new(1));
    assert!(matches!(
        second.poll_event(),
        Some(Event::AttemptStarted { .. })
    ));
}

#[test]
fn a_refusal_gives_up_before_anything_is_sent_with_the_reason() {
    let policy = quick_policy();
    let limiter = bulkhead(1);
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _attempt = sent(first.poll_action());
    let mut second = get(&policy, Instant::ZERO, 2).with_limiters(&limiters);
    match second.poll_action() {
        Action::Fail(give_up) => {
            assert_eq!(
                give_up.reason,
                GiveUpReason::RejectedLocally(LocalRejection::ConcurrencyLimited { limit: 1 })
            );
            assert_eq!(give_up.attempts, 0);
            assert!(give_up.to_string().contains("concurrency"), "{give_up}");
        }
        other => panic!("expected a give-up, got {other:?}"),
    }
    assert!(matches!(second.poll_event(), Some(Event::GaveUp(_))));
    // Sticky.
    assert!(matches!(second.poll_action(), Action::Fail(_)));
}

#[test]
fn a_dropped_call_frees_its_concurrency_slot() {
    let policy = quick_policy();
    let limiter = bulkhead(1);
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _ = sent(first.poll_action());
    assert_eq!(inflight(&limiter), 1);
    drop(first);
    assert_eq!(inflight(&limiter), 0);
    let mut second = get(&policy, Instant::ZERO, 2).with_limiters(&limiters);
    let _ = sent(second.poll_action());
}

#[test]
fn every_attempt_holds_its_slot_only_while_it_is_out() {
    let policy = quick_policy();
    let limiter = bulkhead(1);
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut m = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let first = sent(m.poll_action());
    answer(&mut m, Instant::ZERO + ms(5), first, 503);
    // In backoff the slot is free for others.
    assert!(matches!(m.poll_action(), Action::Sleep { .. }));
    assert_eq!(inflight(&limiter), 0);
    m.handle_input(Instant::ZERO + ms(15), Input::Timer);
    let second = sent(m.poll_action());
    assert_eq!(inflight(&limiter), 1);
    answer(&mut m, Instant::ZERO + ms(20), second, 200);
    assert!(matches!(m.poll_action(), Action::Done { .. }));
    assert_eq!(inflight(&limiter), 0);
}

#[test]
fn a_wait_past_the_deadline_is_a_refusal_at_once() {
    let policy = RetryPolicy::builder()
        .total_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let limiter = Mutex::new(RateLimiter::builder().rate(0.1).burst(1).build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _ = sent(first.poll_action());
    let mut second = get(&policy, Instant::ZERO, 2).with_limiters(&limiters);
    match second.poll_action() {
        Action::Fail(g) => assert!(
            matches!(
                g.reason,
                GiveUpReason::RejectedLocally(LocalRejection::RateLimited { .. })
            ),
            "{g:?}"
        ),
        other => panic!("expected a give-up, got {other:?}"),
    }
}

#[test]
fn the_policy_max_wait_bounds_a_limiter_wait() {
    let policy = RetryPolicy::builder()
        .max_wait(Some(ms(500)))
        .build()
        .unwrap();
    let limiter = Mutex::new(RateLimiter::builder().rate(1.0).burst(1).build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _ = sent(first.poll_action());
    let mut second = get(&policy, Instant::ZERO, 2).with_limiters(&limiters);
    assert!(matches!(second.poll_action(), Action::Fail(_)));
}

#[test]
fn a_dropped_waiting_call_gives_its_reserved_start_back() {
    let policy = quick_policy();
    let limiter = Mutex::new(RateLimiter::builder().rate(1.0).burst(1).build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut first = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _ = sent(first.poll_action());
    let mut second = get(&policy, Instant::ZERO, 2).with_limiters(&limiters);
    assert!(matches!(second.poll_action(), Action::Sleep { .. }));
    drop(second);
    // The start second had reserved (1 s) is free again: the third waits no longer.
    let mut third = get(&policy, Instant::ZERO, 3).with_limiters(&limiters);
    assert_eq!(
        third.poll_action(),
        Action::Sleep {
            until: Instant::from_secs(1)
        }
    );
}

#[test]
fn every_attempt_outcome_reaches_the_limiters_even_when_the_call_succeeds() {
    let policy = quick_policy();
    let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&throttle];
    let mut m = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let first = sent(m.poll_action());
    answer(&mut m, Instant::ZERO + ms(5), first, 429);
    assert!(matches!(m.poll_action(), Action::Sleep { .. }));
    m.handle_input(Instant::ZERO + ms(15), Input::Timer);
    let second = sent(m.poll_action());
    answer(&mut m, Instant::ZERO + ms(20), second, 200);
    assert!(matches!(m.poll_action(), Action::Done { .. }));
    // Two requests, one accepted.
    assert_eq!(
        throttle.lock().unwrap().counts(Instant::ZERO + ms(20)),
        (2, 1)
    );
}

/// Runs `calls` one-attempt calls that each get `head`, under a default breaker; whether the
/// breaker ended open.
fn breaker_opens(
    policy: &RetryPolicy,
    head: ResponseHead<'_>,
    limiters: &[LimiterRef<'_>],
    calls: u64,
) -> bool {
    let breaker = Mutex::new(CircuitBreaker::builder().build().unwrap());
    for i in 0..calls {
        let now = Instant::ZERO + ms(i);
        let mut m = get(policy, now, i)
            .with_breaker(&breaker)
            .with_limiters(&limiters);
        let action = m.poll_action();
        // A local refusal sends nothing: nothing for the breaker.
        let Action::Send { attempt, .. } = action else {
            continue;
        };
        m.handle_input(now, Input::Response { attempt, head });
        let _ = m.poll_action();
    }
    breaker.lock().unwrap().state() != resil_core::BreakerState::Closed
}

#[test]
fn back_pressure_does_not_open_the_breaker_by_default() {
    let once = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let too_many = ResponseHead::new(429);
    let unavailable_ra = ResponseHead::new(503).with_retry_after(RetryAfter::parse(b"1"), None);
    assert!(!breaker_opens(&once, too_many, &[], 20));
    assert!(!breaker_opens(&once, unavailable_ra, &[], 20));
    // A bare 503 without limiters may be a failing backend: it counts.
    assert!(breaker_opens(&once, ResponseHead::new(503), &[], 20));
    // With a limiter to take it, it is back pressure too.
    let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&throttle];
    assert!(!breaker_opens(&once, ResponseHead::new(503), &limiters, 20));
    // Other failures still open it (a fresh throttle: the first one now refuses most calls).
    let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&throttle];
    assert!(breaker_opens(&once, ResponseHead::new(500), &limiters, 20));
}

#[test]
fn back_pressure_trips_the_breaker_when_the_policy_says_so() {
    let strict = RetryPolicy::builder()
        .max_attempts(1)
        .back_pressure_trips_breaker(true)
        .build()
        .unwrap();
    assert!(breaker_opens(&strict, ResponseHead::new(429), &[], 20));
}

#[test]
fn a_hedge_a_limiter_would_not_admit_at_once_is_not_sent() {
    let policy = RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(20)))
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap();
    let limiter = bulkhead(1);
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut m = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let first = sent(m.poll_action());
    let Action::Sleep { until } = m.poll_action() else {
        panic!("expected a sleep");
    };
    assert_eq!(until, Instant::ZERO + ms(20));
    m.handle_input(until, Input::Timer);
    // The slot is taken: no hedge; the call waits for its first attempt.
    match m.poll_action() {
        Action::Sleep { until } => assert!(until > Instant::ZERO + ms(20)),
        other => panic!("expected a sleep, got {other:?}"),
    }
    answer(&mut m, Instant::ZERO + ms(50), first, 200);
    assert_eq!(m.poll_action(), Action::Done { attempt: first });
    assert_eq!(inflight(&limiter), 0);
}

#[test]
fn a_cancelled_hedge_gives_its_slot_back() {
    let policy = RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(20)))
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap();
    let limiter = bulkhead(2);
    let limiters: [LimiterRef<'_>; 1] = [&limiter];
    let mut m = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let first = sent(m.poll_action());
    let _ = m.poll_action();
    m.handle_input(Instant::ZERO + ms(20), Input::Timer);
    let hedge = sent(m.poll_action());
    assert_eq!(inflight(&limiter), 2);
    answer(&mut m, Instant::ZERO + ms(30), hedge, 200);
    assert_eq!(m.poll_action(), Action::Cancel { attempt: first });
    assert_eq!(m.poll_action(), Action::Done { attempt: hedge });
    assert_eq!(inflight(&limiter), 0);
}

#[test]
fn a_timed_out_attempt_is_back_pressure_for_the_limiters() {
    let policy = RetryPolicy::builder()
        .attempt_timeout(Some(ms(100)))
        .max_attempts(1)
        .build()
        .unwrap();
    let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
    let limiters: [LimiterRef<'_>; 1] = [&throttle];
    let mut m = get(&policy, Instant::ZERO, 1).with_limiters(&limiters);
    let _ = sent(m.poll_action());
    m.handle_input(Instant::ZERO + ms(100), Input::Timer);
    assert!(matches!(m.poll_action(), Action::Fail(_)));
    assert_eq!(
        throttle.lock().unwrap().counts(Instant::ZERO + ms(100)),
        (1, 0)
    );
}

/// What happens next to one call in the property test.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Start a call.
    Start,
    /// Answer call `i`'s attempt out (if any) with this status.
    Answer(usize, u16),
    /// Call `i`'s attempt fails with a reset.
    Reset(usize),
    /// Fire call `i`'s timer at its wake-up.
    Timer(usize),
    /// Drop call `i`.
    Drop(usize),
    /// Time passes.
    Pass(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Start),
        (0..8usize, prop::sample::select(vec![200u16, 429, 500, 503]))
            .prop_map(|(i, s)| Step::Answer(i, s)),
        (0..8usize).prop_map(Step::Reset),
        (0..8usize).prop_map(Step::Timer),
        (0..8usize).prop_map(Step::Drop),
        (1..200u64).prop_map(Step::Pass),
    ]
}

proptest! {
    /// However calls end (an answer, an error, a timeout, a give-up, a hedge that lost, a
    /// drop mid-wait), once none is left every concurrency slot is back, and the limiter
    /// never had more out than its limit.
    #[test]
    fn concurrency_slots_always_come_back(
        steps in prop::collection::vec(step(), 1..80),
        limit in 1u32..4,
        hedge in any::<bool>(),
    ) {
        let mut builder = RetryPolicy::builder()
            .backoff(resil_core::Backoff::Constant(ms(10)))
            .attempt_timeout(Some(ms(300)))
            .total_timeout(Some(ms(2000)));
        if hedge {
            builder = builder.hedge(Hedging::fixed(ms(30)));
        }
        let policy = builder.build().unwrap();
        let limiter = bulkhead(limit);
        let throttle = Mutex::new(AdaptiveThrottle::builder().build().unwrap());
        let limiters: [LimiterRef<'_>; 2] = [&throttle, &limiter];
        let mut now = Instant::ZERO;
        let mut calls: Vec<(RetryMachine<'_>, Vec<Attempt>, Instant)> = Vec::new();
        let mut seed = 0;
        for step in steps {
            match step {
                Step::Start => {
                    seed += 1;
                    calls.push((get(&policy, now, seed).with_limiters(&limiters), Vec::new(), now));
                }
                Step::Answer(i, status) => {
                    if let Some((m, out, _)) = calls.get_mut(i) {
                        if let Some(attempt) = out.pop() {
                            answer(m, now, attempt, status);
                        }
                    }
                }
                Step::Reset(i) => {
                    if let Some((m, out, _)) = calls.get_mut(i) {
                        if let Some(attempt) = out.pop() {
                            m.handle_input(now, Input::Error { attempt, kind: TransportErrorKind::Reset });
                        }
                    }
                }
                Step::Timer(i) => {
                    if let Some((m, _, wake)) = calls.get_mut(i) {
                        now = now.max(*wake);
                        m.handle_input(now, Input::Timer);
                    }
                }
                Step::Drop(i) => {
                    if i < calls.len() {
                        calls.swap_remove(i);
                    }
                }
                Step::Pass(n) => now = now + ms(n),
            }
            // Every call acts on what it is told.
            for (m, out, wake) in &mut calls {
                for _ in 0..8 {
                    match m.poll_action() {
                        Action::Send { attempt, .. } => out.push(attempt),
                        Action::Cancel { attempt } => out.retain(|a| *a != attempt),
                        Action::Sleep { until } => {
                            *wake = until;
                            break;
                        }
                        Action::Done { .. } | Action::Fail(_) => {
                            out.clear();
                            break;
                        }
                    }
                }
                while m.poll_event().is_some() {}
                out.retain(|a| m.is_out(*a));
            }
            prop_assert!(inflight(&limiter) <= limit);
        }
        drop(calls);
        prop_assert_eq!(inflight(&limiter), 0);
    }
}
