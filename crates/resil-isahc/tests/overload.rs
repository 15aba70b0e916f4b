//! Overload control through resil-isahc, on loopback: a storm of 429s does not open the
//! default breaker, and a limiter's refusal fails the call before anything is sent.

use std::sync::{Arc, Mutex};

use futures_lite::future::block_on;
use resil_core::BreakerState;
use resil_isahc::{Client, ErrorKind, LocalRejection, RateLimiter};
use resil_tests::{Reply, TestServer, scenario_policy, shared_load};

#[test]
fn a_429_storm_does_not_open_the_default_breaker() {
    let _load = shared_load();
    let server = TestServer::start();
    // Six 429s, more in a row than the default breaker's five, then 200.
    server.handle("/", |_, n| {
        if n < 6 {
            Reply::status(429)
        } else {
            Reply::status(200)
        }
    });
    let client = Client::builder()
        .policy(scenario_policy())
        .seed(7)
        .build()
        .unwrap();
    let outcomes: Vec<_> = (0..3)
        .map(|_| match block_on(client.get(&server.url("/")).send()) {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.kind()),
        })
        .collect();
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
    let limiter = RateLimiter::builder().rate(0.001).burst(1).build().unwrap();
    let client = Client::builder()
        .policy(scenario_policy())
        .limiter(Arc::new(Mutex::new(limiter)))
        .build()
        .unwrap();
    let first = block_on(client.get(&server.url("/")).send()).unwrap();
    assert_eq!(first.status(), 200);
    let err = block_on(client.get(&server.url("/")).send()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::RejectedLocally(LocalRejection::RateLimited { .. })
        ),
        "{err:#}"
    );
    assert_eq!(err.attempts(), 0);
    assert_eq!(server.hits("/"), 1, "nothing sent for the refused call");
    assert_eq!(client.stats().local_rejections, 1);
}
