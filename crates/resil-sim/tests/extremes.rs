//! Scenarios at the edges of their types end, without a panic or an unbounded report.

use std::time::Duration;

use resil_core::{Backoff, RetryPolicy};
use resil_sim::{Arrivals, Latency, SECONDS_KEPT, Scenario, run};

#[test]
fn arrivals_at_once_without_a_count_start_one_request_per_client() {
    let mut s = Scenario::new(1);
    s.clients = 50;
    s.arrivals = Arrivals::AtOnce;
    s.requests_per_client = None;
    assert_eq!(s.expected_logical_requests(), 50);
    let report = run(&s);
    assert_eq!(report.logical_requests, 50);
    assert_eq!(report.succeeded, 50);

    s.requests_per_client = Some(0);
    assert_eq!(s.expected_logical_requests(), 0);
    assert_eq!(run(&s).logical_requests, 0, "a limit of zero starts none");
}

#[test]
fn times_that_reach_centuries_saturate_and_the_series_stays_bounded() {
    let mut s = Scenario::new(2);
    s.clients = 3;
    s.duration = Duration::MAX;
    s.arrivals = Arrivals::Fixed(Duration::MAX);
    s.server.latency = Latency::Uniform(Duration::ZERO, Duration::MAX);
    s.server.failure_probability = 0.5;
    s.policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_secs(u64::MAX / 4)))
        .max_delay(Duration::MAX)
        .attempt_timeout(None)
        .total_timeout(None)
        .build()
        .unwrap();
    assert_eq!(s.expected_logical_requests(), 3);
    let report = run(&s);
    assert_eq!(report.logical_requests, 3);
    assert_eq!(report.succeeded + report.failed, 3);
    assert!(report.seconds.len() <= SECONDS_KEPT);
}

#[test]
fn expected_requests_follow_the_arrivals_and_the_limit() {
    let mut s = Scenario::new(3);
    s.clients = 10;
    s.duration = Duration::from_secs(10);
    s.arrivals = Arrivals::Fixed(Duration::from_secs(3));
    assert_eq!(s.expected_logical_requests(), 40, "ceil(10 / 3) each");
    s.requests_per_client = Some(2);
    assert_eq!(s.expected_logical_requests(), 20);
    s.arrivals = Arrivals::AtOnce;
    assert_eq!(s.expected_logical_requests(), 20);
    s.requests_per_client = None;
    s.arrivals = Arrivals::Poisson(Duration::from_millis(100));
    assert_eq!(s.expected_logical_requests(), 1_000);
    s.arrivals = Arrivals::Fixed(Duration::ZERO);
    s.clients = u32::MAX;
    s.duration = Duration::MAX;
    assert_eq!(s.expected_logical_requests(), u64::MAX, "saturates");
}
