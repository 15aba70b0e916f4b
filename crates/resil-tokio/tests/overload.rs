//! Overload control through resil-tokio's client and tower layer, on loopback: a storm of
//! 429s does not open the default breaker, and a limiter's refusal fails the call before
//! anything is sent. (A limiter's wait is in `paused.rs`, on paused time.)
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::{Arc, Mutex};

use common::{empty_get, plain_hyper};
use resil_core::BreakerState;
use resil_tests::{Reply, TestServer, scenario_policy, shared_load};
use resil_tokio::{Client, ErrorKind, LocalRejection, RateLimiter, ResilLayer};
use tower_layer::Layer;
use tower_service::Service;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_does_not_open_the_default_breaker() {
    let _load = shared_load();
    let server = storm();
    let client = Client::builder()
        .policy(scenario_policy())
        .seed(7)
        .build()
        .unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(match client.get(&server.url("/")).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.kind()),
        });
    }
    // Four attempts a call: 429 ×4, then 429 ×2 and 200, then 200.
    assert_eq!(outcomes, [Err(ErrorKind::Status(429)), Ok(200), Ok(200)]);
    let breaker = client.breaker().unwrap().lock().unwrap().state();
    assert_eq!(breaker, BreakerState::Closed);
    assert_eq!(server.hits("/"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_through_the_tower_layer_leaves_the_breaker_closed() {
    let _load = shared_load();
    let server = storm();
    let mut config = resil_http::ClientConfig::default();
    config.policy(scenario_policy());
    config.base_url(&server.url(""));
    let layer = ResilLayer::from_config(config).unwrap();
    let mut service = layer.layer(plain_hyper());
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(match service.call(empty_get("/")).await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.kind()),
        });
    }
    assert_eq!(outcomes, [Err(ErrorKind::Status(429)), Ok(200), Ok(200)]);
    assert_eq!(layer.stats().breaker_rejections, 0);
    assert_eq!(server.hits("/"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_refusal_fails_the_call_before_anything_is_sent() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/", vec![Reply::status(200)]);
    // One call per 1,000 s: the second would wait past its deadline.
    let limiter = RateLimiter::builder().rate(0.001).burst(1).build().unwrap();
    let client = Client::builder()
        .policy(scenario_policy())
        .limiter(Arc::new(Mutex::new(limiter)))
        .build()
        .unwrap();
    assert_eq!(
        client.get(&server.url("/")).send().await.unwrap().status(),
        200
    );
    let err = client.get(&server.url("/")).send().await.unwrap_err();
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
