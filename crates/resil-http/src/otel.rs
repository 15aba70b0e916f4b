//! # OpenTelemetry (feature `otel`)
//!
//! Every driver forwards the feature (`resil-blocking/otel`, `resil-tokio/otel`,
//! `resil-isahc/otel`; it implies `tracing`). With it, each call reports, the same in every
//! driver because [`Call`](crate::Call) does it all:
//!
//! - **spans** through `tracing` (target `resil`, level INFO): one span per call and one
//!   CLIENT span per physical attempt (retries, hedges, redirect hops and the resend after a
//!   credential refresh included), named and attributed by the OpenTelemetry HTTP client
//!   conventions, with resil's own facts as `resil.*` attributes and span events.
//!   `tracing-opentelemetry` exports them; any other `tracing` subscriber sees them too;
//! - **metrics** through the `opentelemetry` metrics API: the conventions'
//!   `http.client.request.duration` per attempt and resil's own, on the meter a client is
//!   given (`otel_meter`) or the global meter provider's `resil` meter;
//! - **trace context on the wire**: each attempt's request carries `traceparent` (and
//!   `tracestate`) for that attempt's own span, written by the globally configured
//!   propagator.
//!
//! Why OpenTelemetry: it is the standard every tracing backend, metrics store and collector
//! takes, and its semantic conventions are what operators' HTTP dashboards are built on. resil
//! depends on the API crate only (and on `tracing-opentelemetry` to read a span's context);
//! the application picks the SDK and exporter. There is no OpenTelemetry convention for
//! resilience yet: resil's event counter follows seatbelt's `resilience.event` and its
//! attributes, and counts hedges apart from retries (gRPC A96).
//!
//! ## Setup
//!
//! ```ignore
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
//! let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     .with_batch_exporter(exporter)
//!     .build();
//! let layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("app"));
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
//! opentelemetry::global::set_text_map_propagator(
//!     opentelemetry_sdk::propagation::TraceContextPropagator::new(),
//! );
//! let metrics = opentelemetry_otlp::MetricExporter::builder().with_http().build()?;
//! opentelemetry::global::set_meter_provider(
//!     opentelemetry_sdk::metrics::SdkMeterProvider::builder()
//!         .with_periodic_exporter(metrics)
//!         .build(),
//! );
//! let client = resil_blocking::Client::new(); // built after the providers are installed
//! ```
//!
//! A client takes its instruments from the global meter provider at its first call: install
//! the provider before that (or give the client a meter with `otel_meter`). Without a
//! subscriber and a meter provider the feature costs a level check per span and no-op
//! instrument calls (BENCHMARKS.md has the instruction counts).
//!
//! ## Spans
//!
//! | span | kind | name | when |
//! |---|---|---|---|
//! | `resil.call` | INTERNAL | `resil.call` | from the call's start to its `Done` or `Fail` (or its drop); child of the current span |
//! | `resil.attempt` | CLIENT | the method (`GET`, …; `HTTP` for another method) | from the attempt's `Send` to its response head, error, timeout or cancellation; child of `resil.call`. With hedging several are open at once |
//!
//! ### Attributes of both spans
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `http.request.method` | string | `GET`, `POST`, …, or `_OTHER` (then `http.request.method_original` holds it) |
//! | `server.address` | string | the URL's host (for the call: its first hop's) |
//! | `server.port` | int | the URL's port, else 80 or 443 |
//! | `url.full` | string | scheme, host, port, path and query; never the user info or fragment, and **every query value** reads `REDACTED` (names kept) |
//! | `http.response.status_code` | int | the attempt's status; the call's final status |
//! | `error.type` | string | a status of 400 and above (`"503"`); a transport failure (`connect`, `connect_timeout`, `dns`, `tls_handshake`, `refused_stream`, `reset`, `timeout`, `protocol`, `_OTHER`); for the call also why it gave up without a status (`circuit_open`, `budget_exhausted`, `deadline_exceeded`, `retry_after_too_long`, `not_replayed`, `body_not_replayable`, `redirect`, …); `cancelled` on a hedge that lost (the span's status stays unset) |
//! | `otel.status_code` | — | ERROR when `error.type` is set (tracing-opentelemetry's span status) |
//!
//! ### Attempt span only
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `http.request.resend_count` | int | 1, 2, … on every attempt after the call's first (retries, hedges, hops, resends); absent on the first |
//! | `network.protocol.version` | string | `1.0`, `1.1`, `2`, `3` when a response came |
//! | `resil.attempt.number` | int | the retry machine's attempt number within its hop (1 is the first) |
//! | `resil.attempt.kind` | string | `initial`, `retry` (also the resend after a credential refresh), `hedge`, `redirect` (a hop's first attempt) |
//! | `resil.redirect.hop` | int | redirects followed before this attempt |
//! | `resil.attempt.outcome` | string | `response`, `error`, `timeout`, `cancelled` (a hedging call stopped it: it lost, or its deadline passed while others were out), `abandoned` (the call was dropped while it was out) |
//!
//! ### Call span only
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `resil.attempts` | int | attempts sent (every kind) |
//! | `resil.retries` | int | retries scheduled |
//! | `resil.hedges` | int | hedges sent |
//! | `resil.redirects` | int | redirects followed |
//! | `resil.give_up.reason` | string | why the retry machine gave up: `attempts_exhausted`, `kind_exhausted`, `deadline_exceeded`, `retry_after_too_long`, `not_retryable`, `non_idempotent`, `body_not_replayable`, `budget_exhausted`, `circuit_open` |
//! | `resil.outcome` | string | `success` (a response under 400), `failure`, `abandoned` |
//! | `resil.resumed_at_byte` | int | on a call that goes on after a response body failed: where |
//!
//! ### Span events (on `resil.call`)
//!
//! | event | attributes |
//! |---|---|
//! | `resil.retry` | `resil.attempt.number` (the attempt that failed), `resil.retry.reason` (as `resilience.attempt.recovery.kind` below), `resil.retry.cause` (a status or transport failure), `resil.retry.delay` (s), `resil.retry.retry_after` (s, when a `Retry-After` was honoured) |
//! | `resil.redirect` | `resil.redirect.hop`, `url.full` (the next hop, redacted) |
//! | `resil.hedge` | `resil.attempt.number` |
//! | `resil.hedge.won` | `resil.attempt.number` |
//! | `resil.attempt.cancelled` | `resil.attempt.number`, `resil.cancel.lost` |
//! | `resil.breaker.transition` | `resil.breaker.from`, `resil.breaker.to` (`closed`, `open`, `half_open`, `isolated`), `resil.breaker.enforced` |
//! | `resil.breaker.rejected` | — (the open breaker refused the call or a retry) |
//! | `resil.budget.refused` | — (the retry budget refused a retry) |
//!
//! No header value is ever recorded, and the request id is not either.
//!
//! ## Metrics
//!
//! | instrument | kind | unit | when | attributes |
//! |---|---|---|---|---|
//! | `http.client.request.duration` | histogram (f64), buckets 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10 | `s` | per attempt, on the driver's clock, from its send to its response head, error, timeout or cancellation | `http.request.method`, `server.address`, `server.port`, `url.scheme`, `http.response.status_code`, `error.type`, `network.protocol.version` (when known) |
//! | `resil.client.call.duration` | histogram (f64), the same buckets | `s` | per call, from its start to its end (backoff and hops included) | `http.request.method`, `server.address`, `server.port` (of the last hop), `http.response.status_code`, `error.type` |
//! | `resil.client.call.attempts` | histogram (u64), buckets 1, 2, 3, 4, 5, 6, 8, 10, 16 | `{attempt}` | per call | as `resil.client.call.duration` |
//! | `resilience.event` | counter (u64) | `{event}` | per event | `resilience.strategy.name`, `resilience.event.name`, `http.request.method`, `server.address`, `server.port`; retries also `resilience.attempt.index` (0-based, the attempt that failed), `resilience.attempt.is_last` (false), `resilience.attempt.recovery.kind` |
//! | `resil.client.breaker.state` | gauge (i64) | `{state}` | at each transition a call sees | `server.address`, `server.port`; 0 closed, 1 half-open, 2 open, 3 isolated |
//!
//! `resilience.event`'s events, by strategy:
//!
//! | `resilience.strategy.name` | `resilience.event.name` |
//! |---|---|
//! | `retry` | `retry` (recovery kinds: `status_429`, `status_408`, `status_5xx`, `other_status`, `not_sent`, `transport`, `timeout`), `attempt_abandoned` (a call dropped with attempts out) |
//! | `hedging` | `hedge`, `hedge_won`, `attempt_cancelled` |
//! | `circuit_breaker` | `circuit_opened`, `circuit_half_opened`, `circuit_closed`, `circuit_rejected` |
//! | `budget` | `budget_refused` |
//! | `redirect` | `redirect` |
//!
//! The rate and concurrency limiters are not part of a call yet; their waits and rejections
//! will be `resilience.event`s of strategy `limiter` and a wait-duration histogram.
//!
//! ## Trace context on the wire
//!
//! [`Call::request`](crate::Call::request) builds each attempt's request right after its
//! `Send`; with a subscriber that has the tracing-opentelemetry layer, it asks the attempt's
//! span for its OpenTelemetry context and has
//! `opentelemetry::global::get_text_map_propagator` inject it into the request's headers
//! (replacing a `traceparent` the caller set: the attempt span is that caller's span's
//! grandchild). Without such a subscriber nothing is added.
