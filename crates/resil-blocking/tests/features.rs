//! The `json` feature.
#![cfg(feature = "json")]

use std::time::Duration;

use resil_blocking::{Client, ResponseExt};
use resil_core::{Backoff, Jitter, RetryPolicy};
use resil_tests::{Reply, TestServer, shared_load};

fn quick() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::ZERO))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[cfg(feature = "json")]
#[test]
fn json_request_and_response_bodies() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/echo",
        vec![
            Reply::status(503),
            Reply::body(200, r#"{"id":7,"tags":["a"]}"#),
        ],
    );
    let client = Client::builder().policy(quick()).build().unwrap();
    let value: serde_json::Value = client
        .post(&server.url("/echo"))
        .header("idempotency-key", "j-1")
        .json(&serde_json::json!({"name": "resil"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(value["id"], 7);
    for r in server.requests() {
        assert_eq!(r.body, br#"{"name":"resil"}"#);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    server.script("/bad", vec![Reply::body(200, "not json")]);
    let err = client
        .get(&server.url("/bad"))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap_err();
    resil_tests::assert_decode_error(&err, "expected");

    server.script("/latin1", resil_tests::latin1_body());
    let err = client
        .get(&server.url("/latin1"))
        .send()
        .unwrap()
        .text()
        .unwrap_err();
    resil_tests::assert_decode_error(&err, "incomplete utf-8");
}
