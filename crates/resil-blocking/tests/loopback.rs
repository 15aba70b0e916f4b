//! resil-blocking against servers on 127.0.0.1 that misbehave on purpose. Backoff, Retry-After
//! and breaker waits run on a manual clock (no real sleeping); socket timeouts are real and
//! short.

use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resil_blocking::{
    AuthError, AuthProvider, BearerToken, Client, ClientBuilder, Clock, ErrorKind, ResponseExt,
};
use resil_core::{
    Backoff, BreakerState, CircuitBreaker, Instant, Jitter, RetryPolicy, TripCondition, UnixTime,
};
use resil_http::EnvConfig;
use resil_tests::{
    Reply, TestServer, Transcript, error_body_policy, error_body_replies, exclusive_load,
    scenario_policy, scenarios, shared_load,
};

/// Real time plus whatever the client "slept": waits cost nothing, time still moves forward.
#[derive(Debug)]
struct ManualClock {
    jumped: AtomicU64,
    wall_origin: u64,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            jumped: AtomicU64::new(0),
            wall_origin: 1_700_000_000,
        })
    }

    fn slept(&self) -> Duration {
        Duration::from_nanos(self.jumped.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::now() + self.slept()
    }
    fn wall(&self) -> UnixTime {
        UnixTime(self.wall_origin + self.now().as_nanos() / 1_000_000_000)
    }
    fn sleep(&self, d: Duration) {
        self.jumped.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

fn builder(clock: &Arc<ManualClock>) -> ClientBuilder {
    Client::builder()
        .policy(scenario_policy())
        .clock(clock.clone())
        .seed(7)
}

#[test]
fn scenario_table_through_the_blocking_client() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let transcript = Arc::new(Transcript::default());
        let client = builder(&ManualClock::new())
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
fn a_caller_request_id_is_forwarded_and_a_default_client_adds_none() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/id", vec![Reply::status(500), Reply::status(200)]);
    server.script("/plain", vec![Reply::status(503), Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client
        .get(&server.url("/id"))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    client.get(&server.url("/plain")).send().unwrap();
    let ids = |path: &str| -> Vec<Option<String>> {
        server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.header("x-request-id").map(str::to_owned))
            .collect()
    };
    assert_eq!(
        ids("/id"),
        [Some("abc-123".to_owned()), Some("abc-123".to_owned())]
    );
    let plain = ids("/plain");
    assert_eq!(plain.len(), 2);
    assert!(
        plain.iter().all(Option::is_none),
        "an id nobody asked for was sent"
    );
}

#[test]
fn total_deadline_holds_across_stalled_attempts_and_sleeps() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/stall", vec![Reply::Stall(Duration::from_millis(400))]);
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(10)
        .backoff(Backoff::Constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .attempt_timeout(Some(Duration::from_millis(30)))
        .total_timeout(Some(Duration::from_millis(90)))
        .build()
        .unwrap();
    let client = builder(&clock).policy(policy).build().unwrap();
    let start = clock.now();
    let err = client.get(&server.url("/stall")).send().unwrap_err();
    let elapsed = clock.now() - start;
    assert!(
        matches!(err.kind(), ErrorKind::DeadlineExceeded | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.attempts() >= 2 && err.attempts() <= 3, "{err}");
    // The deadline is 90 ms; allow the last socket timeout to overshoot by scheduling slack.
    assert!(elapsed < Duration::from_millis(190), "{elapsed:?}");
}

#[test]
fn truncated_body_is_an_error_never_a_short_success() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/short",
        vec![Reply::Truncated {
            declared: 100,
            body: b"only forty bytes of the promised hundred".to_vec(),
        }],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    let response = client.get(&server.url("/short")).send().unwrap();
    let err = response.bytes().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body, "{err}");
    assert!(
        format!("{err:#}").contains("ended before its whole body arrived"),
        "{err}"
    );
}

#[test]
fn body_over_the_limit_is_an_error() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/big", vec![Reply::body(200, &"x".repeat(2048))]);
    server.script("/fits", vec![Reply::body(200, &"x".repeat(1024))]);
    let client = builder(&ManualClock::new())
        .body_limit(1024)
        .build()
        .unwrap();
    let err = client
        .get(&server.url("/big"))
        .send()
        .unwrap()
        .text()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body);
    assert!(format!("{err:#}").contains("1024-byte limit"), "{err}");
    assert_eq!(
        client
            .get(&server.url("/fits"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            .len(),
        1024
    );
}

#[test]
fn slow_drip_body_still_arrives_whole() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/drip",
        vec![Reply::Drip {
            body: b"drip".to_vec(),
            delay: Duration::from_millis(5),
        }],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    assert_eq!(
        client
            .get(&server.url("/drip"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "drip"
    );
}

#[test]
fn a_retried_response_whose_body_stalls_is_given_up_at_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/r", resil_tests::stalled_503_then_ok());
    let client = builder(&ManualClock::new()).build().unwrap();
    let start = std::time::Instant::now();
    let response = client.get(&server.url("/r")).send().unwrap();
    // The 503's body is given up before the retry, at its attempt's 80 ms deadline.
    resil_tests::assert_took(start, Duration::ZERO, Duration::from_secs(1));
    assert_eq!(response.text().unwrap(), "ok");
    assert_eq!(server.hits("/r"), 2);
}

#[test]
fn huge_response_head_is_refused() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/huge", vec![Reply::HugeHead(200 * 1024)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client.get(&server.url("/huge")).send().unwrap_err();
    resil_tests::assert_head_refused(&err);
}

#[test]
fn shared_breaker_opens_rejects_without_connecting_then_half_opens_and_closes() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/flaky", |_, n| {
        if n < 3 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    let clock = ManualClock::new();
    let breaker = Arc::new(Mutex::new(
        CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(3))
            .open_for(Duration::from_secs(30))
            .build()
            .unwrap(),
    ));
    let once = RetryPolicy::builder().max_attempts(1).build().unwrap();
    let transcript = Arc::new(Transcript::default());
    let make = || {
        builder(&clock)
            .policy(once.clone())
            .breaker(breaker.clone())
            .hooks(transcript.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (make(), make());
    for client in [&a, &b, &a] {
        let err = client.get(&server.url("/flaky")).send().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Status(503));
    }
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Open);
    let connections = server.connections();
    let err = b.get(&server.url("/flaky")).send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(err.attempts(), 0);
    assert_eq!(
        server.connections(),
        connections,
        "rejected without a connection"
    );
    assert_eq!(server.hits("/flaky"), 3);
    // 30 s later on the shared clock, the next call is the half-open probe.
    clock.sleep(Duration::from_secs(30));
    assert_eq!(a.get(&server.url("/flaky")).send().unwrap().status(), 200);
    assert_eq!(breaker.lock().unwrap().state(), BreakerState::Closed);
    let lines = transcript.lines();
    let transitions: Vec<_> = lines.iter().filter(|l| l.starts_with("breaker")).collect();
    assert_eq!(
        transitions,
        [
            "breaker closed -> open",
            "breaker open -> half-open",
            "breaker half-open -> closed"
        ]
    );
    assert_eq!(b.stats().breaker_rejections, 1);
}

#[test]
fn unauthorized_refreshes_the_token_once_and_retries_once() {
    let _load = shared_load();
    let server = TestServer::start();
    server.handle("/me", |r, _| match r.header("authorization") {
        Some("Bearer fresh") => Reply::body(200, "me"),
        _ => Reply::status(401),
    });
    server.script("/never", vec![Reply::status(401)]);
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    let auth = BearerToken::new("stale", move || -> Result<String, AuthError> {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok("fresh".to_owned())
    });
    let client = builder(&ManualClock::new()).auth(auth).build().unwrap();
    assert_eq!(
        client
            .get(&server.url("/me"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "me"
    );
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    let tokens: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens,
        [
            Some("Bearer stale".to_owned()),
            Some("Bearer fresh".to_owned())
        ]
    );

    // A server that keeps refusing: one refresh, one resend, then the 401 is the answer.
    let response = client.get(&server.url("/never")).send().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.hits("/never"), 2);
    assert_eq!(refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn failing_auth_provider_is_an_auth_error() {
    let _load = shared_load();
    struct Broken;
    impl AuthProvider for Broken {
        fn authorize(&self, _: &mut http::HeaderMap) -> Result<(), AuthError> {
            Err("token store unavailable".into())
        }
        fn refresh(&self) -> Result<(), AuthError> {
            Ok(())
        }
    }
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).auth(Broken).build().unwrap();
    let err = client.get(&server.url("/x")).send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(
        format!("{err:#}").contains("token store unavailable"),
        "{err}"
    );
    assert_eq!(server.hits("/x"), 0);
}

#[test]
fn credentials_ureq_will_not_write_are_refused_unsent_not_reported_as_a_bad_response() {
    let _load = shared_load();
    struct Latin1;
    impl AuthProvider for Latin1 {
        fn authorize(&self, headers: &mut http::HeaderMap) -> Result<(), AuthError> {
            let value = http::HeaderValue::from_bytes(b"Basic caf\xe9")?;
            headers.insert(http::header::AUTHORIZATION, value);
            Ok(())
        }
        fn refresh(&self) -> Result<(), AuthError> {
            Ok(())
        }
    }
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).auth(Latin1).build().unwrap();
    let err = client.get(&server.url("/x")).send().unwrap_err();
    let refused = "header \"authorization\" has bytes outside visible ASCII";
    resil_tests::assert_refused_setting(&err, refused);
    let plain = builder(&ManualClock::new()).build().unwrap();
    let mut request = http::Request::get(server.url("/x")).body(()).unwrap();
    let value = http::HeaderValue::from_bytes(b"Basic caf\xe9").unwrap();
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value);
    resil_tests::assert_refused_setting(&plain.execute(request).unwrap_err(), refused);
    assert_eq!(server.hits("/x"), 0);
}

#[test]
fn authorization_is_not_forwarded_to_another_origin_on_redirect() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landing", vec![Reply::body(200, "landed")]);
    let origin = TestServer::start();
    origin.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landing"))],
    );
    let client = builder(&ManualClock::new())
        .auth(BearerToken::new(
            "secret",
            || -> Result<String, AuthError> { Ok("secret".into()) },
        ))
        .max_redirects(5)
        .build()
        .unwrap();
    let body = client
        .get(&origin.url("/go"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "landed");
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer secret")
    );
    let landed = &other.requests()[0];
    assert_eq!(
        landed.header("authorization"),
        None,
        "credentials leaked across origins"
    );
    // The hop names its own origin: resil leaves `Host` to ureq when it follows redirects.
    let landed_host = format!("127.0.0.2:{}", other.addr().port());
    assert_eq!(landed.header("host"), Some(landed_host.as_str()));
}

/// The values of `host`, `user-agent` and `accept`, in that order, each as often as sent.
fn identity_headers(request: &resil_tests::Recorded) -> [Vec<String>; 3] {
    ["host", "user-agent", "accept"].map(|name| request.values(name))
}

#[test]
fn every_request_names_its_host_agent_and_accept_once_and_the_callers_own_win() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/h", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client.get(&server.url("/h")).send().unwrap();
    let port = server.addr().port();
    let credentials = format!("http://user:pw@127.0.0.1:{port}/h");
    client.get(&credentials).send().unwrap();
    client
        .get(&server.url("/h"))
        .header("host", "api.example")
        .header("user-agent", "mine/1")
        .header("accept", "application/json")
        .send()
        .unwrap();
    let seen: Vec<_> = server.requests().iter().map(identity_headers).collect();
    let own = || {
        [
            vec![format!("127.0.0.1:{port}")],
            vec![format!("resil/{}", env!("CARGO_PKG_VERSION"))],
            vec!["*/*".to_owned()],
        ]
    };
    let callers = [
        vec!["api.example".to_owned()],
        vec!["mine/1".to_owned()],
        vec!["application/json".to_owned()],
    ];
    assert_eq!(seen, [own(), own(), callers]);
}

#[test]
fn a_user_agent_that_is_no_header_value_is_left_out_not_a_panic() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/h", vec![Reply::status(200)]);
    let settings = resil_blocking::UreqSettings {
        user_agent: "two\nlines".to_owned(),
        ..Default::default()
    };
    let client = builder(&ManualClock::new())
        .transport(resil_blocking::UreqTransport::new(&settings).unwrap())
        .build()
        .unwrap();
    assert_eq!(client.get(&server.url("/h")).send().unwrap().status(), 200);
    let [_, agents, _] = identity_headers(&server.requests()[0]);
    assert!(agents.is_empty(), "{agents:?}");
}

#[test]
fn a_request_built_whole_with_a_url_no_call_can_reach_is_refused_before_any_attempt() {
    let client = Client::builder().build().unwrap();
    for url in ["/relative", "ftp://127.0.0.1/x", "http://127.0.0.1:99999/"] {
        let request = http::Request::get(url).body(()).unwrap();
        let error = client.execute(request).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{url}: {error}");
        assert_eq!(error.attempts(), 0, "{url}");
    }
    assert_eq!(client.stats().attempts, 0);
}

#[test]
fn timeouts_of_duration_max_mean_never_and_panic_nothing() {
    let _load = shared_load();
    let server = resil_tests::ok_twice();
    let client = Client::builder()
        .connect_timeout(Duration::MAX)
        .read_timeout(Duration::MAX)
        .write_timeout(Duration::MAX)
        .pool(4, 4, Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    for _ in 0..2 {
        let response = client.get(&server.url("/ok")).send().unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().unwrap();
    }
    assert_eq!(
        server.connections(),
        1,
        "the second request reused the pooled connection"
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
fn hundred_threads_fifty_requests_each_are_all_accounted_for() {
    let _alone = exclusive_load();
    let server = TestServer::start();
    // Roughly one request in five gets a 503.
    server.handle("/load", |_, n| {
        if n % 5 == 0 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    // No breaker (five 503s in a row would open it and turn this into a breaker test) and a
    // generous attempt timeout, so every attempt is answered and the server's count is exact.
    let policy = RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(5)))
        .attempt_timeout(Some(Duration::from_secs(10)))
        .total_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let client = builder(&ManualClock::new())
        .policy(policy)
        .no_breaker()
        .build()
        .unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..100 {
            let (client, ok, failed, url) = (&client, &ok, &failed, server.url("/load"));
            scope.spawn(move || {
                for _ in 0..50 {
                    match client.get(&url).send() {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            });
        }
    });
    let stats = client.stats();
    let (ok, failed) = (
        ok.load(Ordering::SeqCst) as u64,
        failed.load(Ordering::SeqCst) as u64,
    );
    assert_eq!(ok + failed, 5000);
    assert_eq!(stats.requests, 5000);
    assert_eq!(stats.successes, ok);
    assert_eq!(stats.failures, failed);
    assert_eq!(stats.attempts, server.hits("/load") as u64);
    assert_eq!(stats.attempts, 5000 + stats.total_retries());
    assert!(stats.total_retries() >= 900, "{stats:?}");
}

#[test]
fn base_url_default_headers_and_query() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/api/users", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new())
        .base_url(&server.url("/api"))
        .default_header("x-team", "core")
        .default_header("user-agent", "resil-test")
        .build()
        .unwrap();
    client
        .get("users")
        .header("user-agent", "mine")
        .query(&[("q", "a b&c"), ("page", "2")])
        .send()
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/users?q=a+b%26c&page=2");
    assert_eq!(r.header("x-team"), Some("core"));
    assert_eq!(r.header("user-agent"), Some("mine"));
}

#[test]
fn form_body_is_encoded() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/form", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    client
        .put(&server.url("/form"))
        .form(&[("a", "1 2"), ("b", "é")])
        .send()
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.body, b"a=1+2&b=%C3%A9");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
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

#[test]
fn error_for_status_and_error_messages() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/missing", vec![Reply::body(404, "nope")]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client
        .get(&server.url("/missing"))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Status(404));
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: server answered with status 404",
            server.url("/missing")
        )
    );

    server.script("/down", vec![Reply::status(503)]);
    let err = client.get(&server.url("/down")).send().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: gave up after 4 attempts: all attempts were used (last: status 503)",
            server.url("/down")
        )
    );
    assert_eq!(err.response().unwrap().status(), 503);

    // Credentials leave the URL for `Authorization` before the call starts.
    let with_credentials = format!("http://user:hunter2@{}/down", server.addr());
    let err = client.get(&with_credentials).send().unwrap_err();
    let url = server.url("/down");
    assert!(
        err.to_string().starts_with(&format!("GET {url}: ")),
        "{err}"
    );
    assert!(
        !err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{err:?}"
    );
    let err = client
        .get(&server.url("/down?access_token=hunter2&page=1"))
        .send()
        .unwrap_err();
    assert!(
        err.to_string().contains("access_token=[redacted]&page=1"),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn invalid_input_gives_clear_errors_not_panics() {
    let _load = shared_load();
    let client = builder(&ManualClock::new()).build().unwrap();
    let err = client.get("/relative").send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    assert_eq!(
        err.to_string(),
        "GET /relative: invalid URL `/relative`: relative URL and no base URL is set"
    );
    let err = client.get("ftp://127.0.0.1/x").send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    let err = client
        .get("http://127.0.0.1/")
        .header("bad header", "v")
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = Client::builder().base_url("not a url").build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        format!("{err:#}").starts_with("invalid configuration: "),
        "no call, so no method and URL before it: {err}"
    );
    let err = Client::builder()
        .default_header("x", "bad\nvalue")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn a_wrong_content_length_or_a_second_host_is_refused_before_anything_is_sent() {
    let _load = shared_load();
    let server = TestServer::start();
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = server.url("/length");
    let post = |length: &str| client.post(&url).header("content-length", length);
    let wrong = post("1").body("ab").send().unwrap_err();
    let built = http::Request::post(&url).header("content-length", "1");
    let built = client.execute(built.body("ab").unwrap()).unwrap_err();
    let none = client
        .get(&url)
        .header("content-length", "3")
        .send()
        .unwrap_err();
    post("2").body("ab").send().unwrap();
    post("2")
        .body_reader(std::io::Cursor::new(b"ab"))
        .send()
        .unwrap();
    let hosts = client
        .get(&url)
        .header("host", "a.test")
        .header("host", "b.test");
    let hosts = hosts.send().unwrap_err();
    resil_tests::assert_only_well_framed_requests_sent(&server, [&wrong, &built, &none, &hosts]);
}

#[test]
fn a_post_put_or_patch_without_a_body_declares_content_length_zero() {
    let _load = shared_load();
    // ureq alone sends them as an empty chunked body.
    let server = TestServer::start();
    server.script("/empty", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = server.url("/empty");
    for (method, built_whole) in resil_tests::BODILESS_REQUESTS {
        let method: http::Method = method.parse().unwrap();
        let sent = if built_whole {
            let request = http::Request::builder().method(method).uri(&url);
            client.execute(request.body(()).unwrap())
        } else {
            client.request(method, &url).send()
        };
        assert_eq!(sent.unwrap().status(), 200);
    }
    resil_tests::assert_empty_bodies_declared(&server);
}

#[test]
fn a_version_ureq_cannot_send_is_refused_before_the_attempt() {
    let _load = shared_load();
    // ureq alone sends each as HTTP/1.1.
    let server = TestServer::start();
    server.script("/v", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    for (version, sent) in resil_tests::REQUEST_VERSIONS {
        let mut request = http::Request::get(server.url("/v")).body(()).unwrap();
        *request.version_mut() = version;
        let result = client.execute(request).map(|r| r.status());
        resil_tests::assert_version_outcome(version, sent, result);
    }
    assert_eq!(server.hits("/v"), 2);
}

#[test]
fn a_breaker_per_origin_leaves_the_other_backends_alone() {
    let _load = shared_load();
    for per_origin in [true, false] {
        let (down, up) = resil_tests::down_and_up();
        let builder = builder(&ManualClock::new()).max_retries(0);
        let builder = if per_origin {
            builder.breaker_per_origin(resil_tests::trips_after_two())
        } else {
            let breaker = resil_tests::trips_after_two().build().unwrap();
            builder.breaker(Arc::new(Mutex::new(breaker)))
        };
        let client = builder.build().unwrap();
        let outcomes: Vec<_> = [down.url("/"), down.url("/"), down.url("/"), up.url("/")]
            .iter()
            .map(|url| match client.get(url).send() {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) => e.response().map(|r| r.status().as_u16()).ok_or(e.kind()),
            })
            .collect();
        resil_tests::assert_breaker_scope(&outcomes, &down, per_origin);
        if per_origin {
            let states = client.origin_breaker_states();
            let state_of = |server: &TestServer| {
                let origin = format!("http://{}", server.addr());
                states.iter().find(|(o, _)| *o == origin).map(|(_, s)| *s)
            };
            assert_eq!(states.len(), 2, "{states:?}");
            assert_eq!(state_of(&down), Some(resil_core::BreakerState::Open));
            assert_eq!(state_of(&up), Some(resil_core::BreakerState::Closed));
        }
    }
}

#[test]
fn credentials_in_the_url_are_sent_as_basic_authorization() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let url = resil_tests::url_with_credentials(&server, "/creds");
    client.get(&url).send().unwrap();
    client
        .execute(http::Request::get(&url).body(()).unwrap())
        .unwrap();
    resil_tests::assert_url_credentials_sent_as_basic(&server, 2);
}

#[test]
fn environment_settings_apply_and_bad_values_are_named() {
    let _load = shared_load();
    let env = EnvConfig::from_lookup(|name| match name {
        "RESIL_MAX_RETRIES" => Some("1".into()),
        "RESIL_TIMEOUT" => Some("750ms".into()),
        _ => None,
    })
    .unwrap();
    let client = builder(&ManualClock::new()).apply_env(env).build().unwrap();
    assert_eq!(client.policy().max_attempts(), 2);
    assert_eq!(client.policy().total_timeout(), Duration::from_millis(750));
    // A setter called after the environment wins over it: zero is refused at build, so the
    // failure shows which value was kept.
    for variable in ["RESIL_CONNECT_TIMEOUT", "RESIL_READ_TIMEOUT"] {
        let env = EnvConfig::from_lookup(|name| (name == variable).then(|| "5s".into())).unwrap();
        let env_first = Client::builder()
            .apply_env(env.clone())
            .connect_timeout(Duration::ZERO)
            .read_timeout(Duration::ZERO);
        assert!(env_first.build().is_err(), "{variable}");
    }
    let env_last = Client::builder()
        .connect_timeout(Duration::ZERO)
        .read_timeout(Duration::ZERO)
        .apply_env(
            EnvConfig::from_lookup(|name| name.ends_with("_TIMEOUT").then(|| "5s".into())).unwrap(),
        );
    env_last.build().unwrap();
    let err = EnvConfig::from_lookup(|name| (name == "RESIL_TIMEOUT").then(|| "soon".into()))
        .unwrap_err();
    assert!(err.to_string().contains("RESIL_TIMEOUT"), "{err}");
}

#[test]
fn connection_is_reused_after_a_retried_response() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script(
        "/reuse",
        vec![Reply::body(503, "busy, try again"), Reply::status(200)],
    );
    let client = builder(&ManualClock::new()).build().unwrap();
    client.get(&server.url("/reuse")).send().unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].connection, requests[1].connection,
        "the 503 body was drained"
    );
}

#[test]
fn retry_if_sees_a_body_prefix_and_the_caller_still_reads_the_whole_body() {
    let _load = shared_load();
    let server = TestServer::start();
    let long_ok = format!("ok {}", "x".repeat(5000));
    server.script("/graphql", error_body_replies(&long_ok));
    let clock = ManualClock::new();
    let policy = error_body_policy();
    let client = builder(&clock).policy(policy).build().unwrap();
    let text = client
        .get(&server.url("/graphql"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, long_ok, "the prefix read early is put back");
    assert_eq!(server.hits("/graphql"), 2);
    assert_eq!(client.stats().total_retries(), 1);
    assert_eq!(
        server.connections(),
        1,
        "the retried response was drained and its connection reused"
    );
}

#[test]
fn a_body_prefix_larger_than_64_kib_is_a_policy_error() {
    let err = RetryPolicy::builder()
        .retry_if_body_prefix(65 * 1024)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("retry_if_body_prefix"), "{err}");
}

/// A server that answers every request on every connection with a 2-byte 200. On the first
/// connection it then waits for the test's go-ahead (so the client has read its answer) and
/// does `after_first`. It reports which connection (0, 1, …) each request arrived on.
fn pool_check_server(
    after_first: fn(&mut std::net::TcpStream),
) -> (
    String,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<usize>,
) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (seen, arrivals) = std::sync::mpsc::channel();
    let (go, go_ahead) = std::sync::mpsc::channel::<()>();
    let mut go_ahead = Some(go_ahead);
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            let go_ahead = go_ahead.take();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    head.clear();
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                    if let Some(go_ahead) = &go_ahead {
                        if go_ahead.recv().is_err() {
                            return;
                        }
                        after_first(&mut stream);
                    }
                    if seen.send(connection).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, go, arrivals)
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_reused_even_for_a_post() {
    // A POST written onto a connection the server has closed would fail as "may have been
    // sent" and could not be retried: the pool's check must find the close first.
    let (url, go, arrivals) = pool_check_server(|stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    let client = Client::builder().build().unwrap();
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    go.send(()).unwrap();
    assert_eq!(arrivals.recv().unwrap(), 0, "after the server's close");
    let response = client.post(&url).body("x").send().unwrap();
    assert_eq!(response.text().unwrap(), "ok");
    assert_eq!(
        arrivals.recv().unwrap(),
        1,
        "the POST went on a new connection"
    );
    assert_eq!(client.stats().attempts, 2, "and was never replayed");
}

#[test]
fn a_pooled_connection_with_bytes_nobody_asked_for_is_not_reused() {
    let (url, go, arrivals) = pool_check_server(|stream| {
        use std::io::Write;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    });
    let client = Client::builder().build().unwrap();
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    go.send(()).unwrap();
    assert_eq!(arrivals.recv().unwrap(), 0, "after the stray bytes");
    // The stray response must not be read as the answer to the next request.
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    assert_eq!(arrivals.recv().unwrap(), 1);
    // A connection that stays quiet is reused.
    assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");
    assert_eq!(arrivals.recv().unwrap(), 1);
}

#[cfg(feature = "rustls")]
#[test]
fn an_https_url_speaks_tls_over_the_tcp_connection() {
    // resil builds the connector chain itself (its own TCP connection under ureq's rustls):
    // what reaches the server must be a TLS handshake, not plain HTTP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let first_bytes = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut record = [0u8; 3];
        stream.read_exact(&mut record).unwrap();
        record
    });
    let clock = ManualClock::new();
    let err = builder(&clock)
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .unwrap_err();
    // A handshake record (22) of TLS 1.x (3, x).
    assert_eq!(first_bytes.join().unwrap()[..2], [22, 3], "{err}");
}

#[test]
fn the_per_read_timeout_ends_an_attempt_long_before_its_deadline() {
    let _load = shared_load();
    let server = TestServer::start();
    server.script("/slow", vec![Reply::Stall(Duration::from_secs(2)); 4]);
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Constant(Duration::ZERO))
        .attempt_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let from_env =
        EnvConfig::from_lookup(|name| (name == "RESIL_READ_TIMEOUT").then(|| "30ms".into()))
            .unwrap();
    for client in [
        builder(&clock).read_timeout(Duration::from_millis(30)),
        builder(&clock).apply_env(from_env),
    ] {
        let client = client.policy(policy.clone()).build().unwrap();
        let start = std::time::Instant::now();
        let err = client.get(&server.url("/slow")).send().unwrap_err();
        // Each stall ends with a close after 2 s; only the 30 ms read timeout makes it a
        // timeout.
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert_eq!(err.attempts(), 2, "{err}");
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_refused_connection_tells_each_cause_once() {
    let url = format!("http://{}/x", resil_tests::refused_addr());
    let client = builder(&ManualClock::new()).max_retries(0).build().unwrap();
    let err = client.get(&url).send().unwrap_err();
    let line = resil_tests::assert_causes_told_once(&err);
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn every_method_helper_sends_its_method_and_options_is_retried_as_idempotent() {
    let server = TestServer::start();
    server.script("/m", vec![Reply::status(503), Reply::status(204)]);
    let client = builder(&ManualClock::new()).build().unwrap();
    let response = client.options(&server.url("/m")).send().unwrap();
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
        request.send().unwrap();
    }
    assert_eq!(
        resil_tests::methods_seen(&server),
        resil_tests::HELPER_METHODS
    );
}

#[test]
fn a_zero_transport_timeout_is_refused_when_the_client_is_built() {
    for (setting, builder) in [
        (
            "connect_timeout",
            Client::builder().connect_timeout(Duration::ZERO),
        ),
        (
            "read_timeout",
            Client::builder().read_timeout(Duration::ZERO),
        ),
        (
            "write_timeout",
            Client::builder().write_timeout(Duration::ZERO),
        ),
    ] {
        resil_tests::assert_refused_setting(&builder.build().unwrap_err(), setting);
    }
    // The environment cannot ask for it either: a zero duration is not a valid value there.
    for variable in ["RESIL_CONNECT_TIMEOUT", "RESIL_READ_TIMEOUT"] {
        let env = EnvConfig::from_lookup(|name| (name == variable).then(|| "0s".into()));
        let err = env.unwrap_err();
        assert!(err.to_string().contains(variable), "{err}");
    }
}
#[test]
fn scratch_huge() {
    let server = TestServer::start();
    let client = builder(&ManualClock::new()).build().unwrap();
    for kb in [60usize, 80, 200, 500] {
        let path = format!("/h{kb}");
        server.script(&path, vec![Reply::HugeHead(kb * 1024)]);
        let r = client.get(&server.url(&path)).send();
        eprintln!(
            "BLOCKING {kb} {:?}",
            r.map(|r| r.status()).map_err(|e| format!("{e:#}"))
        );
    }
}
