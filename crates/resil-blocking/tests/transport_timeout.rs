//! The default transport enforces the attempt budget it is given.

use std::time::{Duration, Instant};

use resil_blocking::{BlockingTransport, RequestBody, UreqSettings, UreqTransport};
use resil_tests::{Reply, TestServer, shared_load};

#[test]
fn transport_gives_up_when_its_budget_runs_out() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default());
    let mut request = http::Request::new(RequestBody::Empty);
    *request.uri_mut() = server.url("/stall").parse().unwrap();
    let start = Instant::now();
    let err = transport
        .send(request, Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(err.kind(), resil_core::ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn transport_budget_applies_on_a_reused_connection() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/stall", vec![Reply::Stall(Duration::from_secs(2))]);
    let transport = UreqTransport::new(&UreqSettings::default());
    let send = |path: &str, budget: Duration| {
        let mut request = http::Request::new(RequestBody::Empty);
        *request.uri_mut() = server.url(path).parse().unwrap();
        transport.send(request, budget)
    };
    for _ in 0..3 {
        let mut r = send("/ok", Duration::from_secs(10)).unwrap();
        std::io::copy(r.body_mut(), &mut std::io::sink()).unwrap();
    }
    assert_eq!(server.connections(), 1);
    let start = Instant::now();
    let err = send("/stall", Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), resil_core::ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
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
    let send = |path: &str, budget: Duration| {
        let mut request = http::Request::new(RequestBody::Empty);
        *request.uri_mut() = server.url(path).parse().unwrap();
        transport.send(request, budget)
    };
    // Budgets at or just under the usual one take the agent's own deadline.
    for budget in [Duration::from_secs(10), Duration::from_millis(9_999)] {
        let mut r = send("/ok", budget).unwrap();
        std::io::copy(r.body_mut(), &mut std::io::sink()).unwrap();
    }
    let start = Instant::now();
    let err = send("/stall", Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), resil_core::ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
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
