//! What resil-tokio puts on the wire: the host header, the framing of bodies, HTTP versions and
//! every method helper.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use resil_tests::{Reply, TestServer, scenario_policy, shared_load};
use resil_tokio::{Backoff, Client, RetryPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_names_its_host_once_and_a_callers_own_host_wins() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/h", vec![Reply::status(200)]);
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    client.get(&server.url("/h")).send().await.unwrap();
    let port = server.addr().port();
    let credentials = format!("http://user:pw@127.0.0.1:{port}/h");
    client.get(&credentials).send().await.unwrap();
    let own = client
        .get(&server.url("/h"))
        .header("host", "api.example")
        .send()
        .await;
    assert_eq!(own.unwrap().status(), 200);
    let hosts: Vec<_> = server.requests().iter().map(|r| r.values("host")).collect();
    let authority = format!("127.0.0.1:{port}");
    assert_eq!(
        hosts,
        [
            vec![authority.clone()],
            vec![authority],
            vec!["api.example".to_owned()]
        ]
    );
}

#[tokio::test]
async fn a_wrong_content_length_or_a_second_host_is_refused_before_anything_is_sent() {
    resil_tests::check_framing_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn a_post_put_or_patch_without_a_body_declares_content_length_zero() {
    // hyper-util alone sends them with no length at all.
    resil_tests::check_empty_bodies_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn a_version_the_transport_cannot_send_is_refused_before_the_attempt() {
    // hyper-util alone fails each as an attempt that reached nobody.
    resil_tests::check_versions_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn every_method_helper_sends_its_method_and_options_is_retried_as_idempotent() {
    let server = TestServer::start();
    server.script("/m", vec![Reply::status(503), Reply::status(204)]);
    // No backoff: a zero wait is never slept, so nothing waits on the real clock.
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::ZERO))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).build().unwrap();
    let response = client.options(&server.url("/m")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let helpers = [
        client.get(&server.url("/m")),
        client.post(&server.url("/m")),
        client.put(&server.url("/m")),
        client.patch(&server.url("/m")),
        client.delete(&server.url("/m")),
        client.head(&server.url("/m")),
    ];
    for request in helpers {
        request.send().await.unwrap();
    }
    assert_eq!(
        resil_tests::methods_seen(&server),
        resil_tests::HELPER_METHODS
    );
}
