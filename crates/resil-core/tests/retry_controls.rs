//! The retry controls the peers' users rely on: urllib3's per-kind limits and
//! `respect_retry_after_header`, Polly's `DelayGenerator` (resilience4j's
//! `IntervalBiFunction`), and the failed attempt's duration on the retry event (Polly's
//! `OnRetryArguments.Duration`). Fake clock throughout.

mod common;

use core::time::Duration;

use common::{Reply, assert_timeline, plain_policy, run};
use resil_core::{
    Action, Backoff, Cause, DelayContext, Event, GiveUpReason, Input, Instant, Method, RequestInfo,
    ResponseHead, RetryAfter, RetryKind, RetryMachine, RetryPolicy, TransportErrorKind,
};

fn gave_up(out: &common::Outcome) -> (GiveUpReason, u32) {
    match out.last {
        Action::Fail(g) => (g.reason, g.attempts),
        other => panic!("{other:?}"),
    }
}

fn errors(kind: TransportErrorKind, n: usize) -> Vec<Reply> {
    vec![Reply::Error(kind); n]
}

/// urllib3 `test/test_retry.py::test_retry_higher_total_loses`: `Retry(connect=2, total=3)`
/// allows two retries after connect timeouts; the third raises `MaxRetryError`.
#[test]
fn a_connect_limit_below_the_total_wins_as_in_urllib3() {
    let policy = plain_policy()
        .max_retries(3)
        .kind_retries(RetryKind::Connect, 2)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &errors(TransportErrorKind::ConnectTimeout, 4),
    );
    assert_eq!(
        gave_up(&out),
        (
            GiveUpReason::KindExhausted {
                kind: RetryKind::Connect
            },
            3
        )
    );
    assert!(
        matches!(out.last, Action::Fail(g) if g.to_string().contains("all connect retries were used"))
    );
}

/// urllib3 `test_retry_both_specified`: `Retry(connect=3, total=2)`: the total wins.
#[test]
fn a_total_below_the_connect_limit_wins_as_in_urllib3() {
    let policy = plain_policy()
        .max_retries(2)
        .kind_retries(RetryKind::Connect, 3)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &errors(TransportErrorKind::ConnectTimeout, 4),
    );
    assert_eq!(gave_up(&out), (GiveUpReason::AttemptsExhausted, 3));
}

/// urllib3 `test_retry_higher_total_loses_vs_read`: `Retry(read=2, total=3)` after read
/// timeouts; and `read=0` ("fail on the first retry of this type") leaves connect failures
/// retried.
#[test]
fn read_limits_count_failures_after_the_request_was_sent() {
    let policy = |read| {
        plain_policy()
            .max_retries(3)
            .kind_retries(RetryKind::Read, read)
            .backoff(Backoff::Constant(Duration::ZERO))
            .build()
            .unwrap()
    };
    let get = RequestInfo::new(Method::Get);
    let out = run(&policy(2), get, &errors(TransportErrorKind::Timeout, 4));
    assert_eq!(
        gave_up(&out),
        (
            GiveUpReason::KindExhausted {
                kind: RetryKind::Read
            },
            3
        )
    );
    let out = run(
        &policy(0),
        get,
        &[
            Reply::Error(TransportErrorKind::Connect),
            Reply::Error(TransportErrorKind::Reset),
        ],
    );
    assert_eq!(
        gave_up(&out),
        (
            GiveUpReason::KindExhausted {
                kind: RetryKind::Read
            },
            2
        ),
        "the connect failure was retried, the reset was not"
    );
}

/// urllib3's `status=` and `other=`: retries after retryable statuses, and after transport
/// errors that are neither connect nor read errors, each bounded on their own.
#[test]
fn status_and_other_limits_bound_their_own_kind() {
    let policy = plain_policy()
        .max_retries(10)
        .kind_retries(RetryKind::Status, 1)
        .kind_retries(RetryKind::Other, 1)
        .retry_errors(resil_core::TransportErrorKinds::ALL)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let get = RequestInfo::new(Method::Get);
    let out = run(
        &policy,
        get,
        &[
            Reply::Status(503),
            Reply::Error(TransportErrorKind::Other),
            Reply::Status(502),
        ],
    );
    assert_eq!(
        gave_up(&out),
        (
            GiveUpReason::KindExhausted {
                kind: RetryKind::Status
            },
            3
        )
    );
    assert_eq!(
        RetryKind::of(Cause::Error(TransportErrorKind::RefusedStream)),
        RetryKind::Connect
    );
    assert_eq!(
        RetryKind::of(Cause::Error(TransportErrorKind::Protocol)),
        RetryKind::Read
    );
    let err = RetryPolicy::builder()
        .kind_retries(RetryKind::Read, 256)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "kind_retries");
}

/// urllib3's `respect_retry_after_header=False`: the header is ignored and the backoff decides.
#[test]
fn retry_after_can_be_ignored_as_urllib3_allows() {
    let script = [Reply::RetryAfter(503, "5"), Reply::Status(200)];
    let get = RequestInfo::new(Method::Get);
    let out = run(
        &plain_policy().respect_retry_after(false).build().unwrap(),
        get,
        &script,
    );
    assert_timeline(
        &out,
        "
            0ms send #1 (deadline 10000ms)
           10ms #1 <- 503 Retry-After: 5
      event: retry after #1 (status 503) in 100ms
           10ms sleep until 110ms
          110ms send #2 (deadline 10110ms)
          120ms #2 <- 200
      event: completed #2 with 200
          120ms done #2
        ",
    );
    let honoured = run(&plain_policy().build().unwrap(), get, &script);
    assert!(
        honoured.lines.iter().any(|l| l.contains("Retry-After 5s")),
        "by default it is honoured: {:?}",
        honoured.lines
    );
}

/// Polly's documented `DelayGenerator` example (docs/strategies/retry.md: `AttemptNumber`
/// 0 → zero, 1 → 1 s, else 5 s), with resil's difference: the answer is capped at
/// `max_delay` (Polly does not cap a generator's delay; resil caps every delay before it
/// sleeps). Here `max_delay` is 3 s.
#[test]
fn a_delay_function_chooses_each_wait_within_the_policys_bounds() {
    fn polly_example(ctx: &DelayContext) -> Option<Duration> {
        // Polly numbers retries from 0; resil names the attempt that failed, from 1.
        Some(match ctx.attempt.number() - 1 {
            0 => Duration::ZERO,
            1 => Duration::from_secs(1),
            _ => Duration::from_secs(5),
        })
    }
    let policy = plain_policy()
        .max_retries(3)
        .max_delay(Duration::from_secs(3))
        .delay_fn(polly_example)
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[
            Reply::Status(503),
            Reply::Status(503),
            Reply::Status(503),
            Reply::Status(200),
        ],
    );
    let delays: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| l.split(" in ").nth(1))
        .collect();
    assert_eq!(delays, ["0ns", "1s", "3s"]);
}

/// `None` keeps the policy's delay; after a `Retry-After` the function's answer is never
/// shorter than the server asked nor longer than `max_retry_after`.
#[test]
fn a_delay_function_never_shortens_a_retry_after_nor_passes_its_cap() {
    fn zero(_: &DelayContext) -> Option<Duration> {
        Some(Duration::ZERO)
    }
    fn hour(_: &DelayContext) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
    fn keep(ctx: &DelayContext) -> Option<Duration> {
        assert_eq!(ctx.cause, Cause::Status(503));
        assert_eq!(ctx.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(ctx.policy_delay, Duration::from_secs(2));
        None
    }
    let first_wait = |f: resil_core::DelayFn| {
        let policy = plain_policy()
            .delay_fn(f)
            .max_retry_after(Duration::from_secs(20))
            .total_timeout(None)
            .build()
            .unwrap();
        let out = run(
            &policy,
            RequestInfo::new(Method::Get),
            &[Reply::RetryAfter(503, "2"), Reply::Status(200)],
        );
        out.lines
            .iter()
            .find_map(|l| l.split(" in ").nth(1).map(str::to_owned))
            .unwrap()
    };
    assert_eq!(first_wait(zero), "2s, Retry-After 2s");
    assert_eq!(first_wait(hour), "20s, Retry-After 2s");
    assert_eq!(first_wait(keep), "2s, Retry-After 2s");
}

/// A delay that would end past the total deadline gives up, whoever chose it.
#[test]
fn a_delay_function_cannot_wait_past_the_deadline() {
    fn long(_: &DelayContext) -> Option<Duration> {
        Some(Duration::from_secs(15))
    }
    let policy = plain_policy()
        .delay_fn(long)
        .total_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let out = run(
        &policy,
        RequestInfo::new(Method::Get),
        &[Reply::Status(503), Reply::Status(200)],
    );
    assert_eq!(gave_up(&out), (GiveUpReason::DeadlineExceeded, 1));
}

/// Polly's `OnRetryArguments.Duration`: the retry event says how long the failed attempt
/// took, from its `Send` to its answer or its deadline.
#[test]
fn the_retry_event_carries_the_failed_attempts_duration() {
    let policy = plain_policy()
        .attempt_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let mut now = Instant::ZERO;
    let mut m = RetryMachine::new(&policy, RequestInfo::new(Method::Get), now, 1);
    let mut durations = Vec::new();
    let mut replies = [Some(503), None, Some(200)].into_iter();
    loop {
        match m.poll_action() {
            Action::Send { attempt, deadline } => match replies.next().unwrap() {
                Some(status) => {
                    now = now + Duration::from_millis(70);
                    let head = ResponseHead::new(status)
                        .with_retry_after(RetryAfter::parse(b"garbage"), None);
                    m.handle_input(now, Input::Response { attempt, head });
                }
                None => {
                    now = deadline;
                    m.handle_input(now, Input::Timer);
                }
            },
            Action::Sleep { until } => {
                now = until;
                m.handle_input(now, Input::Timer);
            }
            Action::Done { .. } => break,
            Action::Fail(g) => panic!("{g}"),
            Action::Cancel { .. } => panic!("nothing hedges here"),
        }
        while let Some(e) = m.poll_event() {
            if let Event::RetryScheduled {
                attempt_duration, ..
            } = e
            {
                durations.push(attempt_duration);
            }
        }
    }
    assert_eq!(
        durations,
        [Duration::from_millis(70), Duration::from_secs(2)],
        "a 503 after 70 ms, then a stall cut at the 2 s attempt timeout"
    );
}
