//! Calls through resil-tokio that fail before or without a usable response, and what their
//! errors say: URLs no call can reach, response heads past the limit (HTTP/1 and HTTP/2), an
//! https URL without the `rustls` feature, and refused connections.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use bytes::Bytes;
use resil_tests::{scenario_policy, shared_load};
use resil_tokio::Client;

#[tokio::test]
async fn a_request_built_whole_with_a_url_no_call_can_reach_is_refused_before_any_attempt() {
    let client = Client::builder().build().unwrap();
    for url in ["/relative", "ftp://127.0.0.1/x", "http://127.0.0.1:99999/"] {
        let request = http::Request::get(url).body(Bytes::new()).unwrap();
        let error = client.execute(request).await.unwrap_err();
        assert_eq!(
            error.kind(),
            resil_tokio::ErrorKind::InvalidUrl,
            "{url}: {error}"
        );
        assert_eq!(error.attempts(), 0, "{url}");
    }
    assert_eq!(client.stats().attempts, 0);
}

#[tokio::test]
async fn a_response_head_past_the_limit_is_refused_as_malformed() {
    // hyper alone reads 200 KiB and more.
    let client = Client::new().unwrap();
    resil_tests::check_response_head_limit_through(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_response_head_is_bounded_like_an_http1_one() {
    let _load = shared_load();
    let server = resil_tests::H2cServer::start(vec![]);
    let client = Client::builder()
        .policy(scenario_policy())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let padded = |bytes: usize| {
        let request = client.get(&server.url("/x"));
        request
            .header(resil_tests::PAD_RESPONSE, &bytes.to_string())
            .send()
    };
    // hyper alone refuses an HTTP/2 header list past 16 KiB.
    let response = padded(60 * 1024).await.unwrap();
    assert_eq!(response.headers()["x-padding"].len(), 60 * 1024);
    let err = padded(200 * 1024).await.map(|r| r.status()).unwrap_err();
    resil_tests::assert_head_refused(&err);
    // With prior knowledge a request may ask for HTTP/2 over plain TCP.
    let mut request = http::Request::get(server.url("/x")).body(()).unwrap();
    *request.version_mut() = http::Version::HTTP_2;
    assert_eq!(client.execute(request).await.unwrap().status(), 200);
}

/// Run by CI without features (`cargo test -p resil-tokio --test errors rustls_feature`).
#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn an_https_url_without_the_rustls_feature_fails_at_once_and_says_why() {
    let client = Client::builder().build().unwrap();
    let error = client.get("https://127.0.0.1:9/").send().await.unwrap_err();
    resil_tests::assert_refused_setting(&error, "an https URL needs resil-tokio's `rustls`");
    assert_eq!(error.attempts(), 0, "{error}");
}

#[tokio::test]
async fn a_refused_connection_tells_each_cause_once() {
    let url = format!("http://{}/x", resil_tests::refused_addr());
    let client = Client::builder().max_retries(0).build().unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("refused"), "{line}");
}
