//! resil-tokio with the `otel` feature: the scenario table through the client and through the
//! tower layer with the real SDK's in-memory exporters: the same spans and metric points as
//! every other driver, each attempt's `traceparent` on the wire, no canary secret anywhere.
#![cfg(feature = "otel")]
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::Arc;

use common::plain_hyper;
use resil_tests::{
    CANARY_HEADER, CANARY_HEADER_NAME, Telemetry, Transcript, scenarios, shared_load,
};
use resil_tokio::{Client, ClientConfig, ResilLayer};
use tower_layer::Layer;
use tower_service::Service;
use tracing::instrument::WithSubscriber;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_table_reports_the_same_telemetry_through_the_tokio_client() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let telemetry = Telemetry::new();
        let transcript = Arc::new(Transcript::default());
        let client = Client::builder()
            .policy(scenario.policy())
            .hooks(transcript.clone())
            .otel_meter(telemetry.meter())
            .seed(7)
            .build()
            .unwrap();
        let mut request = client
            .request(scenario.http_method(), &scenario.telemetry_url(&url))
            .header(CANARY_HEADER_NAME, CANARY_HEADER);
        for (name, value) in &scenario.headers {
            request = request.header(name, value);
        }
        let result = request.send().with_subscriber(telemetry.dispatch()).await;
        scenario.check("tokio", &result, &server, &transcript);
        let recorded = telemetry.recorded();
        scenario.check_telemetry("tokio", &recorded);
        recorded.assert_traceparents(&server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_table_reports_the_same_telemetry_through_the_tower_layer() {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let telemetry = Telemetry::new();
        let transcript = Arc::new(Transcript::default());
        let mut config = ClientConfig::default();
        config.policy(scenario.policy());
        config.hooks(transcript.clone());
        config.otel_meter(telemetry.meter());
        config.seed(7);
        let mut service = ResilLayer::from_config(config)
            .unwrap()
            .layer(plain_hyper());
        let mut request = http::Request::builder()
            .method(scenario.http_method())
            .uri(scenario.telemetry_url(&url))
            .header(CANARY_HEADER_NAME, CANARY_HEADER);
        for (name, value) in &scenario.headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let result = service
            .call(request)
            .with_subscriber(telemetry.dispatch())
            .await;
        scenario.check("tower", &result, &server, &transcript);
        let recorded = telemetry.recorded();
        scenario.check_telemetry("tower", &recorded);
        recorded.assert_traceparents(&server);
    }
}
