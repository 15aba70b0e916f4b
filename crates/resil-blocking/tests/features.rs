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
    assert_eq!(err.kind(), resil_blocking::ErrorKind::Decode, "{err:#}");
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("could not be decoded: expected"), "{line}");

    server.script(
        "/latin1",
        vec![Reply::Raw(
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\ncaf\xe9",
        )],
    );
    let err = client
        .get(&server.url("/latin1"))
        .send()
        .unwrap()
        .text()
        .unwrap_err();
    assert_eq!(err.kind(), resil_blocking::ErrorKind::Decode, "{err:#}");
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(
        line.contains("could not be decoded: incomplete utf-8"),
        "{line}"
    );
}
