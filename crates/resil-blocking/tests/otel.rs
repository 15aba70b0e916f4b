//! resil-blocking with the `otel` feature: the scenario table through the blocking client
//! with the real SDK's in-memory exporters (the same spans and metric points as every other
//! driver, each attempt's `traceparent` on the wire, no canary secret in any attribute), and
//! a call whose spans and metrics go out through `opentelemetry-otlp` (OTLP/HTTP protobuf) to
//! a loopback receiver that decodes them.
#![cfg(feature = "otel")]

mod common;

use std::sync::Arc;

use common::{ManualClock, builder};
use resil_tests::{
    CANARY_HEADER, CANARY_HEADER_NAME, OtlpReceiver, Reply, Telemetry, TestServer, Transcript,
    canary_url, scenarios, shared_load,
};

#[test]
fn scenario_table_reports_the_same_telemetry_through_the_blocking_client() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let telemetry = Telemetry::new();
        let transcript = Arc::new(Transcript::default());
        let client = builder(&ManualClock::new())
            .policy(scenario.policy())
            .hooks(transcript.clone())
            .otel_meter(telemetry.meter())
            .build()
            .unwrap();
        let result = tracing::dispatcher::with_default(&telemetry.dispatch(), || {
            let mut request = client
                .request(scenario.http_method(), &scenario.telemetry_url(&url))
                .header(CANARY_HEADER_NAME, CANARY_HEADER);
            for (name, value) in &scenario.headers {
                request = request.header(name, value);
            }
            request.send()
        });
        scenario.check("blocking", &result, &server, &transcript);
        let recorded = telemetry.recorded();
        scenario.check_telemetry("blocking", &recorded);
        recorded.assert_traceparents(&server);
    }
}

#[test]
fn spans_and_metrics_reach_an_otlp_http_endpoint_as_protobuf() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    let _load = shared_load();
    let receiver = OtlpReceiver::start();
    let server = TestServer::start();
    server.script("/o", vec![Reply::status(503), Reply::body(200, "ok")]);
    // reqwest's blocking client, straight to the receiver (never through a proxy).
    let http = || {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
    };
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http())
        .with_endpoint(format!("{}/v1/traces", receiver.url()))
        .build()
        .unwrap();
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(spans)
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(http())
        .with_endpoint(format!("{}/v1/metrics", receiver.url()))
        .build()
        .unwrap();
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("otlp-test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    let client = builder(&ManualClock::new())
        .otel_meter(meter_provider.meter("resil"))
        .build()
        .unwrap();
    let response = tracing::subscriber::with_default(subscriber, || {
        client.get(&canary_url(&server.url("/o"))).send()
    });
    assert_eq!(response.unwrap().status(), 200);
    tracer_provider.force_flush().unwrap();
    meter_provider.force_flush().unwrap();

    let posts = receiver.posts();
    assert!(
        posts
            .iter()
            .all(|p| p.content_type == "application/x-protobuf"),
        "{posts:?}"
    );
    let spans = receiver.spans();
    let names: Vec<_> = spans
        .iter()
        .map(|(name, kind, _)| (name.as_str(), *kind))
        .collect();
    // OTLP span kinds: 1 internal, 3 client; attempts end (and are exported) first.
    assert_eq!(names, [("GET", 3), ("GET", 3), ("resil.call", 1)]);
    let (_, _, retry) = &spans[1];
    assert_eq!(retry["http.request.resend_count"], "1");
    assert_eq!(retry["http.response.status_code"], "200");
    assert_eq!(retry["resil.attempt.kind"], "retry");
    assert!(
        retry["url.full"].ends_with("/o?session=REDACTED"),
        "{retry:?}"
    );
    let metric_names = receiver.metric_names();
    for name in [
        "http.client.request.duration",
        "resil.client.call.duration",
        "resil.client.call.attempts",
        "resilience.event",
    ] {
        assert!(
            metric_names.iter().any(|n| n == name),
            "{name}: {metric_names:?}"
        );
    }
    let everything = format!("{spans:?}");
    assert!(
        !everything.contains(resil_tests::CANARY_QUERY),
        "{everything}"
    );
    assert!(
        !everything.contains(resil_tests::CANARY_PASSWORD),
        "{everything}"
    );
    let _ = meter_provider.shutdown();
    let _ = tracer_provider.shutdown();
}
