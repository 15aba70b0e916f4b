//! Response bodies through resil-tokio: over the limit, truncated, and read in part by
//! `retry_if` before the caller reads them whole.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use resil_tests::{
    Reply, TestServer, error_body_policy, error_body_replies, scenario_policy, shared_load,
};
use resil_tokio::{Client, ResponseExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_and_truncation_are_errors() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/big", vec![Reply::body(200, &"x".repeat(4096))]);
    server.script("/short", resil_tests::truncated_body());
    let client = Client::builder()
        .policy(scenario_policy())
        .body_limit(1024)
        .build()
        .unwrap();
    let err = client
        .get(&server.url("/big"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body);
    assert!(format!("{err:#}").contains("1024-byte limit"), "{err}");
    let err = client
        .get(&server.url("/short"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body, "{err}");
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(
        line.contains("ended before its whole body arrived"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_if_sees_a_body_prefix_and_the_caller_still_reads_the_whole_body() {
    let _load = shared_load();
    let server = TestServer::start();
    let long_ok = format!("ok {}", "x".repeat(70_000));
    server.script("/graphql", error_body_replies(&long_ok));
    let policy = error_body_policy();
    let client = Client::builder().policy(policy).build().unwrap();
    let text = client
        .get(&server.url("/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.len(), long_ok.len());
    assert_eq!(text, long_ok, "the prefix read early is put back");
    assert_eq!(server.hits("/graphql"), 2);
    assert_eq!(client.stats().total_retries(), 1);
}
