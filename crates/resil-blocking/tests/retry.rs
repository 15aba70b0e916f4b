//! resil-blocking's retries against servers on 127.0.0.1 that misbehave on purpose: the
//! scenario table, Retry-After, idempotency keys and which requests may be sent again.
//! Backoff and Retry-After waits run on a manual clock (no real sleeping).

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use common::{ManualClock, builder};
use resil_blocking::{Client, Clock, ErrorKind};
use resil_core::{Jitter, RetryPolicy, UnixTime};
use resil_tests::{Reply, TestServer, Transcript, scenarios, shared_load};

#[test]
fn scenario_table_through_the_blocking_client() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let transcript = Arc::new(Transcript::default());
        let client = builder(&ManualClock::new())
            .policy(scenario.policy())
            .latency_sketch(resil_tests::open_sketch())
            .hooks(transcript.clone())
            .build()
            .unwrap();
        let mut request = client.request(scenario.http_method(), &url);
        for (name, value) in &scenario.headers {
            request = request.header(name, value);
        }
        scenario.check("blocking", &request.send(), &server, &transcript);
    }
}

#[test]
fn retry_after_seconds_is_waited_in_full() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/ra",
        vec![
            Reply::with_header(503, "retry-after", "1"),
            Reply::status(200),
        ],
    );
    let clock = ManualClock::new();
    let client = builder(&clock).build().unwrap();
    let start = clock.now();
    let response = client.get(&server.url("/ra")).send().unwrap();
    assert_eq!(response.status(), 200);
    let first = server.requests()[0].at;
    let gap = server.requests()[1].at - first + clock.slept();
    assert!(
        gap >= Duration::from_secs(1),
        "second attempt after {gap:?}"
    );
    assert!(clock.now() - start >= Duration::from_secs(1));
    assert_eq!(client.stats().retry_after_honoured, 1);
}

#[test]
fn retry_after_http_date_is_waited_until() {
    let _load = shared_load();
    let server = TestServer::start();
    let clock = ManualClock::new();
    // Three seconds after the clock's current wall time, as an IMF-fixdate.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(clock.wall().0 + 3);
    let date = httpdate_fmt(at);
    server.script(
        "/date",
        vec![
            Reply::with_header(429, "retry-after", &date),
            Reply::status(200),
        ],
    );
    let roomy = RetryPolicy::builder()
        .jitter(Jitter::None)
        .retry_after_spread(0.0)
        .total_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let client = builder(&clock).policy(roomy).build().unwrap();
    assert_eq!(
        client.get(&server.url("/date")).send().unwrap().status(),
        200
    );
    // Whole seconds: at least 2 s remain of the 3 (the current second may be part gone).
    assert!(
        clock.slept() >= Duration::from_secs(2),
        "{:?}",
        clock.slept()
    );
    assert!(
        clock.slept() <= Duration::from_secs(3),
        "{:?}",
        clock.slept()
    );
}

fn httpdate_fmt(t: std::time::SystemTime) -> String {
    // A tiny IMF-fixdate formatter, checked against resil-core's parser below.
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = format!(
        "{weekday}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        months[(month - 1) as usize]
    );
    assert_eq!(
        resil_core::parse_http_date(text.as_bytes()),
        Some(UnixTime(secs))
    );
    text
}

#[test]
fn idempotency_key_is_sent_unchanged_on_every_attempt() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/pay",
        vec![Reply::status(503), Reply::status(503), Reply::status(201)],
    );
    let client = builder(&ManualClock::new())
        .generate_request_ids(true)
        .build()
        .unwrap();
    let response = client
        .post(&server.url("/pay"))
        .header("idempotency-key", "order-17")
        .body("amount=5")
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.header("idempotency-key"), Some("order-17"));
        assert_eq!(r.body, b"amount=5", "the body is replayed in full");
    }
    let ids: Vec<_> = requests
        .iter()
        .map(|r| r.header("x-request-id").unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.len() == 32),
        "{ids:?}"
    );
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
    let err = client.post(listener.url()).body("x").send().unwrap_err();
    resil_tests::assert_connect_hang_retried(&err);
}

#[test]
fn streamed_body_is_never_replayed() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/upload", vec![Reply::status(503), Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client
        .put(&server.url("/upload"))
        .body_reader(std::io::Cursor::new(b"stream".to_vec()))
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyNotReplayable);
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.hits("/upload"), 1);
    let mut body = String::new();
    err.into_response()
        .unwrap()
        .body_mut()
        .read_to_string(&mut body)
        .unwrap();
}

#[test]
fn per_request_policy_override() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/once", vec![Reply::status(503)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let once = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let err = client
        .get(&server.url("/once"))
        .policy(once.clone())
        .send()
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    let mut request = http::Request::get(server.url("/once")).body(()).unwrap();
    request.extensions_mut().insert(once);
    assert_eq!(client.execute(request).unwrap_err().attempts(), 1);
    assert_eq!(server.hits("/once"), 2);
}
