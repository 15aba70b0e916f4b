//! OpenTelemetry for one call (feature `otel`): the call's span and one CLIENT span per
//! attempt, the metrics, and the trace context each attempt carries. [`Call`](crate::Call)
//! tells [`CallTelemetry`] what happens at a few points and it does the rest; what it emits
//! is tabled in [`crate::otel`]. Without the feature both types are empty and every method is
//! an empty inline function.
//!
//! Cost without a subscriber or meter provider: a span is a level check (`tracing`'s global
//! maximum level, one atomic load) and nothing else; metrics are recorded on the no-op
//! instruments of the global meter, with attributes built from `&'static str`s and the server
//! address, shared per client (no allocation per call).

#[cfg(feature = "otel")]
pub(crate) use on::{CallTelemetry, ClientTelemetry};

#[cfg(not(feature = "otel"))]
pub(crate) use off::{CallTelemetry, ClientTelemetry};

#[cfg(not(feature = "otel"))]
mod off {
    use resil_core::{Attempt, Event, Instant, TransportErrorKind};

    use crate::call::Step;
    use crate::config::ClientCore;

    /// Nothing to keep without the feature (a field, so both builds construct it by `default()`).
    #[derive(Debug, Default)]
    pub(crate) struct ClientTelemetry(());

    /// Nothing to keep without the feature.
    #[derive(Debug)]
    pub(crate) struct CallTelemetry<'p>(core::marker::PhantomData<&'p ClientCore>);

    impl<'p> CallTelemetry<'p> {
        #[inline(always)]
        pub(crate) fn start(
            _: &'p ClientCore,
            _: &http::request::Parts,
            _: Instant,
            _: Option<&crate::observe::BodyFailure>,
        ) -> CallTelemetry<'p> {
            CallTelemetry(core::marker::PhantomData)
        }
        #[inline(always)]
        pub(crate) fn is_on(&self) -> bool {
            false
        }
        #[inline(always)]
        pub(crate) fn event(&mut self, _: &Event, _: Instant) {}
        #[inline(always)]
        pub(crate) fn step<B>(&mut self, _: &Step<B>, _: &http::request::Parts, _: Instant) {}
        #[inline(always)]
        pub(crate) fn response(&mut self, _: Instant, _: Attempt, _: &http::Response<impl Sized>) {}
        #[inline(always)]
        pub(crate) fn error(&mut self, _: Instant, _: Attempt, _: TransportErrorKind) {}
        #[inline(always)]
        pub(crate) fn timeout(&mut self, _: Instant, _: impl Fn(Attempt) -> bool) {}
        #[inline(always)]
        pub(crate) fn inject(&self, _: &mut http::HeaderMap) {}
    }
}

#[cfg(feature = "otel")]
mod on {
    use std::borrow::Cow;
    use std::boxed::Box;
    use std::fmt;
    use std::string::String;
    use std::sync::{Mutex, OnceLock, PoisonError};
    use std::vec::Vec;

    use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
    use opentelemetry::{InstrumentationScope, KeyValue, StringValue};
    use resil_core::{
        Attempt, BreakerState, Cause, Event, GiveUp, GiveUpReason, Instant, TransportErrorKind,
    };
    use tracing::Span;
    use tracing::field::Empty;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::call::Step;
    use crate::config::ClientCore;
    use crate::error::ErrorKind;
    use crate::observe::{BodyFailure, RetryReason};

    /// `http.client.request.duration`'s bucket boundaries, in seconds (the HTTP metrics
    /// conventions' advice); resil's call duration uses them too.
    pub(crate) const DURATION_BUCKETS: [f64; 14] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];

    /// `resil.client.call.attempts`' bucket boundaries.
    pub(crate) const ATTEMPT_BUCKETS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 16.0];

    /// A client's instruments, made on first use from its meter (the global meter provider's
    /// `resil` meter unless the client was given one), and the server address it last called.
    pub(crate) struct ClientTelemetry {
        meter: Option<Meter>,
        /// `None` inside: the global provider was the no-op one when the client first
        /// needed its instruments, so they would be no-ops too and nothing is measured.
        instruments: OnceLock<Option<Instruments>>,
        /// The last `server.address`, shared by every call to it: a call to the same host
        /// clones a reference count instead of allocating the name.
        host: Mutex<Option<StringValue>>,
    }

    impl fmt::Debug for ClientTelemetry {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ClientTelemetry")
                .field("own_meter", &self.meter.is_some())
                .finish_non_exhaustive()
        }
    }

    impl Default for ClientTelemetry {
        fn default() -> Self {
            ClientTelemetry::new(None)
        }
    }

    struct Instruments {
        request_duration: Histogram<f64>,
        call_duration: Histogram<f64>,
        call_attempts: Histogram<u64>,
        events: Counter<u64>,
        breaker_state: Gauge<i64>,
    }

    impl ClientTelemetry {
        /// Instruments from `meter`, or from the global provider's `resil` meter.
        pub(crate) fn new(meter: Option<Meter>) -> ClientTelemetry {
            ClientTelemetry {
                meter,
                instruments: OnceLock::new(),
                host: Mutex::new(None),
            }
        }

        /// The instruments; `None` when they could only be no-ops.
        #[inline]
        fn instruments(&self) -> Option<&Instruments> {
            self.instruments
                .get_or_init(|| match &self.meter {
                    Some(meter) => Some(Instruments::new(meter)),
                    None => {
                        let provider = opentelemetry::global::meter_provider();
                        // The global provider until an application sets one is the API's
                        // `NoopMeterProvider`, the one zero-sized provider: its instruments
                        // record nothing, and instruments made from it stay no-ops even after
                        // a provider is set. Skipping them (and building their attributes)
                        // is what keeps the feature free without a provider.
                        if std::mem::size_of_val(&*provider) == 0 {
                            return None;
                        }
                        let scope = InstrumentationScope::builder("resil")
                            .with_version(env!("CARGO_PKG_VERSION"))
                            .build();
                        Some(Instruments::new(&provider.meter_with_scope(scope)))
                    }
                })
                .as_ref()
        }

        /// `host` as an attribute value, shared with the calls before if they went there too.
        fn host(&self, host: &str) -> StringValue {
            let mut last = self.host.lock().unwrap_or_else(PoisonError::into_inner);
            match &*last {
                Some(value) if value.as_str() == host => value.clone(),
                _ => {
                    let value = StringValue::from(std::sync::Arc::<str>::from(host));
                    *last = Some(value.clone());
                    value
                }
            }
        }
    }

    impl Instruments {
        fn new(meter: &Meter) -> Instruments {
            Instruments {
                request_duration: meter
                    .f64_histogram("http.client.request.duration")
                    .with_unit("s")
                    .with_description("Duration of HTTP client requests (one per attempt).")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                call_duration: meter
                    .f64_histogram("resil.client.call.duration")
                    .with_unit("s")
                    .with_description(
                        "Duration of resil calls: every attempt, backoff and redirect of one request.",
                    )
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                call_attempts: meter
                    .u64_histogram("resil.client.call.attempts")
                    .with_unit("{attempt}")
                    .with_description(
                        "Attempts sent per resil call (retries, hedges, redirects and resends included).",
                    )
                    .with_boundaries(ATTEMPT_BUCKETS.to_vec())
                    .build(),
                events: meter
                    .u64_counter("resilience.event")
                    .with_unit("{event}")
                    .with_description(
                        "Resilience events: retries, hedges, breaker transitions and rejections, budget refusals, redirects.",
                    )
                    .build(),
                breaker_state: meter
                    .i64_gauge("resil.client.breaker.state")
                    .with_unit("{state}")
                    .with_description(
                        "Circuit breaker state after its last transition: 0 closed, 1 half-open, 2 open, 3 isolated.",
                    )
                    .build(),
            }
        }
    }

    /// What sent an attempt (`resil.attempt.kind`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Initial,
        Retry,
        Hedge,
        Redirect,
    }

    impl Kind {
        fn as_str(self) -> &'static str {
            match self {
                Kind::Initial => "initial",
                Kind::Retry => "retry",
                Kind::Hedge => "hedge",
                Kind::Redirect => "redirect",
            }
        }
    }

    /// An attempt that was sent and has not ended.
    #[derive(Debug)]
    struct Open {
        attempt: u32,
        started: Instant,
        /// `None` when no subscriber wants it.
        span: Option<Span>,
    }

    /// Where a call's attempts go, as the metrics name it.
    #[derive(Debug, Default)]
    struct Endpoint {
        address: Option<StringValue>,
        port: i64,
        scheme: &'static str,
    }

    /// One call's spans and what its metrics need: nothing (a null pointer) when, as the call
    /// started, no subscriber could want a span and the client's instruments are no-ops; then
    /// every method returns at its first instruction and a call carries one word more.
    pub(crate) struct CallTelemetry<'p>(Option<Box<Inner<'p>>>);

    impl fmt::Debug for CallTelemetry<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("CallTelemetry").field(&self.0).finish()
        }
    }

    impl<'p> CallTelemetry<'p> {
        /// The call `request` starts at `now` (`failed`: it goes on after a body failed).
        #[inline]
        pub(crate) fn start(
            core: &'p ClientCore,
            request: &http::request::Parts,
            now: Instant,
            failed: Option<&BodyFailure>,
        ) -> CallTelemetry<'p> {
            // One atomic load each: tracing's global maximum level (OFF without any
            // subscriber), and whether the client's instruments are real.
            let spans = tracing::level_enabled!(tracing::Level::INFO);
            if !spans && core.telemetry().instruments().is_none() {
                return CallTelemetry(None);
            }
            CallTelemetry(Some(Box::new(Inner::start(core, request, now, failed))))
        }

        /// Whether the call records anything.
        #[inline]
        pub(crate) fn is_on(&self) -> bool {
            self.0.is_some()
        }

        /// A retry machine event.
        #[inline]
        pub(crate) fn event(&mut self, event: &Event, now: Instant) {
            if let Some(inner) = &mut self.0 {
                inner.event(event, now);
            }
        }

        /// A step the call hands its driver.
        #[inline]
        pub(crate) fn step<B>(
            &mut self,
            step: &Step<B>,
            request: &http::request::Parts,
            now: Instant,
        ) {
            if let Some(inner) = &mut self.0 {
                inner.step(step, request, now);
            }
        }

        /// An attempt's response head.
        #[inline]
        pub(crate) fn response<B>(
            &mut self,
            now: Instant,
            attempt: Attempt,
            response: &http::Response<B>,
        ) {
            if let Some(inner) = &mut self.0 {
                inner.response(now, attempt, response.status(), response.version());
            }
        }

        /// An attempt's transport failure.
        #[inline]
        pub(crate) fn error(&mut self, now: Instant, attempt: Attempt, kind: TransportErrorKind) {
            if let Some(inner) = &mut self.0 {
                inner.error(now, attempt, kind);
            }
        }

        /// A timer fired.
        #[inline]
        pub(crate) fn timeout(&mut self, now: Instant, is_out: impl Fn(Attempt) -> bool) {
            if let Some(inner) = &mut self.0 {
                inner.timeout(now, is_out);
            }
        }

        /// The trace context of the attempt sent last, on its request.
        #[inline]
        pub(crate) fn inject(&self, headers: &mut http::HeaderMap) {
            if let Some(inner) = &self.0 {
                inner.inject(headers);
            }
        }
    }

    /// What a call with telemetry on keeps.
    struct Inner<'p> {
        core: &'p ClientCore,
        /// The call's span, `None` when no subscriber wants it.
        span: Option<Span>,
        started: Instant,
        method: &'static str,
        endpoint: Endpoint,
        /// Attempts sent (physical requests: retries, hedges, hops and resends included).
        sent: u32,
        /// Redirects followed.
        hops: u32,
        retries: u32,
        hedges: u32,
        /// What the next `Send` is.
        next: Kind,
        /// The attempt a `HedgeSent` named, until it is sent.
        hedge: u32,
        /// The attempt sent last: [`Call::request`](crate::Call::request) builds its request.
        current: u32,
        /// Attempts out; a hedging call has several.
        open: Option<Open>,
        more: Vec<Open>,
        give_up: Option<GiveUp>,
        finished: bool,
    }

    impl fmt::Debug for Inner<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CallTelemetry")
                .field("sent", &self.sent)
                .finish_non_exhaustive()
        }
    }

    /// The conventions' `http.request.method`: a known method, else `_OTHER`.
    fn method_name(method: &http::Method) -> &'static str {
        match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::PATCH => "PATCH",
            http::Method::TRACE => "TRACE",
            http::Method::CONNECT => "CONNECT",
            _ => "_OTHER",
        }
    }

    fn scheme_name(uri: &http::Uri) -> &'static str {
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            "https"
        } else {
            "http"
        }
    }

    /// `server.port`: the URL's, else the scheme's default.
    fn port_of(uri: &http::Uri) -> i64 {
        match uri.port_u16() {
            Some(port) => i64::from(port),
            None if uri.scheme() == Some(&http::uri::Scheme::HTTPS) => 443,
            None => 80,
        }
    }

    fn version_name(version: http::Version) -> Option<&'static str> {
        Some(match version {
            http::Version::HTTP_09 => "0.9",
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_11 => "1.1",
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            _ => return None,
        })
    }

    /// `error.type` for a transport failure: low-cardinality, snake_case.
    fn transport_error_type(kind: TransportErrorKind) -> &'static str {
        match kind {
            TransportErrorKind::Dns => "dns",
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::ConnectTimeout => "connect_timeout",
            TransportErrorKind::TlsHandshake => "tls_handshake",
            TransportErrorKind::RefusedStream => "refused_stream",
            TransportErrorKind::Reset => "reset",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Protocol => "protocol",
            _ => "_OTHER",
        }
    }

    /// `error.type` for a status: the code itself, for 400 and above.
    fn status_error_type(status: u16) -> Option<&'static str> {
        const CODES: [&str; 200] = status_strings();
        (400..600)
            .contains(&status)
            .then(|| CODES[usize::from(status - 400)])
    }

    /// "400" to "599", computed once at compile time so no status allocates.
    const fn status_strings() -> [&'static str; 200] {
        const DIGITS: &str = "400401402403404405406407408409410411412413414415416417418419420421422423424425426427428429430431432433434435436437438439440441442443444445446447448449450451452453454455456457458459460461462463464465466467468469470471472473474475476477478479480481482483484485486487488489490491492493494495496497498499500501502503504505506507508509510511512513514515516517518519520521522523524525526527528529530531532533534535536537538539540541542543544545546547548549550551552553554555556557558559560561562563564565566567568569570571572573574575576577578579580581582583584585586587588589590591592593594595596597598599";
        let mut out = [""; 200];
        let mut i = 0;
        while i < 200 {
            let (_, rest) = DIGITS.as_bytes().split_at(i * 3);
            let (code, _) = rest.split_at(3);
            out[i] = match core::str::from_utf8(code) {
                Ok(s) => s,
                Err(_) => "",
            };
            i += 1;
        }
        out
    }

    /// `error.type` of a call that ended with `kind`.
    fn call_error_type(kind: ErrorKind) -> &'static str {
        match kind {
            ErrorKind::Transport(k) => transport_error_type(k),
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status(s) => status_error_type(s).unwrap_or("_OTHER"),
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::RejectedLocally(_) => "rejected_locally",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::RetryAfterTooLong(_) => "retry_after_too_long",
            ErrorKind::NotReplayed => "not_replayed",
            ErrorKind::BodyNotReplayable => "body_not_replayable",
            ErrorKind::Body => "body",
            ErrorKind::Decode => "decode",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::Auth => "auth",
            ErrorKind::Redirect(_) => "redirect",
        }
    }

    /// `resil.give_up.reason`.
    fn give_up_name(reason: GiveUpReason) -> &'static str {
        match reason {
            GiveUpReason::AttemptsExhausted => "attempts_exhausted",
            GiveUpReason::KindExhausted { .. } => "kind_exhausted",
            GiveUpReason::DeadlineExceeded => "deadline_exceeded",
            GiveUpReason::RetryAfterTooLong { .. } => "retry_after_too_long",
            GiveUpReason::NotRetryable => "not_retryable",
            GiveUpReason::NonIdempotent => "non_idempotent",
            GiveUpReason::BodyNotReplayable => "body_not_replayable",
            GiveUpReason::BudgetExhausted => "budget_exhausted",
            GiveUpReason::CircuitOpen { .. } => "circuit_open",
            GiveUpReason::RejectedLocally(_) => "rejected_locally",
            _ => "_OTHER",
        }
    }

    /// `resilience.attempt.recovery.kind` of a retry: why it was retried.
    fn reason_name(reason: RetryReason) -> &'static str {
        match reason {
            RetryReason::TooManyRequests => "status_429",
            RetryReason::RequestTimeout => "status_408",
            RetryReason::ServerError => "status_5xx",
            RetryReason::OtherStatus => "other_status",
            RetryReason::NotSent => "not_sent",
            RetryReason::Transport => "transport",
            RetryReason::Timeout => "timeout",
        }
    }

    fn state_name(state: BreakerState) -> &'static str {
        match state {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Isolated => "isolated",
        }
    }

    fn state_value(state: BreakerState) -> i64 {
        match state {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
            BreakerState::Isolated => 3,
        }
    }

    fn cause_name(cause: Cause) -> Cow<'static, str> {
        match cause {
            Cause::Status(s) => {
                status_error_type(s).map_or_else(|| Cow::Owned(std::format!("{s}")), Cow::Borrowed)
            }
            Cause::Error(k) => Cow::Borrowed(transport_error_type(k)),
        }
    }

    /// `url.full` for telemetry: scheme, host, port, path and query, never the user info or a
    /// fragment, and every query value replaced by `REDACTED` (names kept): a token in any
    /// parameter stays out of every backend. Formatted only when a subscriber records it.
    pub(crate) struct TelemetryUrl<'a>(pub(crate) &'a http::Uri);

    impl fmt::Display for TelemetryUrl<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let uri = self.0;
            f.write_str(scheme_name(uri))?;
            f.write_str("://")?;
            if let Some(host) = uri.host() {
                f.write_str(host)?;
            }
            if let Some(port) = uri.port_u16() {
                write!(f, ":{port}")?;
            }
            f.write_str(uri.path())?;
            if let Some(query) = uri.query() {
                f.write_str("?")?;
                for (i, pair) in query.split('&').enumerate() {
                    if i > 0 {
                        f.write_str("&")?;
                    }
                    match pair.split_once('=') {
                        Some((name, _)) => write!(f, "{name}=REDACTED")?,
                        None => f.write_str(pair)?,
                    }
                }
            }
            Ok(())
        }
    }

    /// Puts trace context headers on a request.
    struct HeaderInjector<'a>(&'a mut http::HeaderMap);

    impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::try_from(value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    fn seconds(from: Instant, to: Instant) -> f64 {
        to.saturating_duration_since(from).as_secs_f64()
    }

    impl<'p> Inner<'p> {
        /// The call `request` starts at `now` (`failed`: it goes on after a body failed).
        #[inline(never)]
        fn start(
            core: &'p ClientCore,
            request: &http::request::Parts,
            now: Instant,
            failed: Option<&BodyFailure>,
        ) -> Inner<'p> {
            let uri = &request.uri;
            let method = method_name(&request.method);
            let span = tracing::info_span!(
                target: "resil",
                "resil.call",
                http.request.method = method,
                http.request.method_original = Empty,
                server.address = uri.host().unwrap_or(""),
                server.port = port_of(uri),
                url.full = %TelemetryUrl(uri),
                http.response.status_code = Empty,
                error.type = Empty,
                otel.status_code = Empty,
                resil.attempts = Empty,
                resil.retries = Empty,
                resil.hedges = Empty,
                resil.redirects = Empty,
                resil.give_up.reason = Empty,
                resil.outcome = Empty,
                resil.resumed_at_byte = Empty,
            );
            let span = (!span.is_disabled()).then_some(span);
            if let Some(span) = &span {
                if method == "_OTHER" {
                    span.record("http.request.method_original", request.method.as_str());
                }
                if let Some(failure) = failed {
                    span.record("resil.resumed_at_byte", failure.at_byte);
                }
            }
            Inner {
                core,
                span,
                started: now,
                method,
                endpoint: Endpoint::default(),
                sent: 0,
                hops: 0,
                retries: 0,
                hedges: 0,
                next: if failed.is_some() {
                    Kind::Retry
                } else {
                    Kind::Initial
                },
                hedge: 0,
                current: 0,
                open: None,
                more: Vec::new(),
                give_up: None,
                finished: false,
            }
        }

        /// Counts one `resilience.event` named `name` of `strategy`.
        fn count(&self, strategy: &'static str, name: &'static str) {
            self.count_with(strategy, name, &[]);
        }

        fn count_with(&self, strategy: &'static str, name: &'static str, extra: &[KeyValue]) {
            let Some(instruments) = self.core.telemetry().instruments() else {
                return;
            };
            let mut attributes = Vec::with_capacity(5 + extra.len());
            attributes.push(KeyValue::new("resilience.strategy.name", strategy));
            attributes.push(KeyValue::new("resilience.event.name", name));
            attributes.push(KeyValue::new("http.request.method", self.method));
            if let Some(address) = &self.endpoint.address {
                attributes.push(KeyValue::new("server.address", address.clone()));
                attributes.push(KeyValue::new("server.port", self.endpoint.port));
            }
            attributes.extend_from_slice(extra);
            instruments.events.add(1, &attributes);
        }

        /// A span event on the call's span.
        fn span(&self) -> Option<&Span> {
            self.span.as_ref()
        }

        /// One of the retry machine's events, as the observer gets it; `now` is the latest
        /// instant the machine was given.
        #[inline(never)]
        fn event(&mut self, event: &Event, now: Instant) {
            match *event {
                Event::RetryScheduled {
                    after,
                    cause,
                    delay,
                    retry_after,
                    ..
                } => {
                    self.retries += 1;
                    self.next = Kind::Retry;
                    let reason = reason_name(RetryReason::of(cause));
                    let index = i64::from(after.number()) - 1;
                    self.count_with(
                        "retry",
                        "retry",
                        &[
                            KeyValue::new("resilience.attempt.index", index),
                            KeyValue::new("resilience.attempt.is_last", false),
                            KeyValue::new("resilience.attempt.recovery.kind", reason),
                        ],
                    );
                    if let Some(span) = self.span() {
                        let retry_after = retry_after.map(|d| d.as_secs_f64());
                        tracing::info!(
                            target: "resil",
                            parent: span, message = "resil.retry",
                            "resil.attempt.number" = after.number(),
                            "resil.retry.reason" = reason,
                            "resil.retry.cause" = %cause_name(cause),
                            "resil.retry.delay" = delay.as_secs_f64(),
                            "resil.retry.retry_after" = retry_after);
                    }
                }
                Event::HedgeSent { attempt } => {
                    self.hedges += 1;
                    self.hedge = attempt.number();
                    self.count("hedging", "hedge");
                    if let Some(span) = self.span() {
                        tracing::info!(target: "resil", parent: span, message = "resil.hedge", "resil.attempt.number" = attempt.number());
                    }
                }
                Event::HedgeWon { attempt } => {
                    self.count("hedging", "hedge_won");
                    if let Some(span) = self.span() {
                        tracing::info!(target: "resil", parent: span, message = "resil.hedge.won", "resil.attempt.number" = attempt.number());
                    }
                }
                Event::Cancelled { attempt, lost } => {
                    self.end(attempt, now, Ending::Cancelled { lost });
                    self.count("hedging", "attempt_cancelled");
                    if let Some(span) = self.span() {
                        tracing::info!(target: "resil", parent: span, message = "resil.attempt.cancelled", "resil.attempt.number" = attempt.number(), "resil.cancel.lost" = lost);
                    }
                }
                Event::GaveUp(give_up) => {
                    self.give_up = Some(give_up);
                    let (strategy, name) = match give_up.reason {
                        GiveUpReason::CircuitOpen { .. } => ("circuit_breaker", "circuit_rejected"),
                        GiveUpReason::BudgetExhausted => ("budget", "budget_refused"),
                        GiveUpReason::RejectedLocally(_) => ("limiter", "limiter_rejected"),
                        _ => return,
                    };
                    self.count(strategy, name);
                    match (self.span(), give_up.reason) {
                        (None, _) => {}
                        (Some(span), GiveUpReason::CircuitOpen { .. }) => {
                            tracing::info!(target: "resil", parent: span, "resil.breaker.rejected");
                        }
                        (Some(span), GiveUpReason::RejectedLocally(why)) => {
                            tracing::info!(target: "resil", parent: span, message = "resil.limiter.rejected", "resil.limiter.reason" = %why);
                        }
                        (Some(span), _) => {
                            tracing::info!(target: "resil", parent: span, "resil.budget.refused");
                        }
                    }
                }
                Event::Breaker(transition) => {
                    let name = match transition.to {
                        BreakerState::Closed => "circuit_closed",
                        BreakerState::HalfOpen => "circuit_half_opened",
                        BreakerState::Open | BreakerState::Isolated => "circuit_opened",
                    };
                    self.count("circuit_breaker", name);
                    let instruments = self.core.telemetry().instruments();
                    match (instruments, &self.endpoint.address) {
                        (None, _) => {}
                        (Some(i), Some(address)) => i.breaker_state.record(
                            state_value(transition.to),
                            &[
                                KeyValue::new("server.address", address.clone()),
                                KeyValue::new("server.port", self.endpoint.port),
                            ],
                        ),
                        (Some(i), None) => i.breaker_state.record(state_value(transition.to), &[]),
                    }
                    if let Some(span) = self.span() {
                        tracing::info!(
                            target: "resil",
                            parent: span, message = "resil.breaker.transition",
                            "resil.breaker.from" = state_name(transition.from),
                            "resil.breaker.to" = state_name(transition.to),
                            "resil.breaker.enforced" = transition.enforced);
                    }
                }
                Event::LimiterWait { attempt, wait, .. } => {
                    self.count("limiter", "limiter_wait");
                    if let Some(span) = self.span() {
                        tracing::info!(target: "resil", parent: span, message = "resil.limiter.wait", "resil.attempt.number" = attempt.number(), "resil.limiter.wait" = wait.as_secs_f64());
                    }
                }
                _ => {}
            }
        }

        /// A step the call hands its driver: a `Send` starts an attempt's span, a `Redirect`
        /// marks the next attempt, `Done` and `Fail` end the call. `now` is the latest instant
        /// the call was given.
        #[inline(never)]
        fn step<B>(&mut self, step: &Step<B>, request: &http::request::Parts, now: Instant) {
            match step {
                Step::Send { attempt, .. } => self.send(*attempt, request, now),
                Step::Redirect { .. } => {
                    self.hops += 1;
                    self.next = Kind::Redirect;
                    self.count("redirect", "redirect");
                    if let Some(span) = self.span() {
                        tracing::info!(
                            target: "resil",
                            parent: span, message = "resil.redirect",
                            "resil.redirect.hop" = self.hops,
                            "url.full" = %TelemetryUrl(&request.uri));
                    }
                }
                Step::Done(response) => {
                    let status = response.status().as_u16();
                    self.finish(now, Some(status), status_error_type(status));
                }
                Step::Fail(error) => {
                    let status = error.status();
                    self.finish(now, status, Some(call_error_type(error.kind())));
                }
                _ => {}
            }
        }

        /// Attempt `attempt` of `request` is sent at `now`.
        fn send(&mut self, attempt: Attempt, request: &http::request::Parts, now: Instant) {
            let number = attempt.number();
            // The same attempt sent again (after a credential refresh): its first send
            // ended with its 401.
            self.end(attempt, now, Ending::Replaced);
            let kind = if self.hedge == number {
                self.hedge = 0;
                Kind::Hedge
            } else {
                core::mem::replace(&mut self.next, Kind::Retry)
            };
            let resend = self.sent;
            self.sent += 1;
            self.current = number;
            let uri = &request.uri;
            let host = uri.host().unwrap_or("");
            let measured = self.core.telemetry().instruments().is_some();
            if measured
                && self
                    .endpoint
                    .address
                    .as_ref()
                    .is_none_or(|a| a.as_str() != host)
            {
                self.endpoint = Endpoint {
                    address: Some(self.core.telemetry().host(host)),
                    port: port_of(uri),
                    scheme: scheme_name(uri),
                };
            }
            let name = if self.method == "_OTHER" {
                "HTTP"
            } else {
                self.method
            };
            macro_rules! attempt_span {
                ($($parent:tt)*) => {
                    tracing::info_span!(
                        target: "resil",
                        $($parent)*
                        "resil.attempt",
                        otel.name = name,
                        otel.kind = "client",
                        otel.status_code = Empty,
                        http.request.method = self.method,
                        http.request.method_original = Empty,
                        server.address = host,
                        server.port = self.endpoint.port,
                        url.full = %TelemetryUrl(uri),
                        http.request.resend_count = Empty,
                        http.response.status_code = Empty,
                        error.type = Empty,
                        network.protocol.version = Empty,
                        resil.attempt.number = number,
                        resil.attempt.kind = kind.as_str(),
                        resil.redirect.hop = self.hops,
                        resil.attempt.outcome = Empty,
                    )
                };
            }
            let span = match &self.span {
                Some(parent) => attempt_span!(parent: parent,),
                None => attempt_span!(),
            };
            let span = (!span.is_disabled()).then_some(span);
            if let Some(span) = &span {
                if resend > 0 {
                    span.record("http.request.resend_count", resend);
                }
                if self.method == "_OTHER" {
                    span.record("http.request.method_original", request.method.as_str());
                }
            }
            let open = Open {
                attempt: number,
                started: now,
                span,
            };
            match &self.open {
                None => self.open = Some(open),
                Some(_) => self.more.push(open),
            }
        }

        /// Takes attempt `attempt` out of the open ones.
        fn take(&mut self, attempt: u32) -> Option<Open> {
            if self.open.as_ref().is_some_and(|o| o.attempt == attempt) {
                let taken = self.open.take();
                if !self.more.is_empty() {
                    self.open = Some(self.more.swap_remove(0));
                }
                return taken;
            }
            let i = self.more.iter().position(|o| o.attempt == attempt)?;
            Some(self.more.swap_remove(i))
        }

        /// Ends attempt `attempt` at `now` as `ending` says, recording its duration.
        fn end(&mut self, attempt: Attempt, now: Instant, ending: Ending) {
            let Some(open) = self.take(attempt.number()) else {
                return;
            };
            if matches!(ending, Ending::Replaced) {
                // Its status and duration were recorded when its response came.
                return;
            }
            let (status, error_type, version, outcome) = match ending {
                Ending::Response { status, version } => {
                    (Some(status), status_error_type(status), version, "response")
                }
                Ending::Error(kind) => (None, Some(transport_error_type(kind)), None, "error"),
                Ending::Timeout => (None, Some("timeout"), None, "timeout"),
                Ending::Cancelled { lost: true } => (None, Some("cancelled"), None, "cancelled"),
                Ending::Cancelled { lost: false } => (None, Some("timeout"), None, "cancelled"),
                Ending::Replaced => return,
            };
            if let Some(span) = &open.span {
                if let Some(status) = status {
                    span.record("http.response.status_code", status);
                }
                if let Some(version) = version {
                    span.record("network.protocol.version", version);
                }
                // A hedge that lost is no error: its span ends cancelled, status unset.
                if let Some(error_type) =
                    error_type.filter(|_| !matches!(ending, Ending::Cancelled { lost: true }))
                {
                    span.record("error.type", error_type);
                    span.record("otel.status_code", "ERROR");
                }
                span.record("resil.attempt.outcome", outcome);
            }
            self.record_duration(open.started, now, status, error_type, version);
        }

        /// `http.client.request.duration` for one attempt.
        fn record_duration(
            &self,
            started: Instant,
            now: Instant,
            status: Option<u16>,
            error_type: Option<&'static str>,
            version: Option<&'static str>,
        ) {
            let Some(instruments) = self.core.telemetry().instruments() else {
                return;
            };
            let address = self
                .endpoint
                .address
                .clone()
                .unwrap_or_else(|| StringValue::from(""));
            let base = [
                KeyValue::new("http.request.method", self.method),
                KeyValue::new("server.address", address),
                KeyValue::new("server.port", self.endpoint.port),
                KeyValue::new("url.scheme", self.endpoint.scheme),
            ];
            let took = seconds(started, now);
            let [a, b, c, d] = base;
            match (status, error_type, version) {
                (Some(status), None, Some(v)) => instruments.request_duration.record(
                    took,
                    &[
                        a,
                        b,
                        c,
                        d,
                        KeyValue::new("http.response.status_code", i64::from(status)),
                        KeyValue::new("network.protocol.version", v),
                    ],
                ),
                (Some(status), Some(e), Some(v)) => instruments.request_duration.record(
                    took,
                    &[
                        a,
                        b,
                        c,
                        d,
                        KeyValue::new("http.response.status_code", i64::from(status)),
                        KeyValue::new("error.type", e),
                        KeyValue::new("network.protocol.version", v),
                    ],
                ),
                (Some(status), e, None) => {
                    let mut attributes = std::vec![
                        a,
                        b,
                        c,
                        d,
                        KeyValue::new("http.response.status_code", i64::from(status))
                    ];
                    if let Some(e) = e {
                        attributes.push(KeyValue::new("error.type", e));
                    }
                    instruments.request_duration.record(took, &attributes);
                }
                (None, Some(e), _) => instruments
                    .request_duration
                    .record(took, &[a, b, c, d, KeyValue::new("error.type", e)]),
                (None, None, _) => instruments.request_duration.record(took, &[a, b, c, d]),
            }
        }

        /// Attempt `attempt`'s response head came at `now`.
        #[inline(never)]
        fn response(
            &mut self,
            now: Instant,
            attempt: Attempt,
            status: http::StatusCode,
            version: http::Version,
        ) {
            let ending = Ending::Response {
                status: status.as_u16(),
                version: version_name(version),
            };
            self.end(attempt, now, ending);
        }

        /// Attempt `attempt` failed at `now` with `kind`.
        #[inline(never)]
        fn error(&mut self, now: Instant, attempt: Attempt, kind: TransportErrorKind) {
            self.end(attempt, now, Ending::Error(kind));
        }

        /// A timer fired at `now`: attempts no longer out (`is_out`) timed out.
        #[inline(never)]
        fn timeout(&mut self, now: Instant, is_out: impl Fn(Attempt) -> bool) {
            let first = self.open.as_ref().map(|o| o.attempt);
            let timed_out = first
                .into_iter()
                .chain(self.more.iter().map(|o| o.attempt))
                .map(Attempt::new)
                .filter(|a| !is_out(*a))
                .collect::<Vec<_>>();
            for attempt in timed_out {
                self.end(attempt, now, Ending::Timeout);
            }
        }

        /// Puts the trace context of the attempt sent last on its request's `headers`,
        /// through the global propagator.
        #[inline(never)]
        fn inject(&self, headers: &mut http::HeaderMap) {
            let current = self.current;
            let open = self
                .open
                .iter()
                .chain(self.more.iter())
                .find(|o| o.attempt == current);
            let Some(span) = open.and_then(|o| o.span.as_ref()) else {
                return;
            };
            let context = span.context();
            opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.inject_context(&context, &mut HeaderInjector(headers));
            });
        }

        /// The call ended at `now`: with a final response of `status`, or an error.
        fn finish(&mut self, now: Instant, status: Option<u16>, error_type: Option<&'static str>) {
            if self.finished {
                return;
            }
            self.finished = true;
            if let Some(span) = &self.span {
                if let Some(status) = status {
                    span.record("http.response.status_code", status);
                }
                if let Some(error_type) = error_type {
                    span.record("error.type", error_type);
                    span.record("otel.status_code", "ERROR");
                }
                span.record("resil.attempts", self.sent);
                span.record("resil.retries", self.retries);
                span.record("resil.hedges", self.hedges);
                span.record("resil.redirects", self.hops);
                if let Some(give_up) = self.give_up {
                    span.record("resil.give_up.reason", give_up_name(give_up.reason));
                }
                span.record(
                    "resil.outcome",
                    if error_type.is_some() {
                        "failure"
                    } else {
                        "success"
                    },
                );
            }
            // The call's span ends here, not when the call is dropped.
            self.span = None;
            let Some(instruments) = self.core.telemetry().instruments() else {
                return;
            };
            let address = self
                .endpoint
                .address
                .clone()
                .unwrap_or_else(|| StringValue::from(""));
            let base = [
                KeyValue::new("http.request.method", self.method),
                KeyValue::new("server.address", address),
                KeyValue::new("server.port", self.endpoint.port),
            ];
            let [a, b, c] = base;
            let took = seconds(self.started, now);
            let attempts = u64::from(self.sent);
            match (status, error_type) {
                (Some(s), None) => {
                    let attributes = [
                        a,
                        b,
                        c,
                        KeyValue::new("http.response.status_code", i64::from(s)),
                    ];
                    instruments.call_duration.record(took, &attributes);
                    instruments.call_attempts.record(attempts, &attributes);
                }
                (Some(s), Some(e)) => {
                    let attributes = [
                        a,
                        b,
                        c,
                        KeyValue::new("http.response.status_code", i64::from(s)),
                        KeyValue::new("error.type", e),
                    ];
                    instruments.call_duration.record(took, &attributes);
                    instruments.call_attempts.record(attempts, &attributes);
                }
                (None, e) => {
                    let attributes = [a, b, c, KeyValue::new("error.type", e.unwrap_or("_OTHER"))];
                    instruments.call_duration.record(took, &attributes);
                    instruments.call_attempts.record(attempts, &attributes);
                }
            }
        }
    }

    /// How an attempt ended.
    #[derive(Clone, Copy, Debug)]
    enum Ending {
        Response {
            status: u16,
            version: Option<&'static str>,
        },
        Error(TransportErrorKind),
        Timeout,
        Cancelled {
            lost: bool,
        },
        /// Sent again (after a credential refresh): it ended with its response already.
        Replaced,
    }

    impl Drop for Inner<'_> {
        /// A call dropped before its end (its future was, or its driver returned early):
        /// attempts still out end as abandoned, and are counted.
        fn drop(&mut self) {
            if self.open.is_none() && self.finished {
                return;
            }
            let mut abandoned = self
                .open
                .take()
                .into_iter()
                .chain(self.more.drain(..))
                .peekable();
            let any = abandoned.peek().is_some();
            for open in abandoned {
                if let Some(span) = &open.span {
                    span.record("resil.attempt.outcome", "abandoned");
                }
            }
            if any {
                self.count("retry", "attempt_abandoned");
            }
            if !self.finished {
                if let Some(span) = &self.span {
                    span.record("resil.attempts", self.sent);
                    span.record("resil.outcome", "abandoned");
                }
            }
        }
    }
}
