//! `Call`, `ClientConfig` and `RequestDraft` driven with no IO at all: what the blocking and
//! async clients share, checked on its own with a fake clock and scripted responses.

use std::time::Duration;

use resil_core::{Backoff, Instant, Jitter, RetryPolicy, TransportErrorKind, UnixTime};
use resil_http::{CallBody, ClientConfig, ClientCore, Error, ErrorKind, RequestDraft, Step};

/// A response body that remembers the limit it was given and holds the bytes a prefix read
/// finds.
#[derive(Debug, Default)]
struct FakeBody {
    limit: Option<u64>,
    text: &'static [u8],
}

impl CallBody for FakeBody {
    fn set_limit(&mut self, limit: u64) {
        self.limit = Some(limit);
    }
}

fn response(status: u16) -> http::Response<FakeBody> {
    with_body(status, b"")
}

fn with_body(status: u16, text: &'static [u8]) -> http::Response<FakeBody> {
    let mut r = http::Response::new(FakeBody { limit: None, text });
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    r
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Constant(Duration::from_millis(100)))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

fn wall() -> UnixTime {
    UnixTime(1_700_000_000)
}

/// What the fake server and credential store do, in order, as a driver would meet them.
enum Script {
    /// The attempt is answered with this response after 5 ms.
    Answer(http::Response<FakeBody>),
    /// The attempt fails in the transport after 5 ms.
    Fails(TransportErrorKind),
    /// A credential refresh, taking this long, succeeds or not.
    Refresh(Duration, bool),
    /// A body prefix read fails with a reset.
    PrefixFails,
}

/// A driver of its own over a fake clock: carries out every step of a call for one GET,
/// answering from `script`, and writes what it did into a transcript.
struct FakeDriver {
    now: Instant,
    script: std::vec::IntoIter<Script>,
    log: Vec<String>,
    ids: Vec<http::HeaderValue>,
}

impl FakeDriver {
    fn new(script: Vec<Script>) -> FakeDriver {
        FakeDriver {
            now: Instant::ZERO,
            script: script.into_iter(),
            log: Vec::new(),
            ids: Vec::new(),
        }
    }

    fn next(&mut self, what: &str) -> Script {
        self.script
            .next()
            .unwrap_or_else(|| panic!("the script has no {what}: {:?}", self.log))
    }

    /// Runs `call` to its end.
    fn run(
        &mut self,
        call: &mut resil_http::Call<'_, FakeBody>,
        parts: &mut http::request::Parts,
    ) -> Result<http::Response<FakeBody>, Error<FakeBody>> {
        loop {
            match call.poll_step(parts) {
                Step::Send { attempt, deadline } => {
                    let sent = call.request(parts, ());
                    if let Some(id) = sent.headers().get("x-request-id") {
                        self.ids.push(id.clone());
                    }
                    self.now = self.now + Duration::from_millis(5);
                    match self.next("answer") {
                        Script::Answer(r) => {
                            self.log
                                .push(format!("send {attempt}: {}", r.status().as_u16()));
                            call.handle_response(self.now, attempt, r, wall);
                        }
                        Script::Fails(kind) => {
                            self.log.push(format!("send {attempt}: {kind}"));
                            call.handle_error(self.now, attempt, kind, "failed".into());
                        }
                        _ => panic!("expected an answer"),
                    }
                    assert!(self.now <= deadline, "the fake server is fast");
                }
                Step::Release(r) => self.log.push(format!("release {}", r.status().as_u16())),
                Step::Cancel { attempt } => self.log.push(format!("cancel {attempt}")),
                Step::Refresh { deadline } => {
                    let Script::Refresh(takes, ok) = self.next("refresh") else {
                        panic!("expected a refresh");
                    };
                    self.now = self.now + takes;
                    let in_time = self.now < deadline;
                    self.log.push(format!("refresh: {ok}, in time: {in_time}"));
                    call.handle_refreshed(self.now, ok);
                }
                Step::ReadPrefix { attempt, len } => {
                    let text = call.response_mut().expect("a response to read").body().text;
                    if matches!(self.script.as_slice().first(), Some(Script::PrefixFails)) {
                        self.script.next();
                        self.log.push("prefix: reset".into());
                        let kind = TransportErrorKind::Reset;
                        call.handle_error(self.now, attempt, kind, "reset".into());
                    } else {
                        let prefix = &text[..text.len().min(len)];
                        self.log
                            .push(format!("prefix: {}", String::from_utf8_lossy(prefix)));
                        call.handle_prefix(self.now, prefix);
                    }
                }
                Step::Redirect { drop_body } => {
                    let auth = parts.headers.contains_key("authorization");
                    self.log.push(format!(
                        "redirect: {} {}, drop body: {drop_body}, authorization: {auth}, \
                         credentials: {}",
                        parts.method,
                        parts.uri,
                        call.sends_credentials()
                    ));
                }
                Step::Sleep { until } => {
                    self.log.push(format!("sleep {:?}", until - self.now));
                    self.now = until;
                    call.handle_timeout(self.now);
                }
                Step::Done(r) => {
                    self.log.push(format!("done {}", r.status().as_u16()));
                    return Ok(r);
                }
                Step::Fail(e) => {
                    self.log.push(format!("fail: {e}"));
                    return Err(e);
                }
            }
        }
    }
}

/// Runs one GET under `config` against `script`; `refreshable` says whether the client can
/// refresh credentials. Returns the outcome and the driver (its transcript and clock).
fn run(
    config: ClientConfig,
    script: Vec<Script>,
    refreshable: bool,
) -> (
    Result<http::Response<FakeBody>, Error<FakeBody>>,
    FakeDriver,
) {
    let core = config.build().unwrap();
    let draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
    let (mut parts, policy) = draft.finish(&core, Some(0)).unwrap();
    let mut driver = FakeDriver::new(script);
    let mut call = core.start_call(policy.as_deref(), &mut parts, true, refreshable, driver.now);
    let result = driver.run(&mut call, &mut parts);
    (result, driver)
}

fn answers(statuses: &[u16]) -> Vec<Script> {
    statuses
        .iter()
        .map(|s| Script::Answer(response(*s)))
        .collect()
}

/// A client with the test policy, no breaker or budget, seeded.
fn plain() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.no_breaker();
    config.no_budget();
    config.seed(1);
    config
}

/// Runs a call to completion against `statuses` (one per attempt), jumping a fake clock
/// through every wait; returns the outcome, how many responses were released, and the time
/// it took. Every attempt carries the same generated request id.
fn drive(
    mut config: ClientConfig,
    statuses: &[u16],
) -> (
    Result<http::Response<FakeBody>, Error<FakeBody>>,
    usize,
    Duration,
) {
    config.generate_request_ids(true);
    let (result, driver) = run(config, answers(statuses), false);
    assert!(
        driver.ids.iter().all(|id| *id == driver.ids[0]),
        "one id per call: {:?}",
        driver.ids
    );
    assert_eq!(driver.ids.len(), statuses.len());
    let released = driver
        .log
        .iter()
        .filter(|l| l.starts_with("release"))
        .count();
    (result, released, driver.now - Instant::ZERO)
}

#[test]
fn retries_then_returns_the_success_with_the_body_limit_set() {
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.body_limit(1234);
    config.seed(1);
    let (result, stale, elapsed) = drive(config, &[503, 503, 200]);
    let response = result.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().limit, Some(1234));
    assert_eq!(stale, 2, "each retried response was released to be drained");
    assert_eq!(
        elapsed,
        Duration::from_millis(215),
        "3 attempts of 5 ms, 2 waits of 100 ms"
    );
}

#[test]
fn gives_up_with_the_last_response_limited_and_the_attempts_counted() {
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.body_limit(99);
    config.seed(1);
    let (result, _, _) = drive(config, &[503, 503, 503]);
    let error = result.unwrap_err();
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.status(), Some(503));
    assert_eq!(error.response().unwrap().body().limit, Some(99));
    assert_eq!(error.url(), "http://127.0.0.1/x");
}

#[test]
fn client_overrides_and_per_request_deadline_rebuild_the_policy() {
    let mut config = ClientConfig::default();
    config.max_retries(0);
    config.no_breaker();
    config.no_budget();
    let core = config.build().unwrap();
    assert_eq!(core.policy().max_attempts(), 1);
    assert!(core.breaker().is_none());
    let mut draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::POST, "http://127.0.0.1/x");
    draft.timeout(Duration::from_millis(750));
    draft.query(&[("q", "a b")]);
    let (parts, policy) = draft.finish(&core, Some(0)).unwrap();
    assert_eq!(parts.uri, "http://127.0.0.1/x?q=a+b");
    let policy = policy.unwrap();
    assert_eq!(policy.total_timeout(), Duration::from_millis(750));
    assert_eq!(policy.max_attempts(), 1, "the client's override stays");
}

#[test]
fn mistakes_are_errors_that_name_the_setting() {
    let mut config = ClientConfig::default();
    config.default_header("bad header", "v");
    let err = config.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(format!("{err:#}").contains("bad header"), "{err}");
    let mut config = ClientConfig::default();
    config.default_header("host", "a.test");
    config.default_header("Host", "b.test");
    let err = config.build().unwrap_err();
    assert!(
        format!("{err:#}").contains("\"Host\" is given more than once"),
        "{err:#}"
    );
    for framing in ["Content-Length", "Transfer-Encoding"] {
        let mut config = ClientConfig::default();
        config.default_header(framing, "2");
        let err = config.build().unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("{framing:?} cannot fit every request's body")),
            "{err:#}"
        );
    }
    let mut config = ClientConfig::default();
    config.default_header("host", "caf\u{e9}.test");
    let err = config.build().unwrap_err();
    assert!(
        format!("{err:#}").contains("\"host\" is not a host name"),
        "{err:#}"
    );

    let mut config = ClientConfig::default();
    config.base_url("http://user:hunter2@/nohost");
    let err = config.build().unwrap_err();
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

    let core = ClientConfig::default().build().unwrap();
    let mut draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
    draft.header("x", "bad\nvalue");
    let err = draft.finish(&core, Some(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let draft: RequestDraft<FakeBody> = RequestDraft::new(&core, http::Method::GET, "/relative");
    assert_eq!(
        draft.finish(&core, Some(0)).unwrap_err().kind(),
        ErrorKind::InvalidUrl
    );
}

#[test]
fn a_transport_error_is_reported_as_the_cause() {
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.max_retries(0);
    let core = config.build().unwrap();
    let draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
    let (mut parts, _) = draft.finish(&core, Some(0)).unwrap();
    let mut call = core.start_call::<FakeBody>(None, &mut parts, true, false, Instant::ZERO);
    let Step::Send { attempt, .. } = call.poll_step(&mut parts) else {
        panic!("expected a send");
    };
    call.handle_error(
        Instant::ZERO,
        attempt,
        TransportErrorKind::Connect,
        "connection refused".into(),
    );
    let Step::Fail(error) = call.poll_step(&mut parts) else {
        panic!("expected a failure");
    };
    assert_eq!(
        error.kind(),
        ErrorKind::Transport(TransportErrorKind::Connect)
    );
    assert!(
        std::error::Error::source(&error).is_some_and(|s| s.to_string().contains("refused")),
        "{error:?}"
    );
    // `{}` leaves the cause to `source()`, so a reporter walking the chain prints it once;
    // `{:#}` is the whole chain on one line.
    assert_eq!(
        error.to_string(),
        "GET http://127.0.0.1/x: gave up after 1 attempt: all attempts were used \
         (last: connection refused)"
    );
    assert_eq!(format!("{error:#}"), format!("{error}: connection refused"));
}

#[test]
fn a_body_cut_short_is_named_once_wherever_its_eof_sits_in_the_chain() {
    use std::io;

    use resil_http::IncompleteBody;

    /// A client's body error with the EOF underneath it, as hyper reports one.
    #[derive(Debug)]
    struct ReadFailed(io::Error);
    impl std::fmt::Display for ReadFailed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error reading a body from connection")
        }
    }
    impl std::error::Error for ReadFailed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "end of file");
    let marked = IncompleteBody::mark(Box::new(ReadFailed(eof())));
    assert_eq!(
        marked.to_string(),
        "the response ended before its whole body arrived"
    );
    assert_eq!(
        marked.source().map(ToString::to_string).as_deref(),
        Some("error reading a body from connection"),
        "the client's own error stays underneath"
    );
    let again = IncompleteBody::mark(marked);
    assert!(
        again.source().is_some_and(|s| !s.is::<IncompleteBody>()),
        "marked once"
    );
    let reset = IncompleteBody::mark(Box::new(io::Error::from(io::ErrorKind::ConnectionReset)));
    assert!(!reset.is::<IncompleteBody>(), "{reset}");
}

/// One call to `url` at time zero, answered with `status` if it is sent; the kind of its
/// refusal if it is not.
fn one_call(core: &ClientCore, url: &str, status: u16) -> Result<(), ErrorKind> {
    let draft: RequestDraft<FakeBody> = RequestDraft::new(core, http::Method::GET, url);
    let (mut parts, _) = draft.finish(core, Some(0)).unwrap();
    let mut call = core.start_call::<FakeBody>(None, &mut parts, true, false, Instant::ZERO);
    match call.poll_step(&mut parts) {
        Step::Send { attempt, .. } => {
            call.handle_response(Instant::ZERO, attempt, response(status), wall);
            Ok(())
        }
        Step::Fail(e) => Err(e.kind()),
        _ => panic!("expected a send or a refusal"),
    }
}

#[test]
fn with_a_breaker_per_origin_each_origin_has_its_own_default_throttle() {
    use resil_core::CircuitBreaker;

    let mut config = ClientConfig::default();
    config.max_retries(0);
    config.seed(7);
    config.breaker_per_origin(CircuitBreaker::builder());
    let core = config.build().unwrap();
    let call = |url: &str, status: u16| match one_call(&core, url, status) {
        Ok(()) => true,
        Err(ErrorKind::RejectedLocally(_)) => false,
        Err(other) => panic!("refused as {other:?}"),
    };
    // An origin that answers nothing but 429s is throttled on the client side...
    let refused = (0..50).filter(|_| !call("http://busy.test/", 429)).count();
    assert!(refused > 25, "{refused} of 50 refused locally");
    // ...while another origin's calls all go out: its throttle has seen no back pressure.
    for _ in 0..20 {
        assert!(
            call("http://calm.test/", 200),
            "another origin is not throttled"
        );
    }
}

#[test]
fn a_limiter_per_origin_is_made_for_each_origin_with_a_breaker_per_origin() {
    use resil_core::{AdaptiveThrottle, CircuitBreaker};
    use std::sync::{Arc, Mutex};

    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = |per_origin_breakers: bool| {
        let mut config = ClientConfig::default();
        config.max_retries(0);
        config.seed(3);
        if per_origin_breakers {
            config.breaker_per_origin(CircuitBreaker::builder());
        } else {
            config.no_breaker();
        }
        let made = made.clone();
        config.limiter_per_origin(move || {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let throttle = AdaptiveThrottle::builder().k(1.1).build().unwrap();
            Arc::new(Mutex::new(throttle))
        });
        config.build().unwrap()
    };
    let refused = |core: &ClientCore, url: &str, status: u16, calls: usize| {
        (0..calls)
            .filter(|_| match one_call(core, url, status) {
                Ok(()) => false,
                Err(ErrorKind::RejectedLocally(_)) => true,
                Err(other) => panic!("refused as {other:?}"),
            })
            .count()
    };
    // Per origin: the busy origin's 429s throttle only its own calls.
    let core = config(true);
    assert!(
        made.load(std::sync::atomic::Ordering::Relaxed) > 1,
        "one per origin slot"
    );
    assert!(refused(&core, "http://busy.test/", 429, 50) > 25);
    assert_eq!(refused(&core, "http://calm.test/", 200, 20), 0);
    // Without breakers per origin there is one, for the client: the calm origin is throttled too.
    made.store(0, std::sync::atomic::Ordering::Relaxed);
    let core = config(false);
    assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(refused(&core, "http://busy.test/", 429, 50) > 25);
    assert!(refused(&core, "http://calm.test/", 200, 20) > 0);
}

#[test]
fn a_breaker_per_origin_trips_for_the_failing_origin_only() {
    use resil_core::{BreakerState, CircuitBreaker, TripCondition};
    const MAX_ORIGIN_BREAKERS: usize = ClientConfig::MAX_ORIGIN_BREAKERS;

    let mut config = ClientConfig::default();
    config.max_retries(0);
    // A bare 503 is a breaker failure only without limiters (with them it is back pressure).
    config.no_limiters();
    let trip_after_two = CircuitBreaker::builder().trip(TripCondition::ConsecutiveFailures(2));
    config.breaker_per_origin(trip_after_two);
    let core = config.build().unwrap();
    assert!(core.breaker().is_none(), "no one breaker for every origin");
    let call = |url: &str, status: u16| match one_call(&core, url, status) {
        Ok(()) => true,
        Err(ErrorKind::CircuitOpen) => false,
        Err(other) => panic!("refused as {other:?}"),
    };
    assert!(call("http://down.test/a", 503));
    // The host's case does not make another origin.
    assert!(call("http://DOWN.test/b", 503));
    assert!(
        !call("http://down.test/c", 200),
        "the failing origin's breaker is open"
    );
    assert!(call("http://up.test/", 200), "another origin's is not");
    assert!(call("http://down.test:8080/", 200), "nor another port's");
    assert!(call("https://down.test/", 200), "nor another scheme's");
    let mut states = core.origin_breaker_states();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<_> = states.iter().map(|(o, s)| (o.as_str(), *s)).collect();
    assert_eq!(
        names,
        [
            ("http://down.test", BreakerState::Open),
            ("http://down.test:8080", BreakerState::Closed),
            ("http://up.test", BreakerState::Closed),
            ("https://down.test", BreakerState::Closed),
        ]
    );

    // Past the last slot, further origins share one more breaker.
    for i in 0..MAX_ORIGIN_BREAKERS {
        assert!(call(&format!("http://h{i}.test/"), 200));
    }
    assert_eq!(core.origin_breaker_states().len(), MAX_ORIGIN_BREAKERS);
    assert!(call("http://late-a.test/", 503));
    assert!(call("http://late-b.test/", 503));
    assert!(
        !call("http://late-c.test/", 200),
        "the origins past the slots share a breaker"
    );
}

#[test]
fn a_401_is_refreshed_once_released_and_sent_again_as_the_same_attempt() {
    let script = vec![
        Script::Answer(response(401)),
        Script::Refresh(Duration::from_millis(1), true),
        Script::Answer(response(200)),
    ];
    let (result, driver) = run(plain(), script, true);
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(
        driver.log,
        [
            "send attempt 1: 401",
            "refresh: true, in time: true",
            "release 401",
            "send attempt 1: 200",
            "done 200",
        ]
    );
}

#[test]
fn a_second_401_in_the_same_attempt_is_its_answer() {
    let script = vec![
        Script::Answer(response(401)),
        Script::Refresh(Duration::ZERO, true),
        Script::Answer(response(401)),
    ];
    let (result, driver) = run(plain(), script, true);
    assert_eq!(
        result.unwrap().status(),
        401,
        "a 401 is not retried by default"
    );
    assert_eq!(driver.log.last().map(String::as_str), Some("done 401"));
    assert_eq!(
        driver
            .log
            .iter()
            .filter(|l| l.starts_with("refresh"))
            .count(),
        1
    );
}

#[test]
fn a_failed_or_late_refresh_keeps_the_401() {
    for (takes, ok) in [
        (Duration::from_millis(1), false),
        // Past the 10 s attempt timeout: the credentials came too late for this attempt.
        (Duration::from_secs(11), true),
    ] {
        let script = vec![Script::Answer(response(401)), Script::Refresh(takes, ok)];
        let (result, driver) = run(plain(), script, true);
        assert_eq!(result.unwrap().status(), 401, "{:?}", driver.log);
        assert_eq!(driver.log.len(), 3, "send, refresh, done: {:?}", driver.log);
    }
}

#[test]
fn no_refresh_without_credentials_to_refresh() {
    let (result, driver) = run(plain(), answers(&[401]), false);
    assert_eq!(result.unwrap().status(), 401);
    assert_eq!(driver.log, ["send attempt 1: 401", "done 401"]);
}

#[test]
fn a_retry_if_reads_the_body_prefix_it_asked_for() {
    let mut config = plain();
    config.policy(
        RetryPolicy::builder()
            .max_attempts(3)
            .backoff(Backoff::Constant(Duration::from_millis(100)))
            .jitter(Jitter::None)
            .retry_if_body_prefix(4)
            .retry_if(|ctx| Some(ctx.body_prefix()? == b"busy"))
            .build()
            .unwrap(),
    );
    let script = vec![
        Script::Answer(with_body(200, b"busy, try later")),
        Script::Answer(with_body(200, b"fine")),
    ];
    let (result, driver) = run(config, script, false);
    assert_eq!(result.unwrap().body().text, b"fine");
    assert_eq!(
        driver.log,
        [
            "send attempt 1: 200",
            "prefix: busy",
            "release 200",
            "sleep 100ms",
            "send attempt 2: 200",
            "prefix: fine",
            "done 200",
        ]
    );
}

#[test]
fn a_prefix_read_that_fails_is_the_attempts_failure() {
    let mut config = plain();
    config.policy(
        RetryPolicy::builder()
            .max_attempts(2)
            .backoff(Backoff::Constant(Duration::from_millis(100)))
            .jitter(Jitter::None)
            .retry_if_body_prefix(16)
            .build()
            .unwrap(),
    );
    let script = vec![
        Script::Answer(with_body(200, b"cut")),
        Script::PrefixFails,
        Script::Answer(with_body(200, b"whole")),
    ];
    let (result, driver) = run(config, script, false);
    assert_eq!(result.unwrap().body().text, b"whole");
    assert_eq!(
        driver.log,
        [
            "send attempt 1: 200",
            "prefix: reset",
            "sleep 100ms",
            "send attempt 2: 200",
            "prefix: whole",
            "done 200",
        ],
        "nothing to release: the failed attempt's response is gone"
    );
}

#[test]
fn a_401_refreshed_then_read_for_its_prefix_when_the_refresh_fails() {
    let mut config = plain();
    config.policy(
        RetryPolicy::builder()
            .max_attempts(2)
            .retry_if_body_prefix(8)
            .build()
            .unwrap(),
    );
    let script = vec![
        Script::Answer(with_body(401, b"expired")),
        Script::Refresh(Duration::ZERO, false),
    ];
    let (result, driver) = run(config, script, true);
    assert_eq!(result.unwrap().status(), 401);
    assert_eq!(
        driver.log,
        [
            "send attempt 1: 401",
            "refresh: false, in time: true",
            "prefix: expired",
            "done 401",
        ]
    );
}

#[test]
fn a_transport_failure_is_retried_after_the_backoff() {
    let script = vec![
        Script::Fails(TransportErrorKind::Connect),
        Script::Answer(response(200)),
    ];
    let (result, driver) = run(plain(), script, false);
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(
        driver.log,
        [
            "send attempt 1: connection refused",
            "sleep 100ms",
            "send attempt 2: 200",
            "done 200",
        ]
    );
}

fn redirect(status: u16, location: &str) -> http::Response<FakeBody> {
    let mut r = response(status);
    r.headers_mut()
        .insert("location", location.parse().unwrap());
    r
}

/// Runs `method url` with `Authorization` under `config` against `script`.
fn run_request(
    config: ClientConfig,
    method: http::Method,
    url: &str,
    script: Vec<Script>,
) -> (
    Result<http::Response<FakeBody>, Error<FakeBody>>,
    FakeDriver,
    http::request::Parts,
) {
    let core = config.build().unwrap();
    let mut draft: RequestDraft<FakeBody> = RequestDraft::new(&core, method, url);
    draft.header("authorization", "Bearer secret");
    draft.header("content-type", "text/plain");
    let (mut parts, policy) = draft.finish(&core, Some(4)).unwrap();
    let mut driver = FakeDriver::new(script);
    let mut call = core.start_call(policy.as_deref(), &mut parts, true, true, driver.now);
    let result = driver.run(&mut call, &mut parts);
    drop(call);
    (result, driver, parts)
}

#[test]
fn a_redirect_to_another_origin_drops_credentials_for_the_rest_of_the_chain() {
    let script = vec![
        Script::Answer(redirect(302, "http://other.test:8080/b")),
        Script::Answer(redirect(307, "http://127.0.0.1/c")),
        Script::Answer(response(200)),
    ];
    let (result, driver, parts) =
        run_request(plain(), http::Method::GET, "http://127.0.0.1/a", script);
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(
        driver.log,
        [
            "send attempt 1: 302",
            "redirect: GET http://other.test:8080/b, drop body: false, authorization: false, \
             credentials: false",
            "release 302",
            "send attempt 1: 307",
            "redirect: GET http://127.0.0.1/c, drop body: false, authorization: false, \
             credentials: false",
            "release 307",
            "send attempt 1: 200",
            "done 200",
        ],
        "back at the first origin, the credentials stay dropped"
    );
    assert_eq!(parts.uri, "http://127.0.0.1/c");
}

#[test]
fn a_same_origin_redirect_keeps_credentials_and_a_303_turns_a_post_into_a_get() {
    let script = vec![
        Script::Answer(redirect(303, "/done?x=1")),
        Script::Answer(response(200)),
    ];
    let (result, driver, parts) = run_request(
        plain(),
        http::Method::POST,
        "http://127.0.0.1/submit",
        script,
    );
    assert_eq!(result.unwrap().status(), 200);
    assert_eq!(
        driver.log[1],
        "redirect: GET http://127.0.0.1/done?x=1, drop body: true, authorization: true, \
         credentials: true"
    );
    assert!(
        !parts.headers.contains_key("content-type"),
        "the body's headers went with it"
    );
    assert!(!parts.headers.contains_key("content-length"));
}

#[test]
fn loops_and_long_chains_fail_naming_the_chain_and_keep_the_3xx() {
    let script = vec![
        Script::Answer(redirect(302, "http://b.test/")),
        Script::Answer(redirect(302, "http://a.test/")),
    ];
    let (result, _, _) = run_request(plain(), http::Method::GET, "http://a.test/", script);
    let error = result.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Redirect(resil_core::RedirectRefusal::Loop)
    );
    assert_eq!(error.status(), Some(302));
    assert_eq!(
        format!("{error:#}"),
        "GET http://b.test/: redirect not followed: a redirect loop \
         (http://a.test/ -> http://b.test/ -> http://a.test/)"
    );

    let mut config = plain();
    config.redirects(resil_core::RedirectPolicy::follow(2));
    let script = (0..3)
        .map(|i| Script::Answer(redirect(301, &format!("/hop{i}"))))
        .collect();
    let (result, _, _) = run_request(config, http::Method::GET, "http://a.test/", script);
    let error = result.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Redirect(resil_core::RedirectRefusal::TooManyHops { max: 2 })
    );
}

#[test]
fn with_redirects_off_the_3xx_is_the_answer() {
    let mut config = plain();
    config.redirects(resil_core::RedirectPolicy::none());
    let script = vec![Script::Answer(redirect(302, "/elsewhere"))];
    let (result, driver, _) = run_request(config, http::Method::GET, "http://a.test/", script);
    assert_eq!(result.unwrap().status(), 302);
    assert_eq!(driver.log, ["send attempt 1: 302", "done 302"]);
}

#[test]
fn redirects_are_counted_apart_from_retries() {
    let config = plain();
    let core = config.build().unwrap();
    let draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://a.test/");
    let (mut parts, _) = draft.finish(&core, Some(0)).unwrap();
    let mut driver = FakeDriver::new(vec![
        Script::Answer(response(503)),
        Script::Answer(redirect(302, "/b")),
        Script::Answer(response(200)),
    ]);
    let mut call = core.start_call(None, &mut parts, true, false, driver.now);
    driver.run(&mut call, &mut parts).unwrap();
    drop(call);
    let stats = core.stats();
    assert_eq!((stats.requests, stats.attempts), (1, 3));
    assert_eq!((stats.total_retries(), stats.redirects), (1, 1));
    assert_eq!((stats.successes, stats.failures), (1, 0));
}

#[test]
fn each_hop_reports_to_its_own_origins_breaker() {
    use resil_core::{BreakerState, CircuitBreaker, TripCondition};
    let mut config = plain();
    config.max_retries(0);
    // A bare 503 is a breaker failure only without limiters (with them it is back pressure).
    config.no_limiters();
    config
        .breaker_per_origin(CircuitBreaker::builder().trip(TripCondition::ConsecutiveFailures(1)));
    let core = config.build().unwrap();
    let draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://a.test/");
    let (mut parts, _) = draft.finish(&core, Some(0)).unwrap();
    let mut driver = FakeDriver::new(vec![
        Script::Answer(redirect(302, "http://b.test/")),
        Script::Answer(response(503)),
    ]);
    let mut call = core.start_call(None, &mut parts, true, false, driver.now);
    let error = driver.run(&mut call, &mut parts).unwrap_err();
    drop(call);
    assert_eq!(error.status(), Some(503));
    let mut states = core.origin_breaker_states();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        states,
        [
            ("http://a.test".to_owned(), BreakerState::Closed),
            ("http://b.test".to_owned(), BreakerState::Open),
        ],
        "the 302 was a success at a.test, the 503 a failure at b.test"
    );
}

/// What hooks saw of the breaker: its transitions (enforced or not) and the causes that
/// opened the breakers that refused calls.
#[derive(Default)]
struct BreakerHooks {
    seen: std::sync::Mutex<Vec<String>>,
}

impl resil_http::Hooks for BreakerHooks {
    fn on_breaker(&self, _: &resil_http::CallInfo<'_>, t: resil_core::Transition) {
        let line = format!("{} -> {} (enforced: {})", t.from, t.to, t.enforced);
        self.seen.lock().unwrap().push(line);
    }
    fn on_failure(&self, _: &resil_http::CallInfo<'_>, g: &resil_core::GiveUp) {
        self.seen.lock().unwrap().push(format!("failure: {g}"));
    }
}

/// A metrics-only breaker's transitions and an enforcing breaker's rejection reach hooks and
/// statistics as every driver reports them: through the call's observer.
#[test]
fn breaker_modes_and_the_cause_that_opened_it_reach_hooks_and_stats() {
    use std::sync::{Arc, Mutex};

    use resil_core::{BreakerMode, Cause, CircuitBreaker, GiveUpReason, TripCondition};

    let run_with = |mode: BreakerMode| {
        let hooks = Arc::new(BreakerHooks::default());
        let breaker = CircuitBreaker::builder()
            .trip(TripCondition::ConsecutiveFailures(1))
            .mode(mode)
            .build()
            .unwrap();
        let mut config = plain();
        config.max_retries(0);
        // A bare 503 is a breaker failure only without limiters (with them it is back pressure).
        config.no_limiters();
        config.breaker(Arc::new(Mutex::new(breaker)));
        config.hooks(hooks.clone());
        let core = config.build().unwrap();
        let mut outcomes = Vec::new();
        for status in [503, 200] {
            let draft: RequestDraft<FakeBody> =
                RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
            let (mut parts, _) = draft.finish(&core, Some(0)).unwrap();
            let mut call =
                core.start_call::<FakeBody>(None, &mut parts, true, false, Instant::ZERO);
            let outcome = match call.poll_step(&mut parts) {
                Step::Send { attempt, .. } => {
                    call.handle_response(Instant::ZERO, attempt, response(status), wall);
                    match call.poll_step(&mut parts) {
                        Step::Done(r) => Ok(r.status().as_u16()),
                        Step::Fail(e) => Err(e),
                        _ => panic!("a single attempt"),
                    }
                }
                Step::Fail(e) => Err(e),
                _ => panic!("expected a send or a refusal"),
            };
            outcomes.push(outcome);
        }
        let seen = hooks.seen.lock().unwrap().clone();
        (outcomes, seen, core.stats())
    };

    let (outcomes, seen, stats) = run_with(BreakerMode::MetricsOnly);
    assert!(
        matches!(outcomes[1], Ok(200)),
        "a metrics-only breaker admits"
    );
    assert!(
        seen.contains(&"closed -> open (enforced: false)".to_owned()),
        "{seen:?}"
    );
    assert_eq!(stats.breaker_transitions, 1);
    assert_eq!(stats.breaker_rejections, 0);

    let (outcomes, seen, stats) = run_with(BreakerMode::Enforcing);
    let refused = outcomes[1].as_ref().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CircuitOpen);
    assert!(matches!(
        refused.give_up().map(|g| g.reason),
        Some(GiveUpReason::CircuitOpen {
            opened_by: Some(Cause::Status(503)),
            ..
        })
    ));
    assert!(
        seen.iter()
            .any(|l| l.contains("the circuit breaker is open, opened by status 503")),
        "{seen:?}"
    );
    assert_eq!(stats.breaker_rejections, 1);
}

/// A fleet link that records what it was given and how often it was woken.
#[derive(Debug, Default)]
struct FakeFleet {
    joined: std::sync::Mutex<Vec<resil_http::FleetMember>>,
    wakes: std::sync::Arc<std::sync::atomic::AtomicU32>,
    refuse: bool,
}

#[derive(Debug)]
struct FakeMembership(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl resil_http::FleetMembership for FakeMembership {
    fn wake(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl resil_http::FleetLink for FakeFleet {
    fn join(
        &self,
        member: resil_http::FleetMember,
    ) -> Result<std::sync::Arc<dyn resil_http::FleetMembership>, resil_http::BoxError> {
        if self.refuse {
            return Err("no such fleet".into());
        }
        self.joined.lock().unwrap().push(member);
        Ok(std::sync::Arc::new(FakeMembership(self.wakes.clone())))
    }
}

#[test]
fn a_fleet_is_joined_with_the_breaker_and_budget_and_woken_on_each_transition() {
    let fleet = std::sync::Arc::new(FakeFleet::default());
    let breaker = resil_core::CircuitBreaker::builder()
        .trip(resil_core::TripCondition::ConsecutiveFailures(2))
        .build()
        .unwrap();
    let breaker = std::sync::Arc::new(std::sync::Mutex::new(breaker));
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.breaker(breaker.clone());
    config.seed(1);
    config.fleet(fleet.clone());
    let (result, _) = run(config, answers(&[500, 500]), false);
    assert!(result.is_err());
    let joined = fleet.joined.lock().unwrap();
    assert_eq!(joined.len(), 1);
    assert!(std::sync::Arc::ptr_eq(
        joined[0].breaker.as_ref().unwrap(),
        &breaker
    ));
    assert!(
        joined[0].budget.is_some(),
        "the default budget is shared too"
    );
    assert_eq!(
        fleet.wakes.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "woken once, by the trip"
    );
    joined[0].stats.fleet_sync(false);
    joined[0]
        .stats
        .fleet_event(&resil_core::FleetEvent::Degraded);
    let stats = joined[0].stats.snapshot();
    assert_eq!((stats.fleet_sync_failures, stats.fleet_degraded), (1, 1));
    assert!(stats.to_string().contains("1 time alone without the fleet"));
}

#[test]
fn a_fleet_refuses_a_breaker_per_origin_and_build_names_a_link_that_refuses() {
    let mut config = ClientConfig::default();
    config.breaker_per_origin(resil_core::CircuitBreaker::builder());
    config.fleet(std::sync::Arc::new(FakeFleet::default()));
    let e = config.build().unwrap_err();
    assert!(e.to_string().contains("fleet"), "{e}");
    let mut config = ClientConfig::default();
    config.fleet(std::sync::Arc::new(FakeFleet {
        refuse: true,
        ..FakeFleet::default()
    }));
    let e = config.build().unwrap_err();
    assert!(e.to_string().contains("fleet: no such fleet"), "{e}");
}
