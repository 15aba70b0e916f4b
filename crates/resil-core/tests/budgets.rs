//! The three budget kinds against their peers' own published numbers, through the public API
//! and, where the peer's test drives whole calls, through the retry machine.

use core::time::Duration;
use std::sync::Mutex;

use resil_core::{
    Action, Backoff, Cause, GiveUpReason, Input, Instant, Jitter, Method, QuotaCosts, RequestInfo,
    ResponseHead, RetryBudget, RetryMachine, RetryPolicy, TransportErrorKind,
};

/// What the machine did after one response, as the AWS SDKs' shared retry test cases write
/// it: the outcome, the quota left, and the delay before the retry.
#[derive(Debug, PartialEq)]
enum Step {
    Retry { quota: f64, delay: Duration },
    Success { quota: f64 },
    MaxAttemptsExceeded { quota: f64 },
    RetryQuotaExceeded { quota: f64 },
}

/// The SDK test cases' policy: `max_attempts: 3`, `exponential_base: 1` (no randomness),
/// `exponential_power: 2`, `max_backoff_time: 20`.
fn sdk_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_secs(1)))
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(20))
        .total_timeout(None)
        .build()
        .unwrap()
}

/// One call answered by `replies` in turn; a step per reply.
fn call(
    policy: &RetryPolicy,
    budget: &Mutex<RetryBudget>,
    replies: &[Result<u16, TransportErrorKind>],
) -> Vec<Step> {
    let quota = || budget.lock().unwrap().tokens().unwrap();
    let mut now = Instant::from_secs(1);
    let mut m =
        RetryMachine::new(policy, RequestInfo::new(Method::Get), now, 1).with_budget(budget);
    let mut replies = replies.iter();
    let mut steps = Vec::new();
    let mut next = m.poll_action();
    loop {
        let Action::Send { attempt, .. } = next else {
            return steps;
        };
        match replies.next().expect("a reply for every attempt") {
            Ok(status) => {
                let head = ResponseHead::new(*status);
                m.handle_input(now, Input::Response { attempt, head });
            }
            Err(kind) => m.handle_input(
                now,
                Input::Error {
                    attempt,
                    kind: *kind,
                },
            ),
        }
        next = m.poll_action();
        match next {
            Action::Sleep { until } => {
                steps.push(Step::Retry {
                    quota: quota(),
                    delay: until - now,
                });
                now = until;
                m.handle_input(now, Input::Timer);
                next = m.poll_action();
            }
            Action::Send { .. } => steps.push(Step::Retry {
                quota: quota(),
                delay: Duration::ZERO,
            }),
            Action::Done { .. } => steps.push(Step::Success { quota: quota() }),
            Action::Cancel { .. } => panic!("nothing hedges here"),
            Action::Fail(g) => steps.push(match g.reason {
                GiveUpReason::AttemptsExhausted => Step::MaxAttemptsExceeded { quota: quota() },
                GiveUpReason::BudgetExhausted => Step::RetryQuotaExceeded { quota: quota() },
                other => panic!("{other:?}"),
            }),
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The AWS SDKs' shared standard-mode retry test cases (the SDK enhancement proposal's YAML,
/// run by every SDK, e.g. aws-sdk-kotlin `StandardRetryIntegrationTest`, aws-sdk-ruby
/// `retry_errors_spec.rb`): 500 tokens, a retry costs 5, a success refunds its retry's cost.
#[test]
fn aws_standard_quota_matches_the_sdks_shared_test_cases() {
    let policy = sdk_policy();
    // "Retry eventually succeeds".
    let budget = Mutex::new(RetryBudget::aws_standard());
    assert_eq!(
        call(&policy, &budget, &[Ok(500), Ok(500), Ok(200)]),
        [
            Step::Retry {
                quota: 495.0,
                delay: secs(1)
            },
            Step::Retry {
                quota: 490.0,
                delay: secs(2)
            },
            Step::Success { quota: 495.0 },
        ]
    );
    // "Fail due to max attempts reached".
    let budget = Mutex::new(RetryBudget::aws_standard());
    assert_eq!(
        call(&policy, &budget, &[Ok(502), Ok(502), Ok(502)]),
        [
            Step::Retry {
                quota: 495.0,
                delay: secs(1)
            },
            Step::Retry {
                quota: 490.0,
                delay: secs(2)
            },
            Step::MaxAttemptsExceeded { quota: 490.0 },
        ]
    );
    // "Retry Quota reached after a single retry" (the quota at 5) and "No retries at all if
    // retry quota is 0": the quota is drained to 5 by 99 retries of other calls first.
    let budget = Mutex::new(RetryBudget::aws_standard());
    let one_retry = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    for _ in 0..99 {
        call(&one_retry, &budget, &[Ok(503), Ok(503)]);
    }
    assert_eq!(budget.lock().unwrap().tokens(), Some(5.0));
    assert_eq!(
        call(&policy, &budget, &[Ok(500), Ok(502)]),
        [
            Step::Retry {
                quota: 0.0,
                delay: secs(1)
            },
            Step::RetryQuotaExceeded { quota: 0.0 },
        ]
    );
    assert_eq!(
        call(&policy, &budget, &[Ok(500)]),
        [Step::RetryQuotaExceeded { quota: 0.0 }]
    );
    // A success that needed no retry gives back 1 (`NO_RETRY_INCREMENT`).
    call(&policy, &budget, &[Ok(200)]);
    assert_eq!(budget.lock().unwrap().tokens(), Some(1.0));
}

/// The AWS SDKs' standard mode charges 10 after a timeout (Go v2 `RetryTimeoutCost`, botocore
/// `_TIMEOUT_RETRY_REQUEST`), and the refund on success is that same 10 (aws-sdk-cpp
/// `AWSClientTest` "retry eventually succeeds": 5 after a connection error, 10 after a
/// timeout, 10 back on success).
#[test]
fn aws_standard_quota_charges_timeouts_double_and_refunds_the_last_retry() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let budget = Mutex::new(RetryBudget::aws_standard());
    call(
        &policy,
        &budget,
        &[
            Err(TransportErrorKind::Connect),
            Err(TransportErrorKind::Timeout),
            Ok(200),
        ],
    );
    assert_eq!(
        budget.lock().unwrap().tokens(),
        Some(495.0),
        "500 - 5 - 10 + 10"
    );
}

/// The 2026 update (aws-sdk-go-v2 PR #3400, "Add preview of changes for standard retry mode
/// behind flag"; the SDKs' announcement issues): a non-throttling retry costs 14, a throttling
/// one 5, timeouts are no longer special. The updated shared test cases: 500, 500, 200 leave
/// 486, 472, then 486.
#[test]
fn aws_2026_quota_charges_14_and_5_after_throttling() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let budget = Mutex::new(RetryBudget::aws_standard_2026());
    let steps = call(&policy, &budget, &[Ok(500), Ok(500), Ok(200)]);
    let quotas: Vec<f64> = steps
        .iter()
        .map(|s| match s {
            Step::Retry { quota, .. } | Step::Success { quota } => *quota,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(quotas, [486.0, 472.0, 486.0]);
    let mut quota = RetryBudget::aws_standard_2026();
    let now = Instant::ZERO;
    assert!(quota.try_withdraw_after(now, Cause::Status(429)));
    assert!(quota.try_withdraw_after(now, Cause::Error(TransportErrorKind::Timeout)));
    assert_eq!(
        quota.tokens(),
        Some(481.0),
        "500 - 5 (throttled) - 14 (timeout)"
    );
    assert_eq!(QuotaCosts::AWS_2026.of(Cause::Status(503)), 14);
    assert_eq!(QuotaCosts::AWS_STANDARD.of(Cause::Status(429)), 5);
}

/// gRPC core's `retry_throttle_test.cc`, `ServerRetryThrottleData.Basic`: 4 tokens, a success
/// adds 1.6; retries only above 2.
#[test]
fn grpc_bucket_matches_grpc_cores_basic_test() {
    let mut b = RetryBudget::grpc(4, 1.6).unwrap();
    let now = Instant::ZERO;
    let failed = Some(Cause::Status(503));
    let fail = |b: &mut RetryBudget| {
        b.record_attempt(now, failed, true);
        b.try_withdraw_after(now, Cause::Status(503))
    };
    let succeed = |b: &mut RetryBudget| b.record_attempt(now, failed, false);
    assert!(fail(&mut b), "3");
    succeed(&mut b);
    assert_eq!(b.tokens(), Some(4.0), "not past the maximum");
    assert!(fail(&mut b), "3");
    assert!(!fail(&mut b), "2: at the threshold");
    assert!(!fail(&mut b), "1");
    assert!(!fail(&mut b), "0");
    assert!(!fail(&mut b), "0: not below zero");
    assert_eq!(b.tokens(), Some(0.0));
    succeed(&mut b);
    succeed(&mut b);
    assert!(fail(&mut b), "3.2 - 1 = 2.2");
    assert!(!fail(&mut b), "1.2");
    succeed(&mut b);
    assert!(!fail(&mut b), "2.8 - 1 = 1.8");
    succeed(&mut b);
    assert!(fail(&mut b), "3.4 - 1 = 2.4");
}

/// gRPC core's `ServerRetryThrottleData.Replacement` (gRFC A6: a new service config keeps the
/// bucket's fill fraction): 3 of 4 tokens become 7.5 of 10.
#[test]
fn grpc_bucket_keeps_its_fill_fraction_when_reconfigured() {
    let now = Instant::ZERO;
    let failed = Some(Cause::Status(503));
    let mut b = RetryBudget::grpc(4, 1.0).unwrap();
    b.record_attempt(now, failed, true);
    assert!(b.try_withdraw_after(now, Cause::Status(503)), "3 of 4");
    b.reconfigure(RetryBudget::grpc(10, 3.0).unwrap());
    assert_eq!(b.tokens(), Some(7.5));
    let fail = |b: &mut RetryBudget| {
        b.record_attempt(now, failed, true);
        b.try_withdraw_after(now, Cause::Status(503))
    };
    assert!(fail(&mut b), "6.5");
    assert!(fail(&mut b), "5.5");
    assert!(!fail(&mut b), "4.5");
    assert!(!fail(&mut b), "3.5");
    b.record_attempt(now, failed, false);
    assert!(fail(&mut b), "6.5 - 1 = 5.5");
    assert!(!fail(&mut b), "4.5");
    // Any other change starts the new budget afresh.
    b.reconfigure(RetryBudget::aws_standard());
    assert_eq!(b.tokens(), Some(500.0));
}

/// Finagle's `RetryBudget` (com.twitter.finagle.service.RetryBudget scaladoc): the default
/// allows 20 % of requests plus 10 retries per second over 10 s, so a client with no traffic
/// still has 100 retries, and 100 requests add 20.
#[test]
fn finagle_budget_has_the_published_reserve_and_ratio() {
    let now = Instant::from_secs(3);
    let mut b = RetryBudget::finagle();
    assert_eq!(b.available(now), 100);
    for _ in 0..100 {
        b.record_request(now);
    }
    assert_eq!(b.available(now), 120);
    assert_eq!(b.tokens(), None, "a ratio budget counts calls, not tokens");
}

#[test]
fn budget_settings_that_could_never_grant_are_refused() {
    let field = |r: Result<RetryBudget, resil_core::PolicyError>| r.unwrap_err().field();
    assert_eq!(field(RetryBudget::ratio(0.0, 0, secs(10))), "budget.ratio");
    assert_eq!(field(RetryBudget::grpc(1001, 0.1)), "budget.max_tokens");
    assert_eq!(field(RetryBudget::grpc(0, 0.1)), "budget.max_tokens");
    assert_eq!(field(RetryBudget::grpc(10, 0.0)), "budget.token_ratio");
    assert_eq!(
        field(RetryBudget::quota(0, QuotaCosts::AWS_STANDARD)),
        "budget.capacity"
    );
    assert_eq!(
        field(RetryBudget::quota(8, QuotaCosts::AWS_STANDARD)),
        "budget.costs",
        "a timeout's 10 never fits"
    );
    let free = QuotaCosts {
        retry: 0,
        ..QuotaCosts::AWS_STANDARD
    };
    assert_eq!(field(RetryBudget::quota(500, free)), "budget.costs");
    let no_refill = QuotaCosts {
        success: 0,
        ..QuotaCosts::AWS_STANDARD
    };
    assert_eq!(field(RetryBudget::quota(500, no_refill)), "budget.costs");
    assert!(RetryBudget::quota(10, QuotaCosts::AWS_STANDARD).is_ok());
}
