//! resil-isahc with the `otel` feature: the scenario table under tokio with the real SDK's
//! in-memory exporters: the same spans and metric points as every other driver, each
//! attempt's `traceparent` on the wire, no canary secret anywhere.
#![cfg(feature = "otel")]

use std::sync::Arc;

use resil_isahc::Client;
use resil_tests::{
    CANARY_HEADER, CANARY_HEADER_NAME, Telemetry, Transcript, scenarios, shared_load,
};
use tracing::instrument::WithSubscriber;

#[test]
fn scenario_table_reports_the_same_telemetry_through_the_isahc_client() {
    let _load = shared_load();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
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
        let result = runtime.block_on(request.send().with_subscriber(telemetry.dispatch()));
        scenario.check("isahc", &result, &server, &transcript);
        let recorded = telemetry.recorded();
        scenario.check_telemetry("isahc", &recorded);
        recorded.assert_traceparents(&server);
    }
}
