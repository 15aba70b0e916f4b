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
