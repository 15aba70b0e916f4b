//! The default transport enforces the attempt budget it is given.

use std::time::{Duration, Instant};

use resil_blocking::{BlockingTransport, RequestBody, UreqSettings, UreqTransport};
use resil_tests::{Reply, TestServer, assert_took, shared_load};

type Sent = Result<http::Response<resil_blocking::Body>, resil_blocking::TransportError>;

/// A GET of `url` through `transport` with `budget`.
fn get_url(transport: &UreqTransport, url: &str, budget: Duration) -> Sent {
    let mut request = http::Request::new(RequestBody::Empty);
    *request.uri_mut() = url.parse().unwrap();
    transport.send(request, budget)
}

/// A GET of `path` through `transport` with `budget`.
fn get(transport: &UreqTransport, server: &TestServer, path: &str, budget: Duration) -> Sent {
    get_url(transport, &server.url(path), budget)
}

/// A GET of the stalling `/stall` with a 100 ms budget times out well within a second.
fn stall_times_out(transport: &UreqTransport, server: &TestServer) {
    let start = Instant::now();
    let err = get(transport, server, "/stall", Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), resil_core::TransportErrorKind::Timeout, "{err}");
    assert_took(start, Duration::from_millis(90), Duration::from_secs(1));
}

/// A GET of `/ok`, body read whole.
fn ok(transport: &UreqTransport, server: &TestServer, budget: Duration) {
    let mut r = get(transport, server, "/ok", budget).unwrap();
    std::io::copy(r.body_mut(), &mut std::io::sink()).unwrap();
}

#[test]
fn transport_gives_up_when_its_budget_runs_out() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    stall_times_out(&transport, &server);
}

#[test]
fn transport_budget_applies_on_a_reused_connection() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    for _ in 0..3 {
        ok(&transport, &server, Duration::from_secs(10));
    }
    assert_eq!(server.connections(), 1);
    stall_times_out(&transport, &server);
    assert_eq!(
        server.connections(),
        1,
        "the stalled request went over the pooled connection"
    );
}

#[test]
fn budgets_differ_from_attempt_to_attempt_on_one_connection() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    ok(&transport, &server, Duration::from_secs(10));
    stall_times_out(&transport, &server);
    // The stall's short budget does not stay behind on the thread or the next connection.
    let start = Instant::now();
    ok(&transport, &server, Duration::from_secs(10));
    assert_took(start, Duration::ZERO, Duration::from_secs(1));
}

#[test]
fn the_budget_covers_reading_the_body() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/drip", resil_tests::dripping_body());
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    let start = Instant::now();
    let mut response = get(&transport, &server, "/drip", Duration::from_millis(80)).unwrap();
    // Read on another thread: the deadline travels with the body, not the thread.
    let read = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(response.body_mut(), &mut out).map(|_| out.len())
    })
    .join()
    .unwrap();
    let err = read.unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
    assert_took(start, Duration::from_millis(75), Duration::from_secs(1));
}

#[test]
fn a_connect_that_hangs_ends_at_the_attempt_deadline() {
    let _load = shared_load();
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    let Some(listener) = resil_tests::UnansweredListener::for_test() else {
        return;
    };
    let start = Instant::now();
    let err = get_url(&transport, listener.url(), Duration::from_millis(80)).unwrap_err();
    // Nothing was sent, so the retry policy may retry it whatever the method.
    assert_eq!(
        err.kind(),
        resil_core::TransportErrorKind::ConnectTimeout,
        "{err}"
    );
    assert_took(start, Duration::from_millis(75), Duration::from_secs(2));
}

#[test]
fn a_per_request_timeout_holds_after_calls_with_the_default_one() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let client = resil_blocking::Client::new();
    for _ in 0..3 {
        let r = client.get(&server.url("/ok")).send().unwrap();
        resil_blocking::ResponseExt::bytes(r).unwrap();
    }
    let start = Instant::now();
    let err = client
        .get(&server.url("/stall"))
        .timeout(Duration::from_millis(100))
        .send()
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_took(start, Duration::from_millis(90), Duration::from_secs(1));
    assert_eq!(
        server.connections(),
        1,
        "the stall reused the pooled connection"
    );
}

/// A host whose 64-character label the system resolver rejects before asking any server.
fn unresolvable_url() -> String {
    format!("http://{}.invalid/", "a".repeat(64))
}

/// A failed name lookup is a DNS error (nothing was sent), not an unclassified one, so the
/// policy may retry it for any method.
#[test]
fn a_failed_name_lookup_is_a_dns_error() {
    let transport = UreqTransport::new(&UreqSettings::default()).unwrap();
    let err = get_url(&transport, &unresolvable_url(), Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), resil_core::TransportErrorKind::Dns, "{err}");
    assert!(format!("{err:#}").contains("name lookup failed"), "{err}");

    let client = resil_blocking::Client::builder()
        .policy(
            resil_blocking::RetryPolicy::builder()
                .max_retries(1)
                .backoff(resil_blocking::Backoff::Constant(Duration::ZERO))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = client
        .post(&unresolvable_url())
        .body("x")
        .send()
        .unwrap_err();
    assert_eq!(
        err.attempts(),
        2,
        "a POST that was never sent is retried: {err}"
    );
    assert_eq!(
        err.kind(),
        resil_blocking::ErrorKind::Transport(resil_core::TransportErrorKind::Dns),
        "{err}"
    );
}
