//! Hedged requests on a fake clock: when hedges go out, which answer wins, what is cancelled,
//! and what the breaker, budget, sketch and policy say about it.

use core::time::Duration;
use std::sync::Mutex;

use resil_core::{
    Action, Attempt, CircuitBreaker, Event, Hedging, Input, Instant, LatencySketch, Method,
    RequestInfo, ResponseHead, RetryAfter, RetryBudget, RetryMachine, RetryPolicy,
    TransportErrorKind, TripCondition,
};

/// How the fake server answers one attempt.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// This status after this many milliseconds.
    After(u64, u16),
    /// A 503 with `Retry-After: 1` after this many milliseconds.
    Pushback(u64),
    /// This transport error after this many milliseconds.
    Error(u64, TransportErrorKind),
    /// Never.
    Never,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(i: Instant) -> u64 {
    i.as_nanos() / 1_000_000
}

/// Drives `m` against `replies` (one per attempt, in order) until it ends; the timeline, one
/// line per action, answer and event.
fn run(m: &mut RetryMachine<'_>, replies: &[Reply]) -> Vec<String> {
    let mut now = Instant::ZERO;
    let mut lines = Vec::new();
    // (attempt, when its answer comes, the answer)
    let mut pending: Vec<(Attempt, Instant, Reply)> = Vec::new();
    let mut next = replies.iter().copied();
    for _ in 0..200 {
        let action = m.poll_action();
        match action {
            Action::Send { attempt, .. } => {
                lines.push(format!("{} send {}", at(now), attempt.number()));
                let reply = next.next().unwrap_or(Reply::After(1, 200));
                let when = match reply {
                    Reply::After(d, _) | Reply::Pushback(d) | Reply::Error(d, _) => now + ms(d),
                    Reply::Never => Instant::MAX,
                };
                pending.push((attempt, when, reply));
            }
            Action::Cancel { attempt } => {
                lines.push(format!("{} cancel {}", at(now), attempt.number()));
                pending.retain(|(a, ..)| *a != attempt);
            }
            Action::Sleep { until } => {
                let first = pending.iter().min_by_key(|(_, when, _)| *when).copied();
                match first {
                    Some((attempt, when, reply)) if when <= until => {
                        now = when;
                        pending.retain(|(a, ..)| *a != attempt);
                        let n = attempt.number();
                        match reply {
                            Reply::After(_, status) => {
                                lines.push(format!("{} {n} <- {status}", at(now)));
                                let head = ResponseHead::new(status);
                                m.handle_input(now, Input::Response { attempt, head });
                            }
                            Reply::Pushback(_) => {
                                lines.push(format!("{} {n} <- 503 Retry-After: 1", at(now)));
                                let head = ResponseHead::new(503)
                                    .with_retry_after(RetryAfter::parse(b"1"), None);
                                m.handle_input(now, Input::Response { attempt, head });
                            }
                            Reply::Error(_, kind) => {
                                lines.push(format!("{} {n} <- {kind:?}", at(now)));
                                m.handle_input(now, Input::Error { attempt, kind });
                            }
                            Reply::Never => unreachable!(),
                        }
                    }
                    _ => {
                        now = until;
                        m.handle_input(now, Input::Timer);
                    }
                }
            }
            Action::Done { attempt } => {
                lines.push(format!("{} done {}", at(now), attempt.number()));
            }
            Action::Fail(g) => lines.push(format!("{} fail: {g}", at(now))),
        }
        while let Some(event) = m.poll_event() {
            match event {
                Event::HedgeSent { attempt } => lines.push(format!("  hedge {}", attempt.number())),
                Event::HedgeWon { attempt } => {
                    lines.push(format!("  won by hedge {}", attempt.number()))
                }
                Event::Cancelled { attempt, lost } => {
                    let why = if lost { "lost" } else { "timed out" };
                    lines.push(format!("  cancelled {} ({why})", attempt.number()));
                }
                Event::RetryScheduled { after, delay, .. } => {
                    lines.push(format!("  retry after {} in {delay:?}", after.number()));
                }
                _ => {}
            }
        }
        if matches!(action, Action::Done { .. } | Action::Fail(_)) {
            return lines;
        }
    }
    panic!("no end: {lines:#?}");
}

fn hedging(delay_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(delay_ms)))
        .attempt_timeout(Some(ms(1000)))
        .backoff(resil_core::Backoff::Constant(ms(50)))
        .jitter(resil_core::Jitter::None)
        .build()
        .unwrap()
}

fn get(policy: &RetryPolicy) -> RetryMachine<'_> {
    RetryMachine::new(policy, RequestInfo::new(Method::Get), Instant::ZERO, 1)
}

#[test]
fn a_slow_first_attempt_is_hedged_and_the_hedge_wins() {
    let policy = hedging(20);
    let lines = run(
        &mut get(&policy),
        &[Reply::After(500, 200), Reply::After(5, 200)],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "25 2 <- 200",
            "  won by hedge 2",
            "25 cancel 1",
            "  cancelled 1 (lost)",
            "25 done 2",
        ]
    );
}

#[test]
fn the_first_attempt_can_still_win_and_the_hedge_is_cancelled() {
    let policy = hedging(20);
    let lines = run(
        &mut get(&policy),
        &[Reply::After(30, 200), Reply::After(500, 200)],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "30 1 <- 200",
            "30 cancel 2",
            "  cancelled 2 (lost)",
            "30 done 1"
        ]
    );
}

#[test]
fn a_fast_answer_is_never_hedged() {
    let policy = hedging(20);
    let lines = run(&mut get(&policy), &[Reply::After(5, 200)]);
    assert_eq!(lines, ["0 send 1", "5 1 <- 200", "5 done 1"]);
}

#[test]
fn a_fast_failure_never_beats_a_slow_success() {
    let policy = hedging(20);
    // The hedge fails fast with a retryable 503: the next hedge goes at once, and the first
    // attempt's slow 200 wins over nothing.
    let lines = run(
        &mut get(&policy),
        &[
            Reply::After(100, 200),
            Reply::After(5, 503),
            Reply::After(500, 200),
        ],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "25 2 <- 503",
            "25 send 3",
            "  hedge 3",
            "100 1 <- 200",
            "100 cancel 3",
            "  cancelled 3 (lost)",
            "100 done 1",
        ]
    );
}

#[test]
fn a_servers_pushback_stops_hedging() {
    let policy = hedging(20);
    let lines = run(
        &mut get(&policy),
        &[Reply::After(100, 200), Reply::Pushback(5)],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "25 2 <- 503 Retry-After: 1",
            "100 1 <- 200",
            "100 done 1"
        ]
    );
}

#[test]
fn a_fatal_failure_ends_the_call_and_cancels_the_rest() {
    let policy = hedging(20);
    let lines = run(
        &mut get(&policy),
        &[
            Reply::After(100, 200),
            Reply::Error(5, TransportErrorKind::TlsHandshake),
        ],
    );
    assert_eq!(
        lines[..4],
        ["0 send 1", "20 send 2", "  hedge 2", "25 2 <- TlsHandshake"]
    );
    assert_eq!(lines[4..6], ["25 cancel 1", "  cancelled 1 (lost)"]);
    assert!(
        lines[6].starts_with("25 fail: gave up after 2 attempts: the failure is not retryable")
    );
}

#[test]
fn a_failure_with_nothing_else_out_retries_after_the_backoff() {
    let policy = hedging(20);
    let lines = run(
        &mut get(&policy),
        &[Reply::After(10, 503), Reply::After(5, 200)],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "10 1 <- 503",
            "  retry after 1 in 50ms",
            "60 send 2",
            "65 2 <- 200",
            "65 done 2",
        ]
    );
}

#[test]
fn hedging_stops_at_max_attempts_and_the_last_failure_ends_the_call() {
    let policy = RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(20)))
        .max_attempts(3)
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap();
    let lines = run(
        &mut get(&policy),
        &[
            Reply::After(30, 503),
            Reply::After(15, 503),
            Reply::After(10, 503),
        ],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "30 1 <- 503",
            "30 send 3",
            "  hedge 3",
            "35 2 <- 503",
            "40 3 <- 503",
            "40 fail: gave up after 3 attempts: all attempts were used (last: status 503)",
        ]
    );
}

#[test]
fn hedges_stop_at_max_in_flight_and_max_attempts() {
    let three = RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(10)).max_in_flight(3))
        .max_attempts(4)
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap();
    let never = [Reply::Never; 8];
    let mut m = get(&three);
    let mut sends = 0;
    let mut now = Instant::ZERO;
    // Three out at once at most, whatever the clock.
    for _ in 0..50 {
        match m.poll_action() {
            Action::Send { .. } => sends += 1,
            Action::Sleep { until } => {
                now = until.min(now + ms(10));
                m.handle_input(now, Input::Timer);
            }
            Action::Cancel { .. } => sends -= 1,
            _ => break,
        }
        assert!(sends <= 3);
        if now >= Instant::ZERO + ms(200) {
            break;
        }
    }
    assert_eq!(sends, 3);
    let _ = never;
    // Four attempts in all: after the first times out, one more hedge, then no more.
    let lines = run(&mut get(&three), &never);
    let sent = lines.iter().filter(|l| l.contains(" send ")).count();
    assert_eq!(sent, 4, "{lines:#?}");
}

#[test]
fn timed_out_attempts_are_cancelled_and_another_hedge_goes() {
    let policy = RetryPolicy::builder()
        .hedge(Hedging::fixed(ms(20)))
        .attempt_timeout(Some(ms(100)))
        .build()
        .unwrap();
    let lines = run(
        &mut get(&policy),
        &[Reply::Never, Reply::After(150, 200), Reply::After(5, 200)],
    );
    assert_eq!(
        lines,
        [
            "0 send 1",
            "20 send 2",
            "  hedge 2",
            "100 cancel 1",
            "  cancelled 1 (timed out)",
            "100 send 3",
            "  hedge 3",
            "105 3 <- 200",
            "  won by hedge 3",
            "105 cancel 2",
            "  cancelled 2 (lost)",
            "105 done 3",
        ]
    );
}

#[test]
fn what_may_not_be_sent_twice_is_never_hedged() {
    let policy = hedging(20);
    let post = RetryMachine::new(&policy, RequestInfo::new(Method::Post), Instant::ZERO, 1);
    assert!(!post.hedges());
    let keyed = RequestInfo::new(Method::Post).idempotency_key(true);
    assert!(RetryMachine::new(&policy, keyed, Instant::ZERO, 1).hedges());
    let streamed = RequestInfo::new(Method::Get).body_replayable(false);
    assert!(!RetryMachine::new(&policy, streamed, Instant::ZERO, 1).hedges());
    let mut post = RetryMachine::new(&policy, RequestInfo::new(Method::Post), Instant::ZERO, 1);
    let lines = run(&mut post, &[Reply::After(500, 200)]);
    assert_eq!(lines, ["0 send 1", "500 1 <- 200", "500 done 1"]);
}

#[test]
fn a_refused_hedge_leaves_the_attempt_out_alone() {
    let policy = hedging(20);
    // An empty budget: no hedge, and the first attempt's answer still wins.
    let budget = Mutex::new(RetryBudget::ratio(0.01, 0, Duration::from_secs(10)).unwrap());
    let mut m = get(&policy).with_budget(&budget);
    let lines = run(&mut m, &[Reply::After(100, 200)]);
    assert_eq!(lines, ["0 send 1", "100 1 <- 200", "100 done 1"]);
    // An open breaker refuses the hedge's permit the same way (opened by hand after the
    // first attempt was admitted).
    let breaker = Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .build()
            .unwrap(),
    );
    let mut m = get(&policy).with_breaker(&breaker);
    assert!(matches!(m.poll_action(), Action::Send { .. }));
    breaker
        .lock()
        .unwrap()
        .trip_for(Instant::ZERO, Duration::from_secs(60));
    m.handle_input(Instant::ZERO + ms(20), Input::Timer);
    assert!(
        matches!(m.poll_action(), Action::Sleep { .. }),
        "no hedge while open"
    );
    m.handle_input(
        Instant::ZERO + ms(40),
        Input::Response {
            attempt: Attempt::new(1),
            head: ResponseHead::new(200),
        },
    );
    assert_eq!(
        m.poll_action(),
        Action::Done {
            attempt: Attempt::new(1)
        }
    );
}

#[test]
fn a_late_answer_after_a_cancel_is_ignored() {
    let policy = hedging(20);
    let mut m = get(&policy);
    let _ = run(&mut m, &[Reply::After(500, 200), Reply::After(5, 200)]);
    assert_eq!(
        m.poll_action(),
        Action::Done {
            attempt: Attempt::new(2)
        }
    );
    // Attempt 1 was cancelled; its answer comes anyway.
    m.handle_input(
        Instant::ZERO + ms(600),
        Input::Response {
            attempt: Attempt::new(1),
            head: ResponseHead::new(500),
        },
    );
    assert_eq!(
        m.poll_action(),
        Action::Done {
            attempt: Attempt::new(2)
        }
    );
    assert!(m.poll_event().is_none());
}

#[test]
fn an_adaptive_delay_follows_the_sketch_and_its_cap() {
    let policy = RetryPolicy::builder()
        .hedge(Hedging::adaptive())
        .attempt_timeout(Some(ms(1000)))
        .build()
        .unwrap();
    let sketch = Mutex::new(
        LatencySketch::builder()
            .hedge_quantile(0.9)
            .min_samples(10)
            .build()
            .unwrap(),
    );
    // Too few samples and no fallback: no hedge.
    let mut m = get(&policy).with_latency(&sketch);
    let lines = run(&mut m, &[Reply::After(300, 200)]);
    assert_eq!(lines, ["0 send 1", "300 1 <- 200", "300 done 1"]);
    // The successes fed it: 300 ms is now p90 and more... feed 40 ms answers.
    {
        let mut s = sketch.lock().unwrap();
        for _ in 0..100 {
            s.record(Instant::ZERO, ms(40));
        }
    }
    let mut m = RetryMachine::new(
        &policy,
        RequestInfo::new(Method::Get),
        Instant::ZERO + ms(1),
        2,
    )
    .with_latency(&sketch);
    let Action::Send { .. } = m.poll_action() else {
        panic!()
    };
    let Action::Sleep { until } = m.poll_action() else {
        panic!()
    };
    let delay = until - (Instant::ZERO + ms(1));
    assert!(
        delay.abs_diff(ms(40)) <= ms(2),
        "the hedge goes at p90 of recent latencies: {delay:?}"
    );
    // A fallback hedges before the sketch knows enough.
    let fallback = RetryPolicy::builder()
        .hedge(Hedging::adaptive().fallback(ms(25)))
        .build()
        .unwrap();
    let empty = Mutex::new(LatencySketch::builder().build().unwrap());
    let mut m = get(&fallback).with_latency(&empty);
    let lines = run(&mut m, &[Reply::After(300, 200), Reply::After(5, 200)]);
    assert_eq!(lines[1], "25 send 2");
}

#[test]
fn the_hedge_rate_cap_holds_over_many_calls() {
    // Every answer is slow: without a cap every call would be doubled.
    let policy = hedging(10);
    let sketch = Mutex::new(
        LatencySketch::builder()
            .max_extra_load(0.05)
            .hedge_burst(0)
            .build()
            .unwrap(),
    );
    let mut hedges = 0;
    for i in 0..1000u64 {
        let start = Instant::ZERO + ms(i);
        let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), start, i)
            .with_latency(&sketch);
        loop {
            match m.poll_action() {
                Action::Send { attempt, .. } if attempt.number() > 1 => hedges += 1,
                Action::Send { .. } | Action::Cancel { .. } => {}
                Action::Sleep { until } => {
                    let answer = start + ms(50);
                    if until < answer {
                        m.handle_input(until, Input::Timer);
                    } else {
                        m.handle_input(
                            answer,
                            Input::Response {
                                attempt: Attempt::new(1),
                                head: ResponseHead::new(200),
                            },
                        );
                    }
                }
                _ => break,
            }
        }
    }
    assert!(
        (45..=50).contains(&hedges),
        "{hedges} hedges for 1,000 requests"
    );
}

#[test]
fn bad_hedging_settings_are_refused_naming_the_field() {
    let refuse = |h: Hedging, attempts: u32| {
        let e = RetryPolicy::builder()
            .max_attempts(attempts)
            .hedge(h)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("hedge"), "{e}");
    };
    refuse(Hedging::fixed(Duration::ZERO), 4);
    refuse(Hedging::adaptive().fallback(Duration::ZERO), 4);
    refuse(Hedging::fixed(ms(10)).max_in_flight(1), 4);
    refuse(Hedging::fixed(ms(10)).max_in_flight(5), 8);
    refuse(Hedging::fixed(ms(10)).max_in_flight(3), 2);
    // A quantile outside (0, 1) is the sketch's to refuse.
    assert!(
        LatencySketch::builder()
            .hedge_quantile(1.0)
            .build()
            .is_err()
    );
    assert!(
        LatencySketch::builder()
            .hedge_quantile(0.0)
            .build()
            .is_err()
    );
}

mod any_inputs {
    use super::*;
    use proptest::prelude::*;

    /// One step a driver might take: an answer (status or error) for some attempt after
    /// some milliseconds, or a timer.
    #[derive(Clone, Debug)]
    enum Step {
        Status(u32, u64, u16, bool),
        Error(u32, u64, u8),
        Timer(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                1u32..8,
                0u64..300,
                prop::sample::select(vec![200u16, 404, 429, 500, 503]),
                any::<bool>()
            )
                .prop_map(|(a, d, s, ra)| Step::Status(a, d, s, ra)),
            (1u32..8, 0u64..300, 0u8..4).prop_map(|(a, d, k)| Step::Error(a, d, k)),
            (0u64..300).prop_map(Step::Timer),
        ]
    }

    proptest! {
        /// Whatever arrives, whenever: never more out at once than allowed nor more sent than
        /// `max_attempts`, a cancel only for an attempt out, a winner that was sent, nothing
        /// sent once the call ended.
        #[test]
        fn a_hedging_call_keeps_its_limits(
            fixed in any::<bool>(),
            delay in 1u64..200,
            limit in 2u8..=4,
            attempts in 2u32..8,
            steps in prop::collection::vec(step(), 1..60),
        ) {
            prop_assume!(u32::from(limit) <= attempts);
            let hedging = if fixed { Hedging::fixed(ms(delay)) } else { Hedging::adaptive().fallback(ms(delay)) };
            let policy = RetryPolicy::builder()
                .max_attempts(attempts)
                .attempt_timeout(Some(ms(250)))
                .hedge(hedging.max_in_flight(limit))
                .build()
                .unwrap();
            let sketch = Mutex::new(LatencySketch::builder().min_samples(3).build().unwrap());
            let mut now = Instant::ZERO;
            let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, 3).with_latency(&sketch);
            let mut out: Vec<(u32, Instant)> = Vec::new();
            let mut expired: Vec<u32> = Vec::new();
            let (mut sent, mut ended) = (0u32, false);
            for step in steps {
                loop {
                    match m.poll_action() {
                        Action::Send { attempt, deadline } => {
                            prop_assert!(!ended);
                            sent += 1;
                            prop_assert_eq!(attempt.number(), sent);
                            prop_assert!(sent <= attempts);
                            out.push((sent, deadline));
                            prop_assert!(out.len() <= usize::from(limit));
                        }
                        Action::Cancel { attempt } => {
                            let n = attempt.number();
                            prop_assert!(out.iter().any(|(a, _)| *a == n) || expired.contains(&n));
                            out.retain(|(a, _)| *a != n);
                        }
                        Action::Done { attempt } => {
                            prop_assert!((1..=sent).contains(&attempt.number()));
                            ended = true;
                            break;
                        }
                        Action::Fail(_) => {
                            ended = true;
                            break;
                        }
                        Action::Sleep { .. } => break,
                    }
                    while m.poll_event().is_some() {}
                }
                while m.poll_event().is_some() {}
                let input = match step {
                    Step::Status(a, d, status, ra) => {
                        now = now + ms(d);
                        let raw: &[u8] = if ra { b"1" } else { b"" };
                        let head = ResponseHead::new(status).with_retry_after(RetryAfter::parse(raw), None);
                        out.retain(|(n, _)| *n != a);
                        Input::Response { attempt: Attempt::new(a), head }
                    }
                    Step::Error(a, d, k) => {
                        now = now + ms(d);
                        let kind = [TransportErrorKind::Reset, TransportErrorKind::Timeout, TransportErrorKind::Connect, TransportErrorKind::TlsHandshake][usize::from(k)];
                        out.retain(|(n, _)| *n != a);
                        Input::Error { attempt: Attempt::new(a), kind }
                    }
                    Step::Timer(d) => {
                        now = now + ms(d);
                        for (a, deadline) in &out {
                            if now >= *deadline {
                                expired.push(*a);
                            }
                        }
                        out.retain(|(_, deadline)| now < *deadline);
                        Input::Timer
                    }
                };
                m.handle_input(now, input);
            }
        }
    }
}
