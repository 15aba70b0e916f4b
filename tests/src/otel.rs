//! The telemetry checks every driver runs (feature `otel` of the drivers): [`Telemetry`]
//! installs, for one test, a `tracing` subscriber with tracing-opentelemetry over the real
//! SDK's in-memory span exporter, and a meter provider over its in-memory metric exporter,
//! and hands back what was [`TelemetryRecord`]. [`Scenario::check_telemetry`] holds a driver's spans
//! and metric points for a row of the scenario table to what its hooks transcript says
//! happened, so every driver reports the same. [`OtlpReceiver`] is a loopback OTLP/HTTP
//! endpoint that decodes what an exporter sends it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::scenarios::{Expect, Scenario};
use crate::server::lock;

/// A secret that must never reach telemetry: sent as a password in the URL's user info.
pub const CANARY_PASSWORD: &str = "canary-pass-7f3a";
/// A secret sent as a query parameter's value (a name no redaction list knows).
pub const CANARY_QUERY: &str = "canary-query-91c2";
/// A secret sent in a request header.
pub const CANARY_HEADER: &str = "canary-header-5d0e";
/// The header [`CANARY_HEADER`] goes in.
pub const CANARY_HEADER_NAME: &str = "x-api-secret";

/// `url` with [`CANARY_PASSWORD`] in its user info and [`CANARY_QUERY`] in a query parameter.
pub fn canary_url(url: &str) -> String {
    let with_user = url.replacen("://", &format!("://user:{CANARY_PASSWORD}@"), 1);
    let joiner = if with_user.contains('?') { '&' } else { '?' };
    format!("{with_user}{joiner}session={CANARY_QUERY}")
}

/// One test's telemetry pipeline: a subscriber (to install around the calls: see
/// [`dispatch`](Self::dispatch)), a meter (to give the client), and their exporters.
#[derive(Debug)]
pub struct Telemetry {
    spans: InMemorySpanExporter,
    tracer_provider: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
    dispatch: tracing::Dispatch,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A fresh pipeline; also installs the W3C trace-context propagator globally (the same
    /// one in every test, so tests in one process agree).
    pub fn new() -> Telemetry {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("tests"));
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        Telemetry {
            spans,
            tracer_provider,
            metrics,
            meter_provider,
            dispatch,
        }
    }

    /// The subscriber to install around the calls (`tracing::dispatcher::with_default`, or
    /// `WithSubscriber::with_subscriber` on a future).
    pub fn dispatch(&self) -> tracing::Dispatch {
        self.dispatch.clone()
    }

    /// The meter to give the client (`otel_meter`).
    pub fn meter(&self) -> opentelemetry::metrics::Meter {
        use opentelemetry::metrics::MeterProvider as _;
        self.meter_provider.meter("resil")
    }

    /// Flushes both pipelines and returns what they recorded so far.
    pub fn recorded(&self) -> TelemetryRecord {
        let _ = self.tracer_provider.force_flush();
        let _ = self.meter_provider.force_flush();
        let mut spans: Vec<SpanRecord> = self
            .spans
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .map(SpanRecord::of)
            .collect();
        spans.sort_by_key(|s| s.start);
        let mut metrics = Vec::new();
        for resource in self.metrics.get_finished_metrics().unwrap_or_default() {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics() {
                    metrics.extend(MetricPoint::of(metric));
                }
            }
        }
        // Cumulative exports repeat every point: keep each series' latest.
        let mut latest = BTreeMap::new();
        for point in metrics {
            latest.insert((point.name.clone(), point.key()), point);
        }
        TelemetryRecord {
            spans,
            metrics: latest.into_values().collect(),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.meter_provider.shutdown();
        let _ = self.tracer_provider.shutdown();
    }
}

/// One finished span, its values as text.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    /// Its name.
    pub name: String,
    /// `client` or `internal`.
    pub kind: &'static str,
    /// Trace id (hex).
    pub trace: String,
    /// Span id (hex).
    pub id: String,
    /// Parent span id (hex; zeros for a root).
    pub parent: String,
    /// Attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// Events in order: name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// `unset`, `ok` or `error`.
    pub status: &'static str,
    start: std::time::SystemTime,
}

fn text(value: &Value) -> String {
    value.as_str().into_owned()
}

impl SpanRecord {
    fn of(span: opentelemetry_sdk::trace::SpanData) -> SpanRecord {
        let attributes = span
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), text(&kv.value)))
            .collect();
        let events = span
            .events
            .iter()
            .map(|e| {
                let attributes = e
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), text(&kv.value)))
                    .collect();
                (e.name.to_string(), attributes)
            })
            .collect();
        SpanRecord {
            name: span.name.to_string(),
            kind: match span.span_kind {
                SpanKind::Client => "client",
                SpanKind::Internal => "internal",
                SpanKind::Server => "server",
                SpanKind::Producer => "producer",
                SpanKind::Consumer => "consumer",
            },
            trace: span.span_context.trace_id().to_string(),
            id: span.span_context.span_id().to_string(),
            parent: span.parent_span_id.to_string(),
            attributes,
            events,
            status: match span.status {
                Status::Unset => "unset",
                Status::Ok => "ok",
                Status::Error { .. } => "error",
            },
            start: span.start_time,
        }
    }

    /// An attribute's value, if it has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The names of its events, in order.
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// One metric series at its latest export: a histogram's count and sum, a counter's or a
/// gauge's value (as `sum`, with `count` 1).
#[derive(Clone, Debug)]
pub struct MetricPoint {
    /// The instrument.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The series' attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// Measurements (histograms).
    pub count: u64,
    /// Their sum, or the value.
    pub sum: f64,
    /// A histogram's bucket boundaries.
    pub bounds: Vec<f64>,
}

impl MetricPoint {
    fn key(&self) -> String {
        format!("{:?}", self.attributes)
    }

    fn of(metric: &opentelemetry_sdk::metrics::data::Metric) -> Vec<MetricPoint> {
        let point = |attributes: BTreeMap<String, String>, count, sum, bounds| MetricPoint {
            name: metric.name().to_owned(),
            unit: metric.unit().to_owned(),
            attributes,
            count,
            sum,
            bounds,
        };
        let attrs = |a: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
            a.map(|kv| (kv.key.to_string(), text(&kv.value)))
                .collect::<BTreeMap<_, _>>()
        };
        let mut out = Vec::new();
        match metric.data() {
            AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                for p in h.data_points() {
                    let a = attrs(&mut p.attributes());
                    out.push(point(a, p.count(), p.sum(), p.bounds().collect()));
                }
            }
            AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                for p in h.data_points() {
                    let a = attrs(&mut p.attributes());
                    out.push(point(a, p.count(), p.sum() as f64, p.bounds().collect()));
                }
            }
            AggregatedMetrics::U64(MetricData::Sum(s)) => {
                for p in s.data_points() {
                    out.push(point(
                        attrs(&mut p.attributes()),
                        1,
                        p.value() as f64,
                        vec![],
                    ));
                }
            }
            AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                for p in g.data_points() {
                    out.push(point(
                        attrs(&mut p.attributes()),
                        1,
                        p.value() as f64,
                        vec![],
                    ));
                }
            }
            other => panic!("{}: unexpected data {other:?}", metric.name()),
        }
        out
    }

    /// An attribute's value, if the series has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What a test's pipeline recorded.
#[derive(Clone, Debug)]
pub struct TelemetryRecord {
    /// Finished spans, by start time.
    pub spans: Vec<SpanRecord>,
    /// Metric series.
    pub metrics: Vec<MetricPoint>,
}

impl TelemetryRecord {
    /// Spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<&SpanRecord> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// The one call span (fails unless there is exactly one).
    pub fn call(&self) -> &SpanRecord {
        let calls = self.spans_named("resil.call");
        assert_eq!(calls.len(), 1, "call spans: {:#?}", self.spans);
        calls[0]
    }

    /// The attempt spans (CLIENT), by start time.
    pub fn attempts(&self) -> Vec<&SpanRecord> {
        self.spans.iter().filter(|s| s.kind == "client").collect()
    }

    /// The series of instrument `name`.
    pub fn points(&self, name: &str) -> Vec<&MetricPoint> {
        self.metrics.iter().filter(|m| m.name == name).collect()
    }

    /// Measurements of histogram `name` over all its series.
    pub fn count(&self, name: &str) -> u64 {
        self.points(name).iter().map(|p| p.count).sum()
    }

    /// The `resilience.event` counter for `event` over all its series.
    pub fn events(&self, event: &str) -> u64 {
        self.points("resilience.event")
            .iter()
            .filter(|p| p.attr("resilience.event.name") == Some(event))
            .map(|p| p.sum as u64)
            .sum()
    }

    /// Fails unless the requests `server` received carry, one each, the W3C `traceparent` of
    /// the attempt spans.
    pub fn assert_traceparents(&self, server: &crate::server::TestServer) {
        let mut sent: Vec<Option<String>> = server
            .requests()
            .iter()
            .map(|r| r.header("traceparent").map(str::to_owned))
            .collect();
        let mut spans: Vec<Option<String>> = self
            .attempts()
            .iter()
            .take(sent.len())
            .map(|a| Some(format!("00-{}-{}-01", a.trace, a.id)))
            .collect();
        // Hedges race: compared as sets.
        sent.sort();
        spans.sort();
        assert_eq!(sent, spans, "each attempt carries its own span's context");
    }

    /// Everything recorded, as text: names, attribute keys and values, event names.
    pub fn all_text(&self) -> String {
        let mut out = String::new();
        for s in &self.spans {
            out.push_str(&format!("{} {:?} {:?}\n", s.name, s.attributes, s.events));
        }
        for m in &self.metrics {
            out.push_str(&format!("{} {:?}\n", m.name, m.attributes));
        }
        out
    }

    /// Fails if any canary secret (plain, or as the Basic credentials it became) was recorded.
    pub fn assert_no_canary(&self) {
        let all = self.all_text();
        let basic = base64_of(&format!("user:{CANARY_PASSWORD}"));
        for secret in [CANARY_PASSWORD, CANARY_QUERY, CANARY_HEADER, &basic] {
            assert!(
                !all.contains(secret),
                "{secret} leaked into telemetry:\n{all}"
            );
        }
    }

    /// One line per span and metric series without timings, ids or ports: equal for two
    /// drivers that reported the same.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for s in &self.spans {
            let keep = [
                "http.request.method",
                "http.response.status_code",
                "error.type",
                "http.request.resend_count",
                "resil.attempt.kind",
                "resil.attempt.outcome",
                "resil.attempts",
                "resil.retries",
                "resil.hedges",
                "resil.redirects",
                "resil.outcome",
                "resil.give_up.reason",
            ];
            let attrs: Vec<String> = keep
                .iter()
                .filter_map(|k| s.attr(k).map(|v| format!("{k}={v}")))
                .collect();
            lines.push(format!(
                "span {} {} {} [{}] events {:?}",
                s.name,
                s.kind,
                s.status,
                attrs.join(" "),
                s.event_names()
            ));
        }
        for m in &self.metrics {
            let attrs: Vec<String> = m
                .attributes
                .iter()
                .filter(|(k, _)| k.as_str() != "server.port")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let value = if m.bounds.is_empty() {
                format!("{}", m.sum)
            } else if m.unit == "s" {
                format!("count {}", m.count)
            } else {
                format!("count {} sum {}", m.count, m.sum)
            };
            lines.push(format!("metric {} {} [{}]", m.name, value, attrs.join(" ")));
        }
        lines
    }
}

/// Standard base64 with padding, for the canary's Basic form.
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One line of a hooks transcript, read back.
enum Line<'a> {
    Send,
    Retry(&'a str),
    Hedge,
    Redirect { refused: bool },
    Other,
}

fn parse(line: &str) -> Line<'_> {
    let mut words = line.splitn(2, ' ');
    let (verb, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    match verb {
        "send" => Line::Send,
        "retry" => {
            let cause = rest
                .split_once('(')
                .and_then(|(_, c)| c.rsplit_once(')'))
                .map_or("", |(c, _)| c);
            Line::Retry(cause)
        }
        "hedge" if !rest.ends_with("won") => Line::Hedge,
        "redirect" => Line::Redirect {
            refused: rest.contains("refused"),
        },
        _ => Line::Other,
    }
}

impl Scenario {
    /// The URL to call for the telemetry run of this scenario: `url` with the canary secrets
    /// of [`canary_url`], except the query one where a redirect points back to the bare
    /// path (a loop, which a query of the first URL's own would break).
    pub fn telemetry_url(&self, url: &str) -> String {
        let loops_back = self.replies.iter().any(|r| match r {
            crate::server::Reply::Status { headers, .. } => headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("location") && v == "/s"),
            _ => false,
        });
        if loops_back {
            url.replacen("://", &format!("://user:{CANARY_PASSWORD}@"), 1)
        } else {
            canary_url(url)
        }
    }

    /// Checks what a driver's telemetry recorded for this scenario (made with
    /// [`canary_url`] and the [`CANARY_HEADER`]) against its transcript: one INTERNAL call span,
    /// one CLIENT span per `send` (its parent the call's, one trace, named by the method,
    /// `http.request.resend_count` 1, 2, … on resends, `resil.attempt.kind` initial / retry /
    /// redirect), each attempt's status or `error.type`, the call's counts and outcome, one
    /// `http.client.request.duration` point per attempt, one call duration, attempts per
    /// call, `resilience.event` retries and redirects; and no canary anywhere.
    pub fn check_telemetry(&self, driver: &str, recorded: &TelemetryRecord) {
        let name = self.name;
        let lines: Vec<Line<'_>> = self.transcript.iter().map(|l| parse(l)).collect();
        let sends = lines.iter().filter(|l| matches!(l, Line::Send)).count();
        let retries = lines.iter().filter(|l| matches!(l, Line::Retry(_))).count();
        let followed = lines
            .iter()
            .filter(|l| matches!(l, Line::Redirect { refused: false }))
            .count();
        let call = recorded.call();
        let attempts = recorded.attempts();
        let all = || format!("{driver}: {name}: {:#?}", recorded.summary());
        assert_eq!(call.kind, "internal", "{}", all());
        assert_eq!(call.parent, "0000000000000000", "{}", all());
        assert_eq!(attempts.len(), sends, "{}", all());
        let method = self.method;
        let span_name = if matches!(
            method,
            "GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH" | "TRACE" | "CONNECT"
        ) {
            method
        } else {
            "HTTP"
        };
        let mut kinds = Vec::new();
        let mut next = "initial";
        let mut outcomes: Vec<Option<&str>> = Vec::new();
        for line in &lines {
            match line {
                Line::Send => {
                    kinds.push(next);
                    next = "retry";
                    outcomes.push(None);
                }
                Line::Retry(cause) => {
                    if let Some(last) = outcomes.last_mut() {
                        *last = Some(cause);
                    }
                }
                Line::Hedge => {
                    if let Some(last) = kinds.last_mut() {
                        *last = "hedge";
                    }
                }
                Line::Redirect { refused: false } => next = "redirect",
                _ => {}
            }
        }
        for (i, attempt) in attempts.iter().enumerate() {
            let at = format!("{driver}: {name}: attempt {i}: {attempt:#?}");
            assert_eq!(attempt.name, span_name, "{at}");
            assert_eq!(attempt.parent, call.id, "{at}");
            assert_eq!(attempt.trace, call.trace, "{at}");
            assert_eq!(
                attempt.attr("http.request.method"),
                call.attr("http.request.method")
            );
            let resend = (i > 0).then(|| i.to_string());
            assert_eq!(
                attempt.attr("http.request.resend_count"),
                resend.as_deref(),
                "{at}"
            );
            assert_eq!(attempt.attr("resil.attempt.kind"), Some(kinds[i]), "{at}");
            assert!(attempt.attr("server.address").is_some(), "{at}");
            assert!(attempt.attr("server.port").is_some(), "{at}");
            assert!(attempt.attr("url.full").is_some(), "{at}");
            match outcomes[i] {
                Some(cause) if cause.starts_with("status ") => {
                    assert_eq!(
                        attempt.attr("http.response.status_code"),
                        cause.strip_prefix("status "),
                        "{at}"
                    );
                }
                Some("attempt timed out") => {
                    assert_eq!(attempt.attr("error.type"), Some("timeout"), "{at}");
                }
                Some(_) => assert!(attempt.attr("error.type").is_some(), "{at}"),
                None => {}
            }
        }
        // The call.
        let failed = matches!(self.expect, Expect::Error(_))
            || matches!(self.expect, Expect::Response(s) if s >= 400);
        assert_eq!(call.attr("error.type").is_some(), failed, "{}", all());
        assert_eq!(
            call.status,
            if failed { "error" } else { "unset" },
            "{}",
            all()
        );
        if let Expect::Response(status) = self.expect {
            let status = status.to_string();
            assert_eq!(
                call.attr("http.response.status_code"),
                Some(&*status),
                "{}",
                all()
            );
            let answered = attempts
                .iter()
                .any(|a| a.attr("http.response.status_code") == Some(&*status));
            assert!(answered, "{}", all());
        }
        let sends_text = sends.to_string();
        assert_eq!(call.attr("resil.attempts"), Some(&*sends_text), "{}", all());
        assert_eq!(
            call.attr("resil.retries"),
            Some(&*retries.to_string()),
            "{}",
            all()
        );
        let event_retries = call
            .event_names()
            .iter()
            .filter(|n| **n == "resil.retry")
            .count();
        assert_eq!(event_retries, retries, "{}", all());
        // Metrics.
        assert_eq!(
            recorded.count("http.client.request.duration") as usize,
            sends,
            "{}",
            all()
        );
        for point in recorded.points("http.client.request.duration") {
            assert_eq!(point.unit, "s");
            assert_eq!(
                point.attr("http.request.method"),
                call.attr("http.request.method")
            );
            assert!(point.attr("server.address").is_some(), "{}", all());
        }
        assert_eq!(recorded.count("resil.client.call.duration"), 1, "{}", all());
        let attempts_sum: f64 = recorded
            .points("resil.client.call.attempts")
            .iter()
            .map(|p| p.sum)
            .sum();
        assert_eq!(attempts_sum as usize, sends, "{}", all());
        assert_eq!(recorded.events("retry") as usize, retries, "{}", all());
        assert_eq!(recorded.events("redirect") as usize, followed, "{}", all());
        recorded.assert_no_canary();
    }
}

/// What an OTLP/HTTP exporter posted: its path and protobuf body.
#[derive(Clone, Debug)]
pub struct OtlpPost {
    /// `/v1/traces` or `/v1/metrics`.
    pub path: String,
    /// `content-type`.
    pub content_type: String,
    /// The protobuf body.
    pub body: Vec<u8>,
}

/// A loopback OTLP/HTTP endpoint: answers every POST with 200 and keeps its body. Stopped
/// when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<OtlpPost>>>,
    stop: Arc<AtomicBool>,
}

impl OtlpReceiver {
    /// Starts one on 127.0.0.1.
    pub fn start() -> OtlpReceiver {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("OTLP receiver cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("OTLP receiver address: {e}"));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopping) = (posts.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || serve_otlp(stream, &kept));
            }
        });
        OtlpReceiver { addr, posts, stop }
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was posted so far.
    pub fn posts(&self) -> Vec<OtlpPost> {
        lock(&self.posts).clone()
    }

    /// Every span that arrived, decoded: (name, kind, attributes as text).
    pub fn spans(&self) -> Vec<(String, i32, BTreeMap<String, String>)> {
        use prost::Message as _;
        let mut out = Vec::new();
        for post in self.posts().iter().filter(|p| p.path == "/v1/traces") {
            let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&post.body[..])
                .unwrap_or_else(|e| panic!("not an OTLP trace export: {e}"));
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        let attributes = span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
                            .collect();
                        out.push((span.name, span.kind, attributes));
                    }
                }
            }
        }
        out
    }

    /// Every metric name that arrived, decoded.
    pub fn metric_names(&self) -> Vec<String> {
        use prost::Message as _;
        let mut out = Vec::new();
        for post in self.posts().iter().filter(|p| p.path == "/v1/metrics") {
            let request = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(&post.body[..])
                .unwrap_or_else(|e| panic!("not an OTLP metrics export: {e}"));
            for resource in request.resource_metrics {
                for scope in resource.scope_metrics {
                    out.extend(scope.metrics.into_iter().map(|m| m.name));
                }
            }
        }
        out
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn any_value_text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Reads HTTP/1.1 requests off `stream` (kept alive) and answers each with 200.
fn serve_otlp(stream: TcpStream, posts: &Mutex<Vec<OtlpPost>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("content-type") {
                    content_type = value.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        lock(posts).push(OtlpPost {
            path,
            content_type,
            body,
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
