//! resil-tokio against servers on 127.0.0.1 that misbehave on purpose. Real sockets need
//! real time here: tokio's paused clock auto-advances while a task waits on a socket, which
//! would fire attempt deadlines early. Waits stay short (5 ms backoffs, 80 ms timeouts).
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use resil_core::{CircuitBreaker, RetryBudget, TripCondition};
use resil_tests::{
    Reply, TestServer, Transcript, assert_took, dripping_body, error_body_policy,
    error_body_replies, scenario_policy, scenarios, shared_load, stalled_503_then_ok,
};
use resil_tokio::{Backoff, Client, ResilLayer, ResponseExt, RetryPolicy};
use tower_layer::Layer;
use tower_service::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_table_through_the_tokio_client_matches_the_blocking_transcripts() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let transcript = Arc::new(Transcript::default());
        let client = Client::builder()
            .policy(scenario_policy())
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

/// A body read that began at `start` with an 80 ms attempt budget failed at its deadline.
fn assert_body_ended_at_the_deadline(start: std::time::Instant, err: &resil_tokio::Error) {
    assert_took(start, Duration::from_millis(75), Duration::from_millis(700));
    assert_eq!(err.kind(), resil_tokio::ErrorKind::Body, "{err}");
    assert!(format!("{err:#}").contains("deadline"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_body_that_stalls_ends_at_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/drip", dripping_body());
    let client = Client::new().unwrap();
    let start = std::time::Instant::now();
    let response = client
        .get(&server.url("/drip"))
        .timeout(Duration::from_millis(80))
        .send()
        .await
        .unwrap();
    let err = response.text().await.unwrap_err();
    assert_body_ended_at_the_deadline(start, &err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_response_whose_body_stalls_is_given_up_at_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/r", stalled_503_then_ok());
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(5)))
        .attempt_timeout(Some(Duration::from_millis(80)))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).build().unwrap();
    let start = std::time::Instant::now();
    let response = client.get(&server.url("/r")).send().await.unwrap();
    // The 503's body is drained before the retry; without its deadline that drain would
    // wait for the server's 3 s.
    assert_took(start, Duration::ZERO, Duration::from_secs(1));
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(server.hits("/r"), 2);
}

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
async fn redirects_are_not_followed_so_credentials_stay_home() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landing", vec![Reply::status(200)]);
    let origin = TestServer::start();
    origin.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landing"))],
    );
    let client = Client::builder().build().unwrap();
    let response = client
        .get(&origin.url("/go"))
        .header("authorization", "Bearer secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert!(other.requests().is_empty());
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

fn plain_hyper() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>()
}

fn empty_get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap()
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
    let policy = RetryPolicy::builder()
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
async fn a_wrong_content_length_or_a_second_host_is_refused_before_anything_is_sent() {
    resil_tests::check_framing_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn a_post_put_or_patch_without_a_body_declares_content_length_zero() {
    // hyper-util alone sends them with no length at all.
    resil_tests::check_empty_bodies_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn a_response_head_past_the_limit_is_refused_as_malformed() {
    // hyper alone reads 200 KiB and more.
    let client = Client::new().unwrap();
    resil_tests::check_response_head_limit_through(&client).await;
}

#[tokio::test]
async fn a_version_the_transport_cannot_send_is_refused_before_the_attempt() {
    // hyper-util alone fails each as an attempt that reached nobody.
    resil_tests::check_versions_through(&Client::new().unwrap()).await;
}

#[tokio::test]
async fn a_breaker_per_origin_leaves_the_other_backends_alone() {
    resil_tests::check_breaker_scope_through(|b: resil_tokio::ClientBuilder| b).await;
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_authorization() {
    // hyper-util alone drops them.
    resil_tests::check_url_credentials_through(&Client::new().unwrap()).await;
    // The tower layer around it sends them too.
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let mut service = ResilLayer::new(RetryPolicy::default()).layer(plain_hyper());
    let url = resil_tests::url_with_credentials(&server, "/creds");
    service.call(empty_get(&url)).await.unwrap();
    resil_tests::assert_url_credentials_sent_as_basic(&server, 1);
}

/// Run by CI without features (`cargo test -p resil-tokio --test loopback rustls_feature`).
#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn an_https_url_without_the_rustls_feature_fails_at_once_and_says_why() {
    let client = Client::builder().build().unwrap();
    let error = client.get("https://127.0.0.1:9/").send().await.unwrap_err();
    resil_tests::assert_refused_setting(&error, "an https URL needs resil-tokio's `rustls`");
    assert_eq!(error.attempts(), 0, "{error}");
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

#[tokio::test]
async fn a_refused_connection_tells_each_cause_once() {
    let url = format!("http://{}/x", resil_tests::refused_addr());
    let client = Client::builder().max_retries(0).build().unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("refused"), "{line}");
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
#[tokio::test]
async fn scratch_huge() {
    let server = TestServer::start();
    let client = Client::builder().build().unwrap();
    for kb in [60usize, 80, 200, 500] {
        let path = format!("/h{kb}");
        server.script(&path, vec![Reply::HugeHead(kb * 1024)]);
        let r = client.get(&server.url(&path)).send().await;
        eprintln!(
            "TOKIO {kb} {:?}",
            r.map(|r| r.status()).map_err(|e| format!("{e:#}"))
        );
    }
}
