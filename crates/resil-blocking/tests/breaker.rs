//! The circuit breaker through resil-blocking: one breaker shared by two clients, opening,
//! rejecting without connecting and closing again, and a breaker per origin. Breaker waits run
//! on a manual clock.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{Clock, ErrorKind};
use resil_core::{BreakerState, CircuitBreaker, RetryPolicy, TripCondition};
use resil_tests::{Reply, TestServer, Transcript, shared_load};

#[test]
fn shared_breaker_opens_rejects_without_connecting_then_half_opens_and_closes() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/flaky", |_, n| {
        if n < 3 {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    });
    let clock = ManualClock::new();
    let breaker = Arc::new(Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(3))
            .open_for(Duration::from_secs(30))
            .build()
            .unwrap(),
    ));
    let once = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let transcript = Arc::new(Transcript::default());
    let make = || {
        builder(&clock)
            .policy(once.clone())
            .breaker(breaker.clone())
            .hooks(transcript.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    for client in [&a, &b, &a] {
        let err = client.get(&server.url("/flaky")).send().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Status(500));
    }
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Open);
    let connections = server.connections();
    let err = b.get(&server.url("/flaky")).send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(err.attempts(), 0);
    assert_eq!(
        server.connections(),
        connections,
        "rejected without a connection"
    );
    assert_eq!(server.hits("/flaky"), 3);
    // 30 s later on the shared clock, the next call is the half-open probe.
    clock.sleep(Duration::from_secs(30));
    assert_eq!(a.get(&server.url("/flaky")).send().unwrap().status(), 200);
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Closed);
    let lines = transcript.lines();
    let transitions: Vec<_> = lines.iter().filter(|l| l.starts_with("breaker")).collect();
    assert_eq!(
        transitions,
        [
            "breaker closed -> open",
            "breaker open -> half-open",
            "breaker half-open -> closed"
        ]
    );
    assert_eq!(b.stats().breaker_rejections, 1);
}

#[test]
fn a_breaker_per_origin_leaves_the_other_backends_alone() {
    let _load = shared_load();
    for per_origin in [true, false] {
        let (down, up) = resil_tests::down_and_up();
        let builder = builder(&ManualClock::new()).max_retries(0);
        let builder = if per_origin {
            builder.breaker_per_origin(resil_tests::trips_after_two())
        } else {
            let breaker = resil_tests::trips_after_two().build().unwrap();
            builder.breaker(Arc::new(Mutex::new(breaker)))
        };
        let client = builder.build().unwrap();
        let outcomes: Vec<_> = [down.url("/"), down.url("/"), down.url("/"), up.url("/")]
            .iter()
            .map(|url| match client.get(url).send() {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => e.response().map(|r| r.status().as_u16()).ok_or(e.kind()),
            })
            .collect();
        resil_tests::assert_breaker_scope(&outcomes, &down, per_origin);
        if per_origin {
            let states = client.origin_breaker_states();
            let state_of = |server: &TestServer| {
                let origin = format!("http://{}", server.addr());
                states.iter().find(|(o, _)| *o == origin).map(|(_, s)| *s)
            };
            assert_eq!(states.len(), 2, "{states:?}");
            assert_eq!(state_of(&down), Some(resil_core::BreakerState::Open));
            assert_eq!(state_of(&up), Some(resil_core::BreakerState::Closed));
        }
    }
}
