//! A server that answers every 429 with `Retry-After: 0`: the wait is the backoff (a floor),
//! so the fleet does not burn its attempts in a tight loop, as it does when told to wait
//! exactly what the server said.

use std::time::Duration;

use resil_core::{Backoff, Jitter, RetryPolicy};
use resil_sim::{Arrivals, RateLimit, Report, Scenario, run};

fn storm(exact: bool) -> Report {
    let mut s = Scenario::new(11);
    s.clients = 200;
    s.arrivals = Arrivals::AtOnce;
    s.duration = Duration::from_secs(5);
    s.server.rate_limit = Some(RateLimit {
        per_second: 50,
        retry_after: Duration::ZERO,
    });
    s.policy = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(Backoff::exponential(Duration::from_millis(100)))
        .jitter(Jitter::Full)
        .retry_after_exact(exact)
        .build()
        .unwrap();
    run(&s)
}

#[test]
fn retry_after_zero_waits_the_backoff_not_nothing() {
    let floor = storm(false);
    let exact = storm(true);
    // Told "0" and taken at its word, every client retries at once and uses up its attempts
    // inside the first window; with the backoff as a floor, the retries spread into later
    // windows and more get through.
    assert!(
        floor.succeeded > exact.succeeded,
        "floor {} vs exact {} succeeded",
        floor.succeeded,
        exact.succeeded
    );
    assert!(floor.p50 > exact.p50, "{:?} vs {:?}", floor.p50, exact.p50);
    assert_eq!(floor.retry_after_honoured, floor.retries);
}
