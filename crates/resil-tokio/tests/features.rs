//! Optional features: the reqwest adapter and JSON bodies, against loopback servers.
// The helpers serve the feature-gated tests too.
#![cfg_attr(
    not(all(feature = "json", feature = "reqwest")),
    allow(unused_imports, dead_code)
)]
#![allow(clippy::await_holding_lock)] // the load guard is meant to span the whole test

use std::time::Duration;

use resil_tests::{Reply, TestServer, shared_load};
use resil_tokio::{Backoff, Client, Jitter, RetryPolicy};

fn quick() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_under_resil_retries_and_reports_the_same_facts() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/r",
        vec![
            Reply::status(503),
            Reply::Reset,
            Reply::body(200, "via reqwest"),
        ],
    );
    let reqwest = reqwest::Client::builder().build().unwrap();
    let client = Client::builder()
        .transport(resil_tokio::ReqwestTransport::new(reqwest))
        .policy(quick())
        .build()
        .unwrap();
    use resil_tokio::ResponseExt;
    let text = client
        .get(&server.url("/r"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "via reqwest");
    let stats = client.stats();
    assert_eq!(stats.attempts, 3);
    assert_eq!(stats.retries_for(resil_http::RetryReason::ServerError), 1);
    assert_eq!(
        stats.retries_for(resil_http::RetryReason::Transport),
        1,
        "the reset was classified"
    );

    // A refused port is a connect error: a POST is retried.
    let refused = format!("http://{}/x", resil_tests::refused_addr());
    let err = client.post(&refused).body("x").send().await.unwrap_err();
    assert_eq!(
        err.kind(),
        resil_tokio::ErrorKind::Transport(resil_core::TransportErrorKind::Connect),
        "{err}"
    );
    assert_eq!(err.attempts(), 4);
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_through_reqwest_is_an_error_that_says_so() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/short", resil_tests::truncated_body());
    let client = Client::builder()
        .transport(resil_tokio::ReqwestTransport::new(reqwest::Client::new()))
        .policy(quick())
        .build()
        .unwrap();
    use resil_tokio::ResponseExt;
    let response = client.get(&server.url("/short")).send().await.unwrap();
    let err = response.text().await.unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body, "{err}");
    assert!(
        format!("{err:#}").contains("ended before its whole body arrived"),
        "{err}"
    );
}

#[cfg(feature = "json")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/j", vec![Reply::body(200, r#"{"id":7}"#)]);
    let client = Client::builder().policy(quick()).build().unwrap();
    use resil_tokio::ResponseExt;
    let value: serde_json::Value = client
        .put(&server.url("/j"))
        .json(&serde_json::json!({"name": "resil"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(value["id"], 7);
    let r = &server.requests()[0];
    assert_eq!(r.body, br#"{"name":"resil"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));

    server.script("/bad", vec![Reply::body(200, "not json")]);
    let response = client.get(&server.url("/bad")).send().await.unwrap();
    let err = response.json::<serde_json::Value>().await.unwrap_err();
    resil_tests::assert_decode_error(&err, "expected");

    server.script("/latin1", resil_tests::latin1_body());
    let response = client.get(&server.url("/latin1")).send().await.unwrap();
    let err = response.text().await.unwrap_err();
    resil_tests::assert_decode_error(&err, "incomplete utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_settings_apply() {
    let env = resil_http::EnvConfig::from_lookup(|name| match name {
        "RESIL_MAX_RETRIES" => Some("1".into()),
        "RESIL_ATTEMPT_TIMEOUT" => Some("2s".into()),
        _ => None,
    })
    .unwrap();
    let client = Client::builder().apply_env(env).build().unwrap();
    assert_eq!(client.policy().max_attempts(), 2);
    assert_eq!(client.policy().attempt_timeout(), Duration::from_secs(2));
}
