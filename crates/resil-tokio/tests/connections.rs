//! resil-tokio's connections: ten thousand calls under the per-host cap, a call waiting for a
//! capped connection, HTTP/2 streams over one connection, and idle connections closed on time.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resil_core::{CircuitBreaker, RetryBudget, TripCondition};
use resil_tests::{Reply, TestServer, assert_took, scenario_policy, shared_load};
use resil_tokio::{Backoff, Client, ResponseExt, RetryPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_over_at_most_64_connections_are_all_accounted_for() {
    let _alone = resil_tests::exclusive_load();
    let server = TestServer::start();
    server.handle("/load", |_, n| {
        if n % 5 == 0 {
            Reply::status(503)
        } else {
            Reply::body(200, "ok")
        }
    });
    let breaker = Arc::new(Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(50))
            .build()
            .unwrap(),
    ));
    let budget = Arc::new(Mutex::new(RetryBudget::default()));
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .attempt_timeout(Some(Duration::from_secs(20)))
        .total_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let client = Client::builder()
        .policy(policy)
        .breaker(breaker)
        .budget(budget)
        .pool(64, Duration::from_secs(60))
        .max_connections_per_host(64)
        .build()
        .unwrap();
    // All 10,000 in flight at once: the cap, not the caller, keeps connections at 64.
    let url = server.url("/load");
    let mut tasks = Vec::new();
    for _ in 0..10_000 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            match client.get(&url).send().await {
                Ok(r) => r.text().await.is_ok(),
                Err(_) => false,
            }
        }));
    }
    let mut ok = 0u64;
    for t in tasks {
        ok += u64::from(t.await.unwrap());
    }
    let stats = client.stats();
    assert_eq!(stats.requests, 10_000);
    assert_eq!(stats.successes, ok);
    assert_eq!(stats.successes + stats.failures, 10_000);
    assert_eq!(stats.attempts, server.hits("/load") as u64);
    assert_eq!(stats.attempts, 10_000 + stats.total_retries());
    // Peak, not total: now and then hyper-util's pool hands an idle connection to a request
    // whose own connect wins the race in the same instant, and drops it (CI saw 65 in all);
    // the cap then lets a new connection replace it.
    let peak = server.peak_connections_in_use();
    assert!(
        (2..=64).contains(&peak),
        "{peak} connections in use at once ({} in all)",
        server.connections()
    );
    assert!(ok >= 9_000, "{ok} succeeded: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_capped_connection_keeps_its_deadline_then_reuses_it() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![Reply::Drip {
            body: b"slow".to_vec(),
            delay: Duration::from_millis(25),
        }],
    );
    server.script("/ok", vec![Reply::body(200, "ok")]);
    let client = Client::builder()
        .policy(RetryPolicy::builder().max_attempts(1).build().unwrap())
        .max_connections_per_host(1)
        .build()
        .unwrap();
    // The only connection is busy reading a body for ~100 ms.
    let slow = client.get(&server.url("/slow")).send().await.unwrap();
    let reading = tokio::spawn(slow.text());
    let start = std::time::Instant::now();
    let err = client
        .get(&server.url("/ok"))
        .timeout(Duration::from_millis(50))
        .send()
        .await
        .unwrap_err();
    assert_took(start, Duration::from_millis(45), Duration::from_millis(600));
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Timeout, "{err}");
    assert_eq!(reading.await.unwrap().unwrap(), "slow");
    // The freed connection serves the next call; no second one was ever opened.
    let text = client.get(&server.url("/ok")).send().await.unwrap().text();
    assert_eq!(text.await.unwrap(), "ok");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.hits("/ok"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_retries_over_one_connection() {
    let _load = shared_load();
    let server = resil_tests::H2cServer::start(vec![503, 503]);
    let client = Client::builder()
        .policy(scenario_policy())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client.get(&server.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(server.requests(), 3);
    assert_eq!(server.connections(), 1, "h2 streams share one connection");
}

#[tokio::test]
async fn an_idle_pooled_connection_is_closed_once_the_idle_timeout_passes() {
    // hyper-util applies its idle timeout only with a pool timer set; without one, an idle
    // connection stays open until it is next checked out.
    let _load = shared_load();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut socket, _) = listener.accept().unwrap();
        // Bounds a client that never closes, so the test fails instead of hanging.
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed before sending its request");
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        // What the client does next with the kept-alive connection: `Ok(0)` is its close.
        socket.read(&mut buf).map_err(|e| e.kind())
    });
    let client = Client::builder()
        .pool(4, Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client.get(&format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap(), "ok");
    // The pool's sweep runs on tokio's clock: move it past the idle timeout (in steps, as
    // each sweep sets the next one out from when it ran), letting the sweep run each time.
    tokio::time::pause();
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(5)).await;
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::resume();
    let next = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert_eq!(next, Ok(0), "the idle connection was not closed");
    drop(client);
}
