//! resil-tokio's attempt deadlines on response bodies that stall, against servers on
//! 127.0.0.1. Real sockets need real time here: tokio's paused clock auto-advances while a task
//! waits on a socket, which would fire attempt deadlines early.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::assert_body_ended_at_the_deadline;
use resil_tests::{TestServer, assert_took, dripping_body, shared_load, stalled_503_then_ok};
use resil_tokio::{Backoff, Client, ResponseExt, RetryPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_body_that_stalls_ends_at_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/drip", dripping_body());
    let client = Client::new().unwrap();
    let start = std::time::Instant::now();
    let response = client
        .get(&server.url("/drip"))
        .timeout(Duration::from_millis(80))
        .send()
        .await
        .unwrap();
    let err = response.text().await.unwrap_err();
    assert_body_ended_at_the_deadline(start, &err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_response_whose_body_stalls_is_given_up_at_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/r", stalled_503_then_ok());
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(5)))
        .attempt_timeout(Some(Duration::from_millis(80)))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).build().unwrap();
    let start = std::time::Instant::now();
    let response = client.get(&server.url("/r")).send().await.unwrap();
    // The 503's body is drained before the retry; without its deadline that drain would
    // wait for the server's 3 s.
    assert_took(start, Duration::ZERO, Duration::from_secs(1));
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(server.hits("/r"), 2);
}
