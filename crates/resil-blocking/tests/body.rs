//! Response bodies through resil-blocking: truncated, over the limit, dripping, and read in
//! part by `retry_if` before the caller reads them whole.

mod common;

use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{ErrorKind, ResponseExt};
use resil_core::RetryPolicy;
use resil_tests::{Reply, TestServer, error_body_policy, error_body_replies, shared_load};

#[test]
fn truncated_body_is_an_error_never_a_short_success() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/short",
        vec![Reply::Truncated {
            declared: 100,
            body: b"only forty bytes of the promised hundred".to_vec(),
        }],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    let response = client.get(&server.url("/short")).send().unwrap();
    // Every attempt's body is cut: the call goes on until its attempts are used, and the
    // error is the body's.
    let err = response.bytes().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body, "{err}");
    assert_eq!(err.attempts(), 4, "{err}");
    assert!(
        format!("{err:#}").contains("ended before its whole body arrived"),
        "{err:#}"
    );
    assert_eq!(server.hits("/short"), 4);
}

#[test]
fn body_over_the_limit_is_an_error() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/big", vec![Reply::body(200, &"x".repeat(2048))]);
    server.script("/fits", vec![Reply::body(200, &"x".repeat(1024))]);
    let client = builder(&ManualClock::new())
        .body_limit(1024)
        .build()
        .unwrap();
    let err = client
        .get(&server.url("/big"))
        .send()
        .unwrap()
        .text()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body);
    assert!(format!("{err:#}").contains("1024-byte limit"), "{err}");
    assert_eq!(
        client
            .get(&server.url("/fits"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            .len(),
        1024
    );
}

#[test]
fn slow_drip_body_still_arrives_whole() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/drip",
        vec![Reply::Drip {
            body: b"drip".to_vec(),
            delay: Duration::from_millis(5),
        }],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    assert_eq!(
        client
            .get(&server.url("/drip"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "drip"
    );
}

#[test]
fn retry_if_sees_a_body_prefix_and_the_caller_still_reads_the_whole_body() {
    let _load = shared_load();
    let server = TestServer::start();
    let long_ok = format!("ok {}", "x".repeat(5000));
    server.script("/graphql", error_body_replies(&long_ok));
    let clock = ManualClock::new();
    let policy = error_body_policy();
    let client = builder(&clock).policy(policy).build().unwrap();
    let text = client
        .get(&server.url("/graphql"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, long_ok, "the prefix read early is put back");
    assert_eq!(server.hits("/graphql"), 2);
    assert_eq!(client.stats().total_retries(), 1);
    assert_eq!(
        server.connections(),
        1,
        "the retried response was drained and its connection reused"
    );
}

#[test]
fn a_body_prefix_larger_than_64_kib_is_a_policy_error() {
    let err = RetryPolicy::builder()
        .retry_if_body_prefix(65 * 1024)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("retry_if_body_prefix"), "{err}");
}
