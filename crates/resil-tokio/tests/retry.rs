//! resil-tokio's retries against servers on 127.0.0.1 that misbehave on purpose: the scenario
//! table (the same transcripts as resil-blocking's), and idempotency keys and request ids
//! across attempts. Real sockets need real time here: tokio's paused clock auto-advances while
//! a task waits on a socket, which would fire attempt deadlines early. Waits stay short (5 ms
//! backoffs, 80 ms timeouts).
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use std::sync::Arc;

use resil_tests::{Reply, TestServer, Transcript, scenario_policy, scenarios, shared_load};
use resil_tokio::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_table_through_the_tokio_client_matches_the_blocking_transcripts() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let transcript = Arc::new(Transcript::default());
        let client = Client::builder()
            .policy(scenario.policy())
            .latency_sketch(resil_tests::open_sketch())
            .hooks(transcript.clone())
            .seed(7)
            .build()
            .unwrap();
        let mut request = client.request(scenario.http_method(), &url);
        for (name, value) in &scenario.headers {
            request = request.header(name, value);
        }
        let result = request.send().await;
        scenario.check("tokio", &result, &server, &transcript);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_and_request_id_are_stable_across_attempts() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/pay", vec![Reply::status(503), Reply::status(201)]);
    let client = Client::builder()
        .policy(scenario_policy())
        .generate_request_ids(true)
        .build()
        .unwrap();
    let response = client
        .post(&server.url("/pay"))
        .header("idempotency-key", "k-1")
        .body("amount=5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.header("idempotency-key") == Some("k-1") && r.body == b"amount=5")
    );
    assert_eq!(
        requests[0].header("x-request-id"),
        requests[1].header("x-request-id")
    );
    assert_eq!(requests[0].header("x-request-id").map(str::len), Some(32));
}
