//! The `otel` feature with the real SDK (in-memory exporters) and tracing-opentelemetry,
//! driven by a fake network on a fake clock: the spans, their attributes and parent/child
//! links, the metric points, and the trace context each attempt carries, for a success,
//! retries, a give-up, a breaker rejection, a hedge, a redirect and a dropped call; canary
//! secrets never reach an attribute.
#![cfg(feature = "otel")]

use std::collections::VecDeque;
use std::time::Duration;

use resil_core::{Attempt, Backoff, CircuitBreaker, Hedging, Instant, Jitter, RetryPolicy};
use resil_http::{CallBody, ClientConfig, Error, RequestDraft, Step};
use resil_tests::{
    CANARY_HEADER, CANARY_HEADER_NAME, Telemetry, TelemetryRecord, canary_url, open_sketch,
};

#[derive(Debug, Default)]
struct Body;

impl CallBody for Body {
    fn set_limit(&mut self, _: u64) {}
}

/// One scripted answer: after `after`, a status (with a `Location` for a 3xx).
#[derive(Clone, Copy)]
struct Answer {
    after: Duration,
    status: u16,
    location: Option<&'static str>,
}

fn answer(ms: u64, status: u16) -> Answer {
    Answer {
        after: Duration::from_millis(ms),
        status,
        location: None,
    }
}

/// A network where each attempt gets the next scripted answer after its delay, several
/// attempts may be out at once (a hedging call), and the clock jumps to the next event.
struct FakeNet {
    now: Instant,
    script: VecDeque<Answer>,
    out: Vec<(Attempt, Instant, Answer)>,
    /// Every attempt's request headers, in order.
    sent: Vec<http::HeaderMap>,
}

impl FakeNet {
    fn new(script: &[Answer]) -> FakeNet {
        FakeNet {
            now: Instant::ZERO,
            script: script.iter().copied().collect(),
            out: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn respond(&self, a: Answer) -> http::Response<Body> {
        let mut builder = http::Response::builder().status(a.status);
        if let Some(location) = a.location {
            builder = builder.header("location", location);
        }
        builder.body(Body).unwrap()
    }

    fn run(
        &mut self,
        call: &mut resil_http::Call<'_, Body>,
        parts: &mut http::request::Parts,
    ) -> Result<http::Response<Body>, Error<Body>> {
        loop {
            match call.poll_step(parts) {
                Step::Send { attempt, .. } => {
                    let request = call.request(parts, ());
                    self.sent.push(request.headers().clone());
                    let a = self.script.pop_front().expect("an answer per attempt");
                    self.out.push((attempt, self.now + a.after, a));
                    if !call.hedges() {
                        self.deliver_next(call, None);
                    }
                }
                Step::Sleep { until } => self.deliver_next(call, Some(until)),
                Step::Cancel { attempt } => self.out.retain(|(a, _, _)| *a != attempt),
                Step::Done(r) => return Ok(r),
                Step::Fail(e) => return Err(e),
                Step::Release(_) | Step::Redirect { .. } => {}
                Step::Refresh { .. } => call.handle_refreshed(self.now, false),
                Step::ReadPrefix { .. } => call.handle_prefix(self.now, b""),
            }
        }
    }

    /// The first answer due by `until` (any, if none), else the timer at `until`.
    fn deliver_next(&mut self, call: &mut resil_http::Call<'_, Body>, until: Option<Instant>) {
        let first = (0..self.out.len()).min_by_key(|i| self.out[*i].1);
        match first {
            Some(i) if until.is_none_or(|u| self.out[i].1 <= u) => {
                let (attempt, at, a) = self.out.remove(i);
                self.now = self.now.max(at);
                let response = self.respond(a);
                call.handle_response(self.now, attempt, response, || resil_core::UnixTime(0));
            }
            _ => {
                if let Some(u) = until {
                    self.now = self.now.max(u);
                }
                call.handle_timeout(self.now);
            }
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Constant(Duration::from_millis(100)))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.policy(policy());
    config.no_budget();
    config.seed(1);
    config
}

/// Runs one call of `method url` (with `headers`) under `config` against `script`, with
/// `telemetry` installed; returns the outcome and the network.
fn call_with(
    telemetry: &Telemetry,
    mut config: ClientConfig,
    url: &str,
    headers: &[(&str, &str)],
    script: &[Answer],
) -> (Result<http::Response<Body>, Error<Body>>, FakeNet) {
    config.otel_meter(telemetry.meter());
    let core = config.build().unwrap();
    let mut net = FakeNet::new(script);
    let result = tracing::dispatcher::with_default(&telemetry.dispatch(), || {
        let mut draft: RequestDraft<Body> = RequestDraft::new(&core, http::Method::GET, url);
        for (name, value) in headers {
            draft.header(name, value);
        }
        let (mut parts, policy) = draft.finish(&core, Some(0)).unwrap();
        let mut call = core.start_call(policy.as_deref(), &mut parts, true, false, net.now);
        net.run(&mut call, &mut parts)
    });
    (result, net)
}

fn run(config: ClientConfig, script: &[Answer]) -> (TelemetryRecord, FakeNet) {
    let telemetry = Telemetry::new();
    let (_, net) = call_with(
        &telemetry,
        config,
        "http://127.0.0.1:8080/x?page=2",
        &[],
        script,
    );
    (telemetry.recorded(), net)
}

fn traceparent(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

#[test]
fn a_success_is_a_call_span_around_one_client_span_and_one_point_per_metric() {
    let (recorded, net) = run(config(), &[answer(30, 200)]);
    let call = recorded.call();
    assert_eq!(call.kind, "internal");
    assert_eq!(call.parent, "0000000000000000");
    assert_eq!(call.status, "unset");
    assert_eq!(call.attr("http.request.method"), Some("GET"));
    assert_eq!(call.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(call.attr("server.port"), Some("8080"));
    assert_eq!(
        call.attr("url.full"),
        Some("http://127.0.0.1:8080/x?page=REDACTED")
    );
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    assert_eq!(call.attr("resil.attempts"), Some("1"));
    assert_eq!(call.attr("resil.outcome"), Some("success"));
    assert_eq!(call.attr("error.type"), None);

    let attempts = recorded.attempts();
    assert_eq!(attempts.len(), 1);
    let attempt = attempts[0];
    assert_eq!(attempt.name, "GET");
    assert_eq!(attempt.kind, "client");
    assert_eq!(attempt.parent, call.id);
    assert_eq!(attempt.trace, call.trace);
    assert_eq!(attempt.attr("http.response.status_code"), Some("200"));
    assert_eq!(attempt.attr("network.protocol.version"), Some("1.1"));
    assert_eq!(attempt.attr("http.request.resend_count"), None);
    assert_eq!(attempt.attr("resil.attempt.kind"), Some("initial"));
    assert_eq!(attempt.attr("resil.attempt.outcome"), Some("response"));
    assert_eq!(attempt.status, "unset");
    assert_eq!(
        traceparent(&net.sent[0]),
        Some(&*format!("00-{}-{}-01", attempt.trace, attempt.id))
    );

    let duration = recorded.points("http.client.request.duration");
    assert_eq!(duration.len(), 1);
    let point = duration[0];
    assert_eq!(point.unit, "s");
    assert_eq!(point.count, 1);
    assert!(
        (point.sum - 0.030).abs() < 1e-9,
        "the fake clock's 30 ms: {point:?}"
    );
    assert_eq!(
        point.bounds,
        [
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
        ]
    );
    for (key, value) in [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("server.port", "8080"),
        ("url.scheme", "http"),
        ("http.response.status_code", "200"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(point.attr(key), Some(value), "{key}: {point:?}");
    }
    assert_eq!(point.attr("error.type"), None);
    assert_eq!(recorded.count("resil.client.call.duration"), 1);
    let attempts = recorded.points("resil.client.call.attempts");
    assert_eq!((attempts[0].count, attempts[0].sum), (1, 1.0));
    assert!(recorded.points("resilience.event").is_empty());
}

#[test]
fn each_retry_is_a_client_span_with_its_resend_count_and_its_own_traceparent() {
    let (recorded, net) = run(config(), &[answer(5, 503), answer(5, 503), answer(5, 200)]);
    let call = recorded.call();
    let attempts = recorded.attempts();
    assert_eq!(attempts.len(), 3);
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.parent, call.id);
        assert_eq!(
            traceparent(&net.sent[i]),
            Some(&*format!("00-{}-{}-01", call.trace, attempt.id)),
            "attempt {i} carries its own span's context"
        );
    }
    let resends: Vec<_> = attempts
        .iter()
        .map(|a| a.attr("http.request.resend_count"))
        .collect();
    assert_eq!(resends, [None, Some("1"), Some("2")]);
    let kinds: Vec<_> = attempts
        .iter()
        .map(|a| a.attr("resil.attempt.kind"))
        .collect();
    assert_eq!(kinds, [Some("initial"), Some("retry"), Some("retry")]);
    assert_eq!(attempts[0].attr("error.type"), Some("503"));
    assert_eq!(attempts[0].status, "error");
    assert_eq!(call.attr("resil.retries"), Some("2"));
    let retries: Vec<_> = call
        .events
        .iter()
        .filter(|(name, _)| name == "resil.retry")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].1["resil.retry.reason"], "status_5xx");
    assert_eq!(retries[0].1["resil.retry.delay"], "0.1");
    assert_eq!(retries[0].1["resil.attempt.number"], "1");
    assert_eq!(recorded.count("http.client.request.duration"), 3);
    let by_status: Vec<_> = recorded
        .points("http.client.request.duration")
        .iter()
        .map(|p| {
            (
                p.attr("http.response.status_code").unwrap().to_owned(),
                p.count,
            )
        })
        .collect();
    assert!(by_status.contains(&("503".to_owned(), 2)), "{by_status:?}");
    assert!(by_status.contains(&("200".to_owned(), 1)), "{by_status:?}");
    assert_eq!(recorded.events("retry"), 2);
    let retry = recorded.points("resilience.event")[0];
    assert_eq!(retry.attr("resilience.strategy.name"), Some("retry"));
    assert_eq!(
        retry.attr("resilience.attempt.recovery.kind"),
        Some("status_5xx")
    );
    let call_duration = recorded.points("resil.client.call.duration")[0];
    assert!(
        (call_duration.sum - 0.215).abs() < 1e-9,
        "{call_duration:?}"
    );
}

#[test]
fn a_give_up_ends_the_call_span_with_the_last_status_as_its_error_type() {
    let (recorded, _) = run(config(), &[answer(5, 500), answer(5, 500), answer(5, 500)]);
    let call = recorded.call();
    assert_eq!(call.status, "error");
    assert_eq!(call.attr("error.type"), Some("500"));
    assert_eq!(
        call.attr("resil.give_up.reason"),
        Some("attempts_exhausted")
    );
    assert_eq!(call.attr("resil.outcome"), Some("failure"));
    let point = recorded.points("resil.client.call.attempts")[0];
    assert_eq!((point.sum, point.attr("error.type")), (3.0, Some("500")));
}

#[test]
fn a_breaker_rejection_is_a_call_span_without_attempts_and_counted_events() {
    let telemetry = Telemetry::new();
    let breaker = CircuitBreaker::builder()
        .trip(resil_core::TripCondition::ConsecutiveFailures(2))
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let breaker = std::sync::Arc::new(std::sync::Mutex::new(breaker));
    let url = "http://127.0.0.1:8080/x";
    let with_breaker = || {
        let mut config = config();
        config.breaker(breaker.clone());
        config
    };
    // Two failing attempts open it (the retry after them is rejected); the next call is
    // rejected without an attempt.
    let (first, _) = call_with(
        &telemetry,
        with_breaker(),
        url,
        &[],
        &[answer(5, 503), answer(5, 503)],
    );
    assert!(first.is_err());
    let (result, net) = call_with(&telemetry, with_breaker(), url, &[], &[]);
    assert!(result.is_err());
    assert!(net.sent.is_empty());
    let recorded = telemetry.recorded();
    let calls = recorded.spans_named("resil.call");
    assert_eq!(calls.len(), 2);
    let opened = calls[0];
    assert!(
        opened
            .events
            .iter()
            .any(|(n, a)| n == "resil.breaker.transition" && a["resil.breaker.to"] == "open"),
        "{opened:?}"
    );
    let rejected = calls[1];
    assert_eq!(rejected.attr("error.type"), Some("circuit_open"));
    assert_eq!(rejected.attr("resil.attempts"), Some("0"));
    assert_eq!(rejected.event_names(), ["resil.breaker.rejected"]);
    assert!(recorded.attempts().iter().all(|a| a.parent == opened.id));
    assert_eq!(recorded.events("circuit_opened"), 1);
    assert_eq!(
        recorded.events("circuit_rejected"),
        2,
        "the first call's retry, the second call"
    );
    let state = recorded.points("resil.client.breaker.state");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].sum, 2.0, "open");
    assert_eq!(state[0].attr("server.address"), Some("127.0.0.1"));
}

#[test]
fn a_hedge_is_a_client_span_of_its_own_and_the_loser_ends_cancelled() {
    let mut config = config();
    let hedged = RetryPolicy::builder()
        .hedge(Hedging::fixed(Duration::from_millis(40)))
        .attempt_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap();
    config.policy(hedged);
    config.latency_sketch(open_sketch());
    // The first answers after 500 ms, the hedge (sent at 40 ms) after 10 ms.
    let (recorded, net) = run(config, &[answer(500, 200), answer(10, 200)]);
    let call = recorded.call();
    let attempts = recorded.attempts();
    assert_eq!(attempts.len(), 2, "{:#?}", recorded.summary());
    let (first, hedge) = (attempts[0], attempts[1]);
    assert_eq!(hedge.attr("resil.attempt.kind"), Some("hedge"));
    assert_eq!(hedge.attr("http.request.resend_count"), Some("1"));
    assert_eq!(hedge.attr("resil.attempt.outcome"), Some("response"));
    assert_eq!(first.attr("resil.attempt.outcome"), Some("cancelled"));
    assert_eq!(first.status, "unset", "a lost hedge race is no error");
    assert_eq!(first.attr("http.response.status_code"), None);
    assert!(first.parent == call.id && hedge.parent == call.id);
    assert_ne!(traceparent(&net.sent[0]), traceparent(&net.sent[1]));
    assert_eq!(
        traceparent(&net.sent[1]),
        Some(&*format!("00-{}-{}-01", call.trace, hedge.id))
    );
    assert_eq!(call.attr("resil.hedges"), Some("1"));
    assert_eq!(
        call.event_names(),
        ["resil.hedge", "resil.hedge.won", "resil.attempt.cancelled"]
    );
    assert_eq!(recorded.events("hedge"), 1);
    assert_eq!(recorded.events("hedge_won"), 1);
    assert_eq!(recorded.events("attempt_cancelled"), 1);
    assert_eq!(
        recorded.events("retry"),
        0,
        "hedges are counted apart from retries"
    );
    let cancelled = recorded
        .points("http.client.request.duration")
        .into_iter()
        .find(|p| p.attr("error.type") == Some("cancelled"))
        .expect("the loser's duration, as cancelled");
    assert!((cancelled.sum - 0.050).abs() < 1e-9, "{cancelled:?}");
}

#[test]
fn a_redirect_hop_is_an_attempt_of_kind_redirect_and_an_event() {
    let moved = Answer {
        after: Duration::from_millis(5),
        status: 302,
        location: Some("http://127.0.0.2:9090/y"),
    };
    let (recorded, _) = run(config(), &[moved, answer(5, 200)]);
    let call = recorded.call();
    let attempts = recorded.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].attr("http.response.status_code"), Some("302"));
    assert_eq!(attempts[1].attr("resil.attempt.kind"), Some("redirect"));
    assert_eq!(attempts[1].attr("http.request.resend_count"), Some("1"));
    assert_eq!(attempts[1].attr("server.address"), Some("127.0.0.2"));
    assert_eq!(attempts[1].attr("resil.redirect.hop"), Some("1"));
    assert_eq!(call.attr("resil.redirects"), Some("1"));
    assert_eq!(call.event_names(), ["resil.redirect"]);
    assert_eq!(recorded.events("redirect"), 1);
    let hosts: Vec<_> = recorded
        .points("http.client.request.duration")
        .iter()
        .map(|p| p.attr("server.address").unwrap().to_owned())
        .collect();
    assert_eq!(hosts.len(), 2, "one series per host: {hosts:?}");
}

#[test]
fn canary_secrets_in_userinfo_query_and_headers_never_reach_telemetry() {
    let telemetry = Telemetry::new();
    let url = canary_url("http://127.0.0.1:8080/x?page=2");
    let headers = [(CANARY_HEADER_NAME, CANARY_HEADER)];
    let (result, net) = call_with(
        &telemetry,
        config(),
        &url,
        &headers,
        &[answer(5, 503), answer(5, 200)],
    );
    assert_eq!(result.unwrap().status(), 200);
    assert!(
        net.sent[0].contains_key("authorization"),
        "the credentials were sent"
    );
    let recorded = telemetry.recorded();
    recorded.assert_no_canary();
    assert_eq!(
        recorded.call().attr("url.full"),
        Some("http://127.0.0.1:8080/x?page=REDACTED&session=REDACTED")
    );
}

#[test]
fn without_a_subscriber_nothing_is_recorded_and_no_traceparent_is_sent() {
    let mut config = config();
    let telemetry = Telemetry::new();
    config.otel_meter(telemetry.meter());
    let core = config.build().unwrap();
    let mut net = FakeNet::new(&[answer(5, 200)]);
    let draft: RequestDraft<Body> =
        RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
    let (mut parts, policy) = draft.finish(&core, Some(0)).unwrap();
    let mut call = core.start_call(policy.as_deref(), &mut parts, true, false, net.now);
    net.run(&mut call, &mut parts).unwrap();
    assert!(net.sent[0].get("traceparent").is_none());
    let recorded = telemetry.recorded();
    assert!(recorded.spans.is_empty());
    // Metrics do not need a subscriber.
    assert_eq!(recorded.count("http.client.request.duration"), 1);
}

#[test]
fn an_attempt_out_when_the_call_is_dropped_ends_abandoned_and_is_counted() {
    let telemetry = Telemetry::new();
    let mut config = config();
    config.otel_meter(telemetry.meter());
    let core = config.build().unwrap();
    tracing::dispatcher::with_default(&telemetry.dispatch(), || {
        let draft: RequestDraft<Body> =
            RequestDraft::new(&core, http::Method::GET, "http://127.0.0.1/x");
        let (mut parts, policy) = draft.finish(&core, Some(0)).unwrap();
        let mut call =
            core.start_call::<Body>(policy.as_deref(), &mut parts, true, false, Instant::ZERO);
        assert!(matches!(call.poll_step(&mut parts), Step::Send { .. }));
        drop(call);
    });
    let recorded = telemetry.recorded();
    let attempt = recorded.attempts()[0];
    assert_eq!(attempt.attr("resil.attempt.outcome"), Some("abandoned"));
    assert_eq!(recorded.call().attr("resil.outcome"), Some("abandoned"));
    assert_eq!(recorded.events("attempt_abandoned"), 1);
}
