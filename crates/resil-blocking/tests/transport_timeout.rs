//! The default transport enforces the attempt budget it is given.

use std::time::{Duration, Instant};

use resil_blocking::{BlockingTransport, RequestBody, UreqSettings, UreqTransport};
use resil_tests::{Reply, TestServer, shared_load};

/// A GET of `path` through `transport` with `budget`.
fn get(
    transport: &UreqTransport,
    server: &TestServer,
    path: &str,
    budget: Duration,
) -> Result<http::Response<resil_blocking::Body>, resil_blocking::TransportError> {
    let mut request = http::Request::new(RequestBody::Empty);
    *request.uri_mut() = server.url(path).parse().unwrap();
    transport.send(request, budget)
}

/// A GET of the stalling `/stall` with a 100 ms budget times out well within a second.
fn stall_times_out(transport: &UreqTransport, server: &TestServer) {
    let start = Instant::now();
    let err = get(transport, server, "/stall", Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), resil_core::ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
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
    let transport = UreqTransport::new(&UreqSettings::default());
    stall_times_out(&transport, &server);
}

#[test]
fn transport_budget_applies_on_a_reused_connection() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default());
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
fn a_shorter_budget_overrides_the_usual_attempt_timeout() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings {
        usual_attempt_timeout: Some(Duration::from_secs(10)),
        ..UreqSettings::default()
    });
    // Budgets at or just under the usual one take the agent's own deadline.
    for budget in [Duration::from_secs(10), Duration::from_millis(9_999)] {
        ok(&transport, &server, budget);
    }
    stall_times_out(&transport, &server);
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_per_request_timeout_holds_after_calls_with_the_usual_one() {
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
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}: {err}",
        start.elapsed()
    );
    assert_eq!(
        server.connections(),
        1,
        "the stall reused the pooled connection"
    );
}
