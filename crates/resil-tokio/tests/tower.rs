//! resil-tokio's tower layer over a plain hyper-util client: retries, requests it refuses
//! before sending, body prefixes, drained retries, body deadlines and a layer built from a
//! client config.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use common::{assert_body_ended_at_the_deadline, empty_get, plain_hyper};
use resil_tests::{
    Reply, TestServer, dripping_body, error_body_policy, error_body_replies, scenario_policy,
    shared_load,
};
use resil_tokio::{Backoff, ResilLayer, ResponseExt, RetryPolicy};
use tower_layer::Layer;
use tower_service::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layer_over_a_plain_hyper_client() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/t",
        vec![
            Reply::status(503),
            Reply::status(503),
            Reply::body(200, "done"),
        ],
    );
    let layer = ResilLayer::new(
        RetryPolicy::builder()
            .backoff(Backoff::Constant(Duration::from_millis(5)))
            .build()
            .unwrap(),
    );
    let mut service = layer.layer(plain_hyper());
    let response = service.call(empty_get(&server.url("/t"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits("/t"), 3);
    assert_eq!(layer.stats().total_retries(), 2);

    server.script("/always", vec![Reply::status(503)]);
    let err = service
        .call(empty_get(&server.url("/always")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Status(503));
    assert_eq!(
        err.response().unwrap().status(),
        503,
        "the last response comes with the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_refuses_a_second_host_or_a_junk_content_length_before_sending() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/length", vec![Reply::status(200)]);
    let url = server.url("/length");
    let mut service = ResilLayer::new(RetryPolicy::default()).layer(plain_hyper());
    let with = |name: &str, values: &[&str]| {
        let mut request = empty_get(&url);
        for value in values {
            let value = http::HeaderValue::from_str(value).unwrap();
            request
                .headers_mut()
                .append(name.parse::<http::HeaderName>().unwrap(), value);
        }
        request
    };
    for (request, problem) in [
        (
            with("host", &["a.test", "b.test"]),
            "Host is given more than once",
        ),
        (
            with("content-length", &["x"]),
            "Content-Length \"x\" is not a number of bytes",
        ),
        (
            with("content-length", &["0", "1"]),
            "Content-Length is given twice, as 0 and 1",
        ),
    ] {
        let err = service.call(request).await.unwrap_err();
        resil_tests::assert_refused_setting(&err, problem);
    }
    assert!(server.requests().is_empty(), "nothing misframed was sent");
    let response = service.call(with("content-length", &["0"])).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests()[0].values("content-length"), ["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_retries_on_a_body_prefix_and_returns_the_whole_body() {
    let _load = shared_load();
    let server = TestServer::start();
    let long_ok = format!("ok {}", "x".repeat(70_000));
    server.script("/graphql", error_body_replies(&long_ok));
    let layer = ResilLayer::new(error_body_policy());
    let mut service = layer.layer(plain_hyper());
    let response = service.call(empty_get(&server.url("/graphql"))).await;
    let text = response.unwrap().text().await.unwrap();
    assert!(
        text == long_ok,
        "the prefix read early is put back: {:.40}",
        text
    );
    assert_eq!(server.hits("/graphql"), 2);
    assert_eq!(layer.stats().total_retries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_drains_a_retried_response_so_its_connection_is_reused() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/busy",
        vec![
            Reply::body(503, &"busy ".repeat(2_000)),
            Reply::body(200, "ok"),
        ],
    );
    let mut service = ResilLayer::new(scenario_policy()).layer(plain_hyper());
    let response = service.call(empty_get(&server.url("/busy"))).await;
    assert_eq!(response.unwrap().text().await.unwrap(), "ok");
    assert_eq!(server.hits("/busy"), 2);
    assert_eq!(
        server.connections(),
        1,
        "the 503's connection served the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_ends_a_stalled_body_at_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/drip", dripping_body());
    // One attempt: with more, the body would be asked for again.
    let policy = RetryPolicy::builder()
        .max_attempts(1)
        .attempt_timeout(Some(Duration::from_millis(80)))
        .build()
        .unwrap();
    let mut service = ResilLayer::new(policy).layer(plain_hyper());
    let start = std::time::Instant::now();
    let response = service.call(empty_get(&server.url("/drip"))).await.unwrap();
    let err = response.text().await.unwrap_err();
    assert_body_ended_at_the_deadline(start, &err);
    assert!(
        format!("{err}").contains("/drip"),
        "the error names the call: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_from_a_client_config_applies_its_base_url_body_limit_and_request_id() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/big", vec![Reply::body(200, &"x".repeat(100))]);
    let mut config = resil_http::ClientConfig::default();
    config.base_url(&server.url(""));
    config.body_limit(64);
    config.generate_request_ids(true);
    let layer = ResilLayer::from_config(config).unwrap();
    let mut service = layer.layer(plain_hyper());
    let response = service.call(empty_get("/big")).await.unwrap();
    let err = response.bytes().await.unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body, "{err}");
    assert!(format!("{err:#}").contains("64-byte limit"), "{err:#}");
    let requests = server.requests();
    assert_eq!(requests[0].header("x-request-id").map(str::len), Some(32));

    // Without a base URL a URI with no host is a clear error, not a send.
    let mut bare = ResilLayer::new(scenario_policy()).layer(plain_hyper());
    let err = bare.call(empty_get("/big")).await.unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::InvalidUrl, "{err}");
    assert_eq!(server.hits("/big"), 1);
}
