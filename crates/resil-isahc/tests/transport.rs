//! What is specific to the isahc transport, on real sockets: streamed request bodies through
//! curl, response bodies larger than one read, limits and truncation, redirects, the 401
//! refresh, a call dropped mid-attempt, and the per-host connection cap. The retry loop
//! itself is the one every async driver shares (and the scenario table checks it under three
//! executors).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::{block_on, zip};
use resil_isahc::{Client, ErrorKind, ResponseExt};
use resil_tests::{
    Reply, TestServer, assert_took, dripping_body, error_body_policy, error_body_replies,
    scenario_policy, shared_load, stalled_503_then_ok,
};

/// GETs `url` and reads the whole body as text.
fn body_of(client: &Client, url: &str) -> Result<String, resil_isahc::Error> {
    block_on(async { client.get(url).send().await?.text().await })
}

#[test]
fn streamed_body_reaches_the_server_whole_and_is_never_replayed() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/upload", vec![Reply::status(503), Reply::status(200)]);
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..64)
        .map(|i| {
            Ok(http_body::Frame::data(Bytes::from(vec![
                b'a' + (i % 26)
                    as u8;
                1000
            ])))
        })
        .collect();
    let body = http_body_util::StreamBody::new(futures_lite::stream::iter(chunks));
    let response = block_on(client.post(&server.url("/upload")).body_stream(body).send());
    // The stream was used up by the first attempt: its 503 is the answer.
    let err = response.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert_eq!(err.attempts(), 1, "{err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "a streamed body is sent once");
    assert_eq!(requests[0].body.len(), 64_000);
    assert!(requests[0].body[..1000].iter().all(|&b| b == b'a'));
    assert!(
        requests[0].body[63_000..]
            .iter()
            .all(|&b| b == b'a' + 63 % 26)
    );
}

#[test]
fn large_bodies_arrive_whole_and_limits_and_truncation_are_errors() {
    let _load = shared_load();
    let server = TestServer::start();
    let big: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    server.script("/big", vec![Reply::body(200, &big)]);
    server.script("/limited", vec![Reply::body(200, &big)]);
    server.script("/short", resil_tests::truncated_body());
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    let text = body_of(&client, &server.url("/big")).unwrap();
    assert_eq!(text, big, "a body of many reads arrives whole and in order");

    let limited = Client::builder()
        .policy(scenario_policy())
        .body_limit(100_000)
        .build()
        .unwrap();
    let err = body_of(&limited, &server.url("/limited")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body);
    assert!(format!("{err:#}").contains("100000-byte limit"), "{err}");

    let err = body_of(&client, &server.url("/short")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body, "{err}");
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(
        line.contains("ended before its whole body arrived"),
        "{line}"
    );
}

#[test]
fn an_auth_providers_credentials_stay_home_when_a_redirect_leaves_the_origin() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landing", vec![Reply::status(200)]);
    let origin = TestServer::start();
    origin.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landing"))],
    );
    let token = resil_isahc::BearerToken::new("secret", || async {
        Ok::<_, resil_isahc::AuthError>("fresh".to_owned())
    });
    let client = Client::builder().auth(token).build().unwrap();
    let response = block_on(client.get(&origin.url("/go")).send()).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer secret")
    );
    assert_eq!(other.requests()[0].header("authorization"), None);
}

#[test]
fn unauthorized_refreshes_the_token_once_and_retries_once() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/me",
        vec![Reply::status(401), Reply::status(401), Reply::status(200)],
    );
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    let client = Client::builder()
        .policy(scenario_policy())
        .auth(resil_isahc::BearerToken::new("old", move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, resil_isahc::AuthError>(format!("new-{n}"))
            }
        }))
        .build()
        .unwrap();
    let response = block_on(client.get(&server.url("/me")).send()).unwrap();
    // One refresh, one retry with the new token; the second 401 is the answer.
    assert_eq!(response.status(), 401);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let tokens: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("-").to_owned())
        .collect();
    assert_eq!(tokens, ["Bearer old", "Bearer new-0"]);
}

#[test]
fn a_call_dropped_mid_attempt_leaves_the_breaker_usable() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![Reply::Stall(Duration::from_secs(2)), Reply::status(200)],
    );
    // One failure would open this breaker: a dropped call counted as one would show.
    let breaker = resil_core::CircuitBreaker::builder()
        .trip(resil_core::TripCondition::ConsecutiveFailures(1))
        .build()
        .unwrap();
    // The attempt must still be running when the call is dropped at 50 ms, even on a loaded
    // machine: a timeout first would count as the failure that opens the breaker.
    let policy = resil_isahc::RetryPolicy::builder()
        .attempt_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let client = Client::builder()
        .policy(policy)
        .breaker(std::sync::Arc::new(std::sync::Mutex::new(breaker)))
        .build()
        .unwrap();
    block_on(async {
        let call = client.get(&server.url("/slow")).send();
        let timer = async {
            async_io::Timer::after(Duration::from_millis(50)).await;
            None
        };
        let raced = futures_lite::future::or(async { Some(call.await) }, timer).await;
        assert!(raced.is_none(), "the stalled call finished: {raced:?}");
    });
    let breaker = client.breaker().unwrap().lock().unwrap().state();
    assert_eq!(breaker, resil_core::BreakerState::Closed);
    let response = block_on(client.get(&server.url("/slow")).send()).unwrap();
    assert_eq!(response.status(), 200);
    let stats = client.stats();
    assert_eq!(stats.successes, 1, "{stats:?}");
    assert_eq!(stats.failures, 0, "a dropped call is neither: {stats:?}");
}

#[test]
fn retry_if_sees_a_body_prefix_and_the_caller_still_reads_the_whole_body() {
    let _load = shared_load();
    let server = TestServer::start();
    let long_ok = format!("ok {}", "x".repeat(70_000));
    server.script("/graphql", error_body_replies(&long_ok));
    let policy = error_body_policy();
    let client = Client::builder().policy(policy).build().unwrap();
    let text = body_of(&client, &server.url("/graphql")).unwrap();
    assert_eq!(text, long_ok, "the prefix read early is put back");
    assert_eq!(server.hits("/graphql"), 2);
}

#[test]
fn http2_prior_knowledge_retries_over_one_connection() {
    let _load = shared_load();
    let server = resil_tests::H2cServer::start(vec![503, 503]);
    let client = Client::builder()
        .policy(scenario_policy())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = block_on(client.get(&server.url("/x")).send()).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(server.requests(), 3);
    assert_eq!(server.connections(), 1, "h2 streams share one connection");
}

#[test]
fn a_bytes_body_is_sent_whole_on_every_attempt() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/orders", vec![Reply::status(503), Reply::status(201)]);
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    let body = "x".repeat(10_000);
    let response = block_on(
        client
            .post(&server.url("/orders"))
            .header("idempotency-key", "k-1")
            .body(body.clone())
            .send(),
    )
    .unwrap();
    assert_eq!(response.status(), 201);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.body, body.as_bytes());
        assert_eq!(r.header("content-length"), Some("10000"));
    }
}

#[test]
fn concurrent_calls_share_the_capped_connection() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/slow", |_, _| Reply::Drip {
        body: b"slow".to_vec(),
        delay: Duration::from_millis(5),
    });
    let client = Client::builder()
        .max_connections_per_host(1)
        .build()
        .unwrap();
    let url = server.url("/slow");
    let get = || async { client.get(&url).send().await?.text().await };
    let ((a, b), (c, d)) = block_on(zip(zip(get(), get()), zip(get(), get())));
    for body in [a, b, c, d] {
        assert_eq!(body.unwrap(), "slow");
    }
    assert_eq!(server.hits("/slow"), 4);
    assert_eq!(
        server.connections(),
        1,
        "curl queued the calls on one connection"
    );
}

#[test]
fn curl_ends_a_stalled_body_at_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/drip", dripping_body());
    server.script("/r", stalled_503_then_ok());
    let policy = resil_isahc::RetryPolicy::builder()
        .backoff(resil_isahc::Backoff::Constant(Duration::from_millis(5)))
        .attempt_timeout(Some(Duration::from_millis(80)))
        .build()
        .unwrap();
    let client = Client::builder().policy(policy).build().unwrap();
    let start = std::time::Instant::now();
    let err = body_of(&client, &server.url("/drip")).unwrap_err();
    assert_took(start, Duration::from_millis(75), Duration::from_millis(700));
    assert_eq!(err.kind(), ErrorKind::Body, "{err}");
    // A 503 whose body stalls: isahc hands over a response only with its first body bytes,
    // so this attempt ends as timed out (the other drivers see the 503 and give up draining
    // its body at the same deadline); either way the retry follows at once.
    let start = std::time::Instant::now();
    assert_eq!(body_of(&client, &server.url("/r")).unwrap(), "ok");
    assert_took(start, Duration::ZERO, Duration::from_secs(1));
}

#[test]
fn a_token_refresh_that_never_ends_is_cut_at_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/me", vec![Reply::status(401)]);
    let policy = resil_isahc::RetryPolicy::builder()
        .attempt_timeout(Some(Duration::from_millis(80)))
        .build()
        .unwrap();
    let client = Client::builder()
        .policy(policy)
        .auth(resil_isahc::BearerToken::new("old", || {
            futures_lite::future::pending::<Result<String, resil_isahc::AuthError>>()
        }))
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    // The refresh is abandoned at the deadline and the 401 is the answer (a guard turns a
    // hang into a failure).
    let call = async { Some(client.get(&server.url("/me")).send().await) };
    let guard = async {
        async_io::Timer::after(Duration::from_secs(5)).await;
        None
    };
    let response = block_on(futures_lite::future::or(call, guard))
        .expect("the call outlived its deadline")
        .unwrap();
    assert_took(start, Duration::from_millis(60), Duration::from_millis(700));
    assert_eq!(response.status(), 401);
    assert_eq!(server.hits("/me"), 1);
}

#[test]
fn a_post_whose_connect_hangs_is_retried_as_a_connect_timeout() {
    let _load = shared_load();
    let Some(listener) = resil_tests::UnansweredListener::for_test() else {
        return;
    };
    let client = Client::builder()
        .policy(resil_tests::connect_hang_policy())
        .build()
        .unwrap();
    let err = block_on(client.post(listener.url()).body("x").send()).unwrap_err();
    // curl knows no local address until it has connected: nothing was sent.
    resil_tests::assert_connect_hang_retried(&err);
}

#[test]
fn a_connect_timeout_of_duration_max_means_never_not_a_refused_request() {
    let _load = shared_load();
    let server = resil_tests::ok_twice();
    let client: Client = resil_tests::never_timing_out().build().unwrap();
    for _ in 0..2 {
        assert_eq!(body_of(&client, &server.url("/ok")).unwrap(), "ok");
    }
}

#[test]
fn compressed_bodies_arrive_decoded_and_one_that_does_not_decode_is_not_retried() {
    let server = TestServer::start();
    // "decoded by curl", gzipped.
    let gzipped: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 35\r\n\r\n\
        \x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x4b\x49\x4d\xce\x4f\x49\x4d\x51\x48\xaa\x54\
        \x48\x2e\x2d\xca\x01\x00\x2a\xf5\x4b\x02\x0f\x00\x00\x00";
    server.script("/gzip", vec![Reply::Raw(gzipped)]);
    let bad: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 5\r\n\r\nhello";
    server.script("/bad", vec![Reply::Raw(bad), Reply::status(200)]);
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    assert_eq!(
        body_of(&client, &server.url("/gzip")).unwrap(),
        "decoded by curl"
    );
    let asked = server.requests()[0].headers.clone();
    assert!(
        asked
            .iter()
            .any(|(name, value)| name == "accept-encoding" && value.contains("gzip")),
        "{asked:?}"
    );
    let err = body_of(&client, &server.url("/bad")).unwrap_err();
    assert_eq!(err.attempts(), 1, "{err:#}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_wrong_content_length_or_a_second_host_is_refused_before_anything_is_sent() {
    let _load = shared_load();
    block_on(resil_tests::check_framing_through(&Client::new().unwrap()));
}

#[test]
fn a_post_put_or_patch_without_a_body_declares_content_length_zero() {
    let _load = shared_load();
    // curl alone sends them with no length at all.
    block_on(resil_tests::check_empty_bodies_through(
        &Client::new().unwrap(),
    ));
}

#[test]
fn a_response_head_past_curls_limit_is_refused_as_malformed() {
    let _load = shared_load();
    // isahc alone calls it an unknown error.
    let client = Client::new().unwrap();
    block_on(resil_tests::check_response_head_limit_through(&client));
}

#[test]
fn a_version_the_transport_cannot_send_is_refused_before_the_attempt() {
    let _load = shared_load();
    // curl alone sends each as whatever it negotiates.
    block_on(resil_tests::check_versions_through(&Client::new().unwrap()));
}

#[test]
fn a_breaker_per_origin_leaves_the_other_backends_alone() {
    let _load = shared_load();
    block_on(resil_tests::check_breaker_scope_through(
        |b: resil_isahc::ClientBuilder| b,
    ));
}

#[test]
fn credentials_in_the_url_are_sent_as_basic_authorization() {
    let _load = shared_load();
    // isahc alone drops them.
    let client = Client::new().unwrap();
    block_on(resil_tests::check_url_credentials_through(&client));
}

#[test]
fn a_refused_connection_tells_each_cause_once() {
    let url = format!("http://{}/x", resil_tests::refused_addr());
    let client = Client::builder().max_retries(0).build().unwrap();
    let err = body_of(&client, &url).unwrap_err();
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn the_read_timeout_ends_a_stall_long_before_the_attempt_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    // Each stall is 2 s: the 10 s attempt timeout would wait it all out.
    server.script(
        "/part",
        vec![Reply::PartThenStall(b"some", Duration::from_secs(2))],
    );
    server.script(
        "/head",
        vec![Reply::HeadThenStall(200, Duration::from_secs(2))],
    );
    // 300 ms in all, but never 100 ms without a byte.
    server.script(
        "/drip",
        vec![Reply::Drip {
            body: b"0123456789".to_vec(),
            delay: Duration::from_millis(30),
        }],
    );
    let client = Client::builder()
        .max_retries(0)
        .attempt_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    // isahc hands over the head only with the first body bytes: "/head" is the head's wait.
    for (path, kind) in [("/part", ErrorKind::Body), ("/head", ErrorKind::Timeout)] {
        let start = std::time::Instant::now();
        let err = body_of(&client, &server.url(path)).unwrap_err();
        assert_took(
            start,
            Duration::from_millis(95),
            Duration::from_millis(1_500),
        );
        assert_eq!(err.kind(), kind, "{path}: {err:#}");
        assert!(
            std::error::Error::source(&err).is_some_and(|e| e.is::<resil_isahc::ReadTimedOut>()),
            "{path}: {err:#}"
        );
    }

    assert_eq!(
        body_of(&client, &server.url("/drip")).unwrap(),
        "0123456789"
    );
}

/// Adds a Latin-1 `Authorization` value, which `http` allows and curl cannot be handed.
struct Latin1Credentials;

impl resil_isahc::AuthProvider for Latin1Credentials {
    fn authorize(&self, headers: &mut http::HeaderMap) -> Result<(), resil_isahc::AuthError> {
        let value = http::HeaderValue::from_bytes(b"Basic caf\xe9")?;
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(())
    }
    fn refresh(&self) -> resil_isahc::BoxFuture<'_, Result<(), resil_isahc::AuthError>> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn a_header_curl_cannot_carry_is_refused_unsent_instead_of_panicking() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200)]);
    let latin1 = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let request = || {
        let mut request = http::Request::get(server.url("/x")).body(()).unwrap();
        request.headers_mut().insert("x-name", latin1.clone());
        request
    };
    // isahc itself panics on these (`expect` in its header conversion).
    let client = Client::builder().policy(scenario_policy()).build().unwrap();
    let err = block_on(client.execute(request())).unwrap_err();
    resil_tests::assert_refused_setting(&err, "header \"x-name\" has bytes outside visible ASCII");
    let with_credentials = Client::builder()
        .policy(scenario_policy())
        .auth(Latin1Credentials)
        .build()
        .unwrap();
    let err = block_on(with_credentials.get(&server.url("/x")).send()).unwrap_err();
    resil_tests::assert_refused_setting(&err, "header \"authorization\" has bytes outside");
    assert!(server.requests().is_empty(), "nothing was sent");

    // Sent to the transport directly, it is an error as well.
    let transport = resil_isahc::IsahcTransport::new(&Default::default()).unwrap();
    let sent = block_on(resil_isahc::AsyncTransport::send(
        &transport,
        request().map(Into::into),
    ));
    let err = sent.map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("curl cannot send"), "{err:#}");
    assert!(server.requests().is_empty());
}

/// Pins what the crate's docs say curl does to an untyped `POST` (and not to a `PUT`), so
/// they are corrected if curl or isahc changes.
#[test]
fn curl_gives_an_untyped_post_body_its_form_content_type() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200), Reply::status(200)]);
    let client = Client::builder().build().unwrap();
    block_on(client.post(&server.url("/x")).body("ab").send()).unwrap();
    block_on(client.put(&server.url("/x")).body("ab").send()).unwrap();
    let types: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| r.values("content-type"))
        .collect();
    let form = vec!["application/x-www-form-urlencoded".to_owned()];
    assert_eq!(types, [form, vec![]]);
}
