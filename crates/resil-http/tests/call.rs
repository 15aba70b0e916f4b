//! `Call`, `ClientConfig` and `RequestDraft` driven with no IO at all: what the blocking and
//! async clients share, checked on its own with a fake clock and scripted responses.

use std::time::Duration;

use resil_core::{Backoff, Instant, Jitter, RetryPolicy, TransportErrorKind, UnixTime};
use resil_http::{CallBody, ClientConfig, Error, ErrorKind, RequestDraft, Step};

/// A response body that only remembers the limit it was given.
#[derive(Debug, Default)]
struct FakeBody {
    limit: Option<u64>,
}

impl CallBody for FakeBody {
    fn set_limit(&mut self, limit: u64) {
        self.limit = Some(limit);
    }
}

fn response(status: u16) -> http::Response<FakeBody> {
    let mut r = http::Response::new(FakeBody::default());
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

/// Runs a call to completion against `statuses` (one per attempt), jumping a fake clock
/// through every wait; returns the final step and how many stale responses were handed back.
fn drive(
    mut config: ClientConfig,
    statuses: &[u16],
) -> (
    Result<http::Response<FakeBody>, Error<FakeBody>>,
    usize,
    Duration,
) {
    config.generate_request_ids(true);
    let core = config.build().unwrap();
    let draft: RequestDraft<FakeBody> =
        RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
    let (mut parts, policy) = draft.finish(&core, Some(0)).unwrap();
    let start = Instant::ZERO;
    let mut now = start;
    let mut call = core.start_call(policy.as_deref(), &mut parts, true, now);
    let mut statuses = statuses.iter();
    let mut stale = 0;
    let mut ids = Vec::new();
    loop {
        match call.next(&parts) {
            Step::Send { attempt, .. } => {
                let sent = resil_http::driver::attempt_request(&parts, call.attempt_id(), ());
                ids.push(sent.headers()["x-request-id"].clone());
                assert!(
                    ids.iter().all(|id| *id == ids[0]),
                    "one id per call: {ids:?}"
                );
                if call.stale_response().is_some() {
                    stale += 1;
                    call.discard_stale();
                }
                now = now + Duration::from_millis(5);
                let status = *statuses.next().expect("more attempts than scripted");
                call.response(now, attempt, response(status), None, wall);
            }
            Step::Sleep { until } => {
                if call.stale_response().is_some() {
                    stale += 1;
                    call.discard_stale();
                }
                now = until;
                call.timer(now);
            }
            Step::Done(r) => return (Ok(r), stale, now.saturating_duration_since(start)),
            Step::Fail(e) => return (Err(e), stale, now.saturating_duration_since(start)),
        }
    }
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
    assert_eq!(
        stale, 2,
        "each retried response was handed back to be drained"
    );
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
    let mut call = core.start_call::<FakeBody>(None, &mut parts, true, Instant::ZERO);
    let Step::Send { attempt, .. } = call.next(&parts) else {
        panic!("expected a send");
    };
    call.error(
        Instant::ZERO,
        attempt,
        TransportErrorKind::Connect,
        "connection refused".into(),
    );
    let Step::Fail(error) = call.next(&parts) else {
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

#[test]
fn a_breaker_per_origin_trips_for_the_failing_origin_only() {
    use resil_core::{BreakerState, CircuitBreaker, TripCondition};
    const MAX_ORIGIN_BREAKERS: usize = ClientConfig::MAX_ORIGIN_BREAKERS;

    let mut config = ClientConfig::default();
    config.max_retries(0);
    let trip_after_two = CircuitBreaker::builder().trip(TripCondition::ConsecutiveFailures(2));
    config.breaker_per_origin(trip_after_two);
    let core = config.build().unwrap();
    assert!(core.breaker().is_none(), "no one breaker for every origin");
    // One call to `url`, answered with `status` if it is sent; whether it was sent.
    let call = |url: &str, status: u16| {
        let draft: RequestDraft<FakeBody> = RequestDraft::new(&core, http::Method::GET, url);
        let (mut parts, _) = draft.finish(&core, Some(0)).unwrap();
        let mut call = core.start_call::<FakeBody>(None, &mut parts, true, Instant::ZERO);
        match call.next(&parts) {
            Step::Send { attempt, .. } => {
                call.response(Instant::ZERO, attempt, response(status), None, wall);
                true
            }
            Step::Fail(e) => {
                assert_eq!(e.kind(), ErrorKind::CircuitOpen, "{e:#}");
                false
            }
            _ => panic!("expected a send or a refusal"),
        }
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
