//! Exact action sequences for the scenarios every driver must reproduce.

mod common;

use core::time::Duration;
use std::sync::Mutex;

use common::{Reply, assert_timeline, plain_policy, run};
use resil_core::{
    Action, BreakerState, CallOutcome, CircuitBreaker, GiveUpReason, Instant, Method, RequestInfo,
    RetryMachine, TransportErrorKind,
};

#[test]
fn retries_503_twice_then_succeeds() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Status(503), Reply::Status(503), Reply::Status(200)],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 503
      event: retry after #1 (status 503) in 100ms
           10ms sleep until 110ms
          110ms send #2 (deadline 10110ms)
          120ms #2 <- 503
      event: retry after #2 (status 503) in 200ms
          120ms sleep until 320ms
          320ms send #3 (deadline 10320ms)
          330ms #3 <- 200
      event: completed #3 with 200
          330ms done #3
        ",
    );
}

#[test]
fn post_is_not_replayed_after_reset() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Post),
        &[Reply::Error(TransportErrorKind::Reset), Reply::Status(200)],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- error Reset
      event: gave up (NonIdempotent)
           10ms fail: gave up after 1 attempt: the request is not idempotent and may have been processed, so it was not replayed (last: connection reset after the request was sent)
        ",
    );
}

#[test]
fn post_is_retried_after_connection_refused() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Post),
        &[
            Reply::Error(TransportErrorKind::Connect),
            Reply::Status(201),
        ],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- error Connect
      event: retry after #1 (connection refused) in 100ms
           10ms sleep until 110ms
          110ms send #2 (deadline 10110ms)
          120ms #2 <- 201
      event: completed #2 with 201
          120ms done #2
        ",
    );
}

#[test]
fn post_with_idempotency_key_is_retried_after_503() {
    let policy = plain_policy().build().unwrap();
    let req = RequestInfo::new(Method::Post).idempotency_key(true);
    let out = run(&policy, req, &[Reply::Status(503), Reply::Status(200)]);
    assert!(matches!(out.last, Action::Done { .. }), "{:#?}", out.lines);
    assert_eq!(out.sends, 2);
}

#[test]
fn post_503_without_key_is_handed_back() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Post),
        &[Reply::Status(503)],
    );
    match out.last {
        Action::Fail(g) => {
            assert_eq!(g.reason, GiveUpReason::NonIdempotent);
            assert!(g.has_response());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_after_seconds_is_honoured_exactly() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(503, "3"), Reply::Status(200)],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 503 Retry-After: 3
      event: retry after #1 (status 503) in 3s, Retry-After 3s
           10ms sleep until 3010ms
         3010ms send #2 (deadline 13010ms)
         3020ms #2 <- 200
      event: completed #2 with 200
         3020ms done #2
        ",
    );
}

#[test]
fn retry_after_date_is_honoured() {
    // WALL_ORIGIN + 5 s, as an IMF-fixdate: Tue, 14 Nov 2023 22:13:25 GMT.
    let date = "Tue, 14 Nov 2023 22:13:25 GMT";
    assert_eq!(
        resil_core::parse_http_date(date.as_bytes()),
        Some(resil_core::UnixTime(common::WALL_ORIGIN.0 + 5))
    );
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(429, date), Reply::Status(200)],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 429 Retry-After: Tue, 14 Nov 2023 22:13:25 GMT
      event: retry after #1 (status 429) in 5s, Retry-After 5s
           10ms sleep until 5010ms
         5010ms send #2 (deadline 15010ms)
         5020ms #2 <- 200
      event: completed #2 with 200
         5020ms done #2
        ",
    );
}

#[test]
fn retry_after_beyond_cap_gives_up_at_once_with_the_response() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(503, "999999")],
    );
    assert_eq!(out.sends, 1);
    match out.last {
        Action::Fail(g) => {
            assert_eq!(
                g.reason,
                GiveUpReason::RetryAfterTooLong {
                    requested: Duration::from_secs(999_999)
                }
            );
            assert!(g.has_response());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_after_beyond_cap_is_clamped_when_opted_in() {
    let policy = plain_policy()
        .max_retry_after(Duration::from_secs(2))
        .clamp_retry_after(true)
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(503, "999999"), Reply::Status(200)],
    );
    assert!(
        out.lines.iter().any(|l| l.contains("sleep until 2010ms")),
        "{:#?}",
        out.lines
    );
    assert!(matches!(out.last, Action::Done { .. }));
}

#[test]
fn retry_after_past_the_deadline_gives_up() {
    let policy = plain_policy()
        .total_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::RetryAfter(503, "30")],
    );
    match out.last {
        Action::Fail(g) => assert_eq!(g.reason, GiveUpReason::DeadlineExceeded),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stalled_attempts_time_out_and_the_total_deadline_holds() {
    let policy = plain_policy()
        .attempt_timeout(Some(Duration::from_millis(400)))
        .total_timeout(Some(Duration::from_secs(1)))
        .max_attempts(10)
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Stall, Reply::Stall, Reply::Stall, Reply::Stall],
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 400ms)
          400ms #1 timer
      event: retry after #1 (attempt timed out) in 100ms
          400ms sleep until 500ms
          500ms send #2 (deadline 900ms)
          900ms #2 timer
      event: gave up (DeadlineExceeded)
          900ms fail: gave up after 2 attempts: the total deadline would be exceeded (last: attempt timed out)
        ",
    );
}

#[test]
fn last_attempt_is_cut_at_the_total_deadline() {
    let policy = plain_policy()
        .backoff(resil_core::Backoff::Constant(Duration::from_millis(50)))
        .attempt_timeout(Some(Duration::from_millis(400)))
        .total_timeout(Some(Duration::from_millis(600)))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Stall, Reply::Stall],
    );
    // The second attempt's deadline is the total deadline, not 450 + 400.
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains("send #2 (deadline 600ms)")),
        "{:#?}",
        out.lines
    );
    assert_eq!(out.now, Instant::from_millis(600));
}

#[test]
fn attempts_are_exhausted_after_max_attempts() {
    let policy = plain_policy().max_attempts(3).build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Status(500); 5],
    );
    assert_eq!(out.sends, 3);
    match out.last {
        Action::Fail(g) => {
            assert_eq!(g.reason, GiveUpReason::AttemptsExhausted);
            assert_eq!(g.attempts, 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_retryable_status_is_done_and_non_retryable_error_fails() {
    let policy = plain_policy().build().unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Status(404)],
    );
    assert!(matches!(out.last, Action::Done { .. }));
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Error(TransportErrorKind::TlsHandshake)],
    );
    match out.last {
        Action::Fail(g) => assert_eq!(g.reason, GiveUpReason::NotRetryable),
        other => panic!("{other:?}"),
    }
}

#[test]
fn streamed_body_is_never_replayed() {
    let policy = plain_policy().build().unwrap();
    let req = RequestInfo::new(Method::Put).body_replayable(false);
    let out = run(&policy, req, &[Reply::Status(503)]);
    match out.last {
        Action::Fail(g) => assert_eq!(g.reason, GiveUpReason::BodyNotReplayable),
        other => panic!("{other:?}"),
    }
}

#[test]
fn zero_backoff_sends_again_without_sleeping() {
    let policy = plain_policy()
        .backoff(resil_core::Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Status(503), Reply::Status(200)],
    );
    assert!(
        !out.lines.iter().any(|l| l.contains("sleep")),
        "{:#?}",
        out.lines
    );
    assert_eq!(out.sends, 2);
}

#[test]
fn stale_and_early_inputs_are_ignored() {
    use resil_core::{Attempt, Input, ResponseHead};
    let policy = plain_policy().build().unwrap();
    let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), Instant::ZERO, 1);
    let Action::Send { attempt, .. } = m.poll_action() else {
        panic!()
    };
    // A reply for an attempt that was never sent, and an early timer: no effect.
    m.handle_input(
        Instant::from_millis(1),
        Input::Response {
            attempt: Attempt::new(9),
            head: ResponseHead::new(200),
        },
    );
    m.handle_input(Instant::from_millis(2), Input::Timer);
    assert_eq!(
        m.poll_action(),
        Action::Sleep {
            until: Instant::from_secs(10)
        }
    );
    m.handle_input(
        Instant::from_millis(3),
        Input::Response {
            attempt,
            head: ResponseHead::new(503),
        },
    );
    // Time going backwards is clamped: the sleep is measured from 3 ms.
    m.handle_input(Instant::ZERO, Input::Timer);
    assert_eq!(
        m.poll_action(),
        Action::Sleep {
            until: Instant::from_millis(103)
        }
    );
    // The late answer of attempt 1 arrives during the backoff: ignored.
    m.handle_input(
        Instant::from_millis(50),
        Input::Response {
            attempt,
            head: ResponseHead::new(200),
        },
    );
    assert_eq!(
        m.poll_action(),
        Action::Sleep {
            until: Instant::from_millis(103)
        }
    );
    m.handle_input(Instant::from_millis(103), Input::Timer);
    let Action::Send {
        attempt: second, ..
    } = m.poll_action()
    else {
        panic!()
    };
    assert_eq!(second.number(), 2);
    // Send is an edge: asking again gives the in-flight sleep.
    assert!(matches!(m.poll_action(), Action::Sleep { .. }));
    m.handle_input(
        Instant::from_millis(110),
        Input::Response {
            attempt: second,
            head: ResponseHead::new(200),
        },
    );
    assert_eq!(m.poll_action(), Action::Done { attempt: second });
    // Terminal actions are sticky, whatever comes after.
    m.handle_input(
        Instant::from_millis(120),
        Input::Response {
            attempt: second,
            head: ResponseHead::new(503),
        },
    );
    m.handle_input(Instant::from_secs(100), Input::Timer);
    assert_eq!(m.poll_action(), Action::Done { attempt: second });
}

/// Closed → Open → HalfOpen → Closed, then → Open again, through machines sharing a breaker.
#[test]
fn shared_breaker_opens_half_opens_closes_and_reopens() {
    let policy = plain_policy().max_attempts(1).build().unwrap();
    let breaker = Mutex::new(
        CircuitBreaker::builder()
            .trip(resil_core::TripCondition::ConsecutiveFailures(3))
            .open_for(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let call = |start: Instant, reply: Reply| {
        let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), start, 1)
            .with_breaker(&breaker);
        common::drive(&mut m, start, &[reply]).lines.join("\n")
    };
    let mut timeline = Vec::new();
    for i in 0..4 {
        timeline.push(call(Instant::from_secs(i), Reply::Status(503)));
    }
    timeline.push(call(Instant::from_secs(33), Reply::Status(200)));
    timeline.push(call(Instant::from_secs(34), Reply::Status(200)));
    for i in 0..3 {
        timeline.push(call(
            Instant::from_secs(40 + i),
            Reply::Error(TransportErrorKind::Connect),
        ));
    }
    timeline.push(call(Instant::from_secs(43), Reply::Status(200)));
    let want = "
      0ms send #1 (deadline 10000ms)
     10ms #1 <- 503
  event: gave up (AttemptsExhausted)
     10ms fail: gave up after 1 attempt: all attempts were used (last: status 503)
---
   1000ms send #1 (deadline 11000ms)
   1010ms #1 <- 503
  event: gave up (AttemptsExhausted)
   1010ms fail: gave up after 1 attempt: all attempts were used (last: status 503)
---
   2000ms send #1 (deadline 12000ms)
   2010ms #1 <- 503
  event: breaker closed -> open
  event: gave up (AttemptsExhausted)
   2010ms fail: gave up after 1 attempt: all attempts were used (last: status 503)
---
   3000ms fail: gave up after 0 attempts: the circuit breaker is open, opened by status 503
  event: gave up (CircuitOpen { until: Instant(32010000000), opened_by: Some(Status(503)) })
---
  33000ms send #1 (deadline 43000ms)
  event: breaker open -> half-open
  33010ms #1 <- 200
  event: breaker half-open -> closed
  event: completed #1 with 200
  33010ms done #1
---
  34000ms send #1 (deadline 44000ms)
  34010ms #1 <- 200
  event: completed #1 with 200
  34010ms done #1
---
  40000ms send #1 (deadline 50000ms)
  40010ms #1 <- error Connect
  event: gave up (AttemptsExhausted)
  40010ms fail: gave up after 1 attempt: all attempts were used (last: connection refused)
---
  41000ms send #1 (deadline 51000ms)
  41010ms #1 <- error Connect
  event: gave up (AttemptsExhausted)
  41010ms fail: gave up after 1 attempt: all attempts were used (last: connection refused)
---
  42000ms send #1 (deadline 52000ms)
  42010ms #1 <- error Connect
  event: breaker closed -> open
  event: gave up (AttemptsExhausted)
  42010ms fail: gave up after 1 attempt: all attempts were used (last: connection refused)
---
  43000ms fail: gave up after 0 attempts: the circuit breaker is open, opened by connection refused
  event: gave up (CircuitOpen { until: Instant(72010000000), opened_by: Some(Error(Connect)) })";
    let got = common::normalize(&timeline.join("\n---\n"));
    let want = common::normalize(want);
    assert_eq!(got, want, "\n--- got ---\n{got}\n");
}

/// A call whose own failure opens the breaker gives up at once when its retry would wake
/// before the breaker reopens, instead of waiting to be refused; the retry is neither
/// announced nor paid from the budget.
#[test]
fn a_retry_the_open_breaker_would_refuse_is_not_waited_for() {
    let breaker = |open_for| {
        Mutex::new(
            CircuitBreaker::builder()
                .trip(resil_core::TripCondition::ConsecutiveFailures(2))
                .open_for(open_for)
                .build()
                .unwrap(),
        )
    };
    // Two retries in reserve, no ratio.
    let budget =
        Mutex::new(resil_core::RetryBudget::ratio(0.0, 1, Duration::from_secs(2)).unwrap());
    let policy = plain_policy().build().unwrap();
    let start = Instant::ZERO;
    let script = [Reply::Status(503), Reply::Status(503), Reply::Status(200)];

    let shut = breaker(Duration::from_secs(30));
    let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), start, 1)
        .with_breaker(&shut)
        .with_budget(&budget);
    let out = common::drive(&mut m, start, &script);
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 503
      event: retry after #1 (status 503) in 100ms
           10ms sleep until 110ms
          110ms send #2 (deadline 10110ms)
          120ms #2 <- 503
      event: breaker closed -> open
      event: gave up (CircuitOpen { until: Instant(30120000000), opened_by: Some(Status(503)) })
          120ms fail: gave up after 2 attempts: the circuit breaker is open, opened by status 503 (last: status 503)
        ",
    );
    assert_eq!(
        budget.lock().unwrap().available(Instant::from_millis(120)),
        1,
        "only the retry that was sent is paid for"
    );

    // Open for less than the backoff: the retry wakes after the reopen time and is the probe.
    let brief = breaker(Duration::from_millis(150));
    let mut m =
        RetryMachine::new(&policy, RequestInfo::new(Method::Get), start, 1).with_breaker(&brief);
    let out = common::drive(&mut m, start, &script);
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 503
      event: retry after #1 (status 503) in 100ms
           10ms sleep until 110ms
          110ms send #2 (deadline 10110ms)
          120ms #2 <- 503
      event: breaker closed -> open
      event: retry after #2 (status 503) in 200ms
          120ms sleep until 320ms
          320ms send #3 (deadline 10320ms)
      event: breaker open -> half-open
          330ms #3 <- 200
      event: breaker half-open -> closed
      event: completed #3 with 200
          330ms done #3
        ",
    );
}

#[test]
fn breaker_half_open_failure_reopens_with_growth() {
    let mut b = CircuitBreaker::builder()
        .trip(resil_core::TripCondition::ConsecutiveFailures(1))
        .open_for(Duration::from_secs(10))
        .open_growth(2.0, Duration::from_secs(25))
        .build()
        .unwrap();
    let t = Instant::from_secs;
    let p = b.try_acquire(t(0)).unwrap();
    assert_eq!(b.rejects_until(), None, "closed");
    b.record(t(0), p, CallOutcome::Failure);
    assert_eq!(b.rejects_until(), Some(t(10)));
    assert_eq!(b.try_acquire(t(9)).unwrap_err().until, t(10));
    let probe = b.try_acquire(t(10)).unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.rejects_until(), None, "half-open admits probes");
    b.record(t(11), probe, CallOutcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.try_acquire(t(12)).unwrap_err().until,
        t(31),
        "10 s doubled"
    );
    let probe = b.try_acquire(t(31)).unwrap();
    b.record(t(31), probe, CallOutcome::Failure);
    assert_eq!(
        b.try_acquire(t(32)).unwrap_err().until,
        t(56),
        "40 s capped at 25 s"
    );
    let probe = b.try_acquire(t(56)).unwrap();
    b.record(t(56), probe, CallOutcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
    let p = b.try_acquire(t(57)).unwrap();
    b.record(t(57), p, CallOutcome::Failure);
    assert_eq!(
        b.try_acquire(t(58)).unwrap_err().until,
        t(67),
        "growth resets on close"
    );
    b.isolate(t(59));
    assert_eq!(b.rejects_until(), Some(Instant::MAX), "isolated");
}
