//! Overload control through resil-blocking, on loopback: a storm of 429s does not open the
//! default client's breaker, a limiter's refusal fails the call before anything is sent, and
//! a limiter's wait delays the attempt (on a manual clock: waits cost nothing).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{Attempt, CallInfo, ErrorKind, Hooks, LocalRejection, RateLimiter};
use resil_core::BreakerState;
use resil_tests::{Reply, TestServer, shared_load};

/// Counts the limiter hooks.
#[derive(Default)]
struct LimiterHooks {
    waits: AtomicU64,
    rejections: AtomicU64,
}

impl Hooks for LimiterHooks {
    fn on_limiter_wait(&self, _: &CallInfo<'_>, attempt: Attempt, wait: Duration) {
        assert_eq!(attempt.number(), 1);
        assert!(wait > Duration::ZERO);
        self.waits.fetch_add(1, Ordering::SeqCst);
    }
    fn on_rejected_locally(&self, _: &CallInfo<'_>, reason: LocalRejection) {
        assert!(matches!(reason, LocalRejection::RateLimited { .. }));
        self.rejections.fetch_add(1, Ordering::SeqCst);
    }
}

/// The first six answers are 429, more in a row than the default breaker's five, then 200.
fn storm() -> TestServer {
    let server = TestServer::start();
    server.handle("/", |_, n| {
        if n < 6 {
            Reply::status(429)
        } else {
            Reply::status(200)
        }
    });
    server
}

#[test]
fn a_429_storm_does_not_open_the_default_breaker() {
    let _load = shared_load();
    let server = storm();
    let client = builder(&ManualClock::new()).build().unwrap();
    let outcomes: Vec<_> = (0..3)
        .map(|_| match client.get(&server.url("/")).send() {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.kind()),
        })
        .collect();
    // Four attempts a call: 429 ×4, then 429 ×2 and 200, then 200.
    assert_eq!(outcomes, [Err(ErrorKind::Status(429)), Ok(200), Ok(200)]);
    let breaker = client.breaker().unwrap().lock().unwrap().state();
    assert_eq!(breaker, BreakerState::Closed);
    assert_eq!(server.hits("/"), 8);
}

#[test]
fn a_limiter_refusal_fails_the_call_before_anything_is_sent() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/", vec![Reply::status(200)]);
    // One call per 1,000 s: the second would wait past its deadline.
    let limiter = RateLimiter::builder().rate(0.001).burst(1).build().unwrap();
    let hooks = Arc::new(LimiterHooks::default());
    let client = builder(&ManualClock::new())
        .limiter(Arc::new(Mutex::new(limiter)))
        .hooks(hooks.clone())
        .build()
        .unwrap();
    assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 200);
    let err = client.get(&server.url("/")).send().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::RejectedLocally(LocalRejection::RateLimited { .. })
        ),
        "{err:#}"
    );
    assert_eq!(err.attempts(), 0);
    assert!(err.to_string().contains("rejected locally"), "{err}");
    assert_eq!(server.hits("/"), 1, "nothing sent for the refused call");
    let stats = client.stats();
    assert_eq!((stats.local_rejections, stats.failures), (1, 1));
    assert_eq!(hooks.rejections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_rate_limited_call_waits_for_its_turn_then_goes() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/", vec![Reply::status(200)]);
    let clock = ManualClock::new();
    let limiter = Arc::new(Mutex::new(
        RateLimiter::builder().rate(1.0).burst(1).build().unwrap(),
    ));
    let hooks = Arc::new(LimiterHooks::default());
    let client = builder(&clock)
        .policy(resil_core::RetryPolicy::default())
        .limiter(limiter.clone())
        .hooks(hooks.clone())
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.get(&server.url("/")).send().unwrap().status(), 200);
    }
    let stats = client.stats();
    assert_eq!(stats.limiter_waits, 1);
    assert!(
        stats.limiter_wait > std::time::Duration::from_millis(500),
        "{stats}"
    );
    assert!(
        clock.slept() > std::time::Duration::from_millis(500),
        "the wait was slept"
    );
    assert_eq!(server.hits("/"), 2);
    assert!(matches!(
        client.current_limits()[..],
        [resil_blocking::CurrentLimit::Rate {
            per_1000_seconds: 1000
        }]
    ));
}
