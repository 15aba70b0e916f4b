//! Hedged requests through resil-tokio, the client and the tower layer: attempts out side by
//! side, the first good answer returned, the rest dropped (the cases in
//! `resil_tests::HedgeWorld`).
// The load guard serialises whole tests across this process; it spans every await.
#![allow(clippy::await_holding_lock)]

mod common;

use bytes::Bytes;
use http_body_util::Full;
use resil_tests::{HedgeWorld, hedge_policy, open_sketch, shared_load};
use resil_tokio::{Client, ClientConfig, ResilLayer, ResponseExt};
use tower_layer::Layer;
use tower_service::Service;

use common::plain_hyper;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_cases_through_the_tokio_client() {
    let _load = shared_load();
    let world = HedgeWorld::start();
    for case in world.cases() {
        let client = Client::builder()
            .policy(hedge_policy())
            .latency_sketch(open_sketch())
            .no_proxy()
            .build()
            .unwrap();
        let result = match client.request(case.method.clone(), &case.url).send().await {
            Ok(response) => response.text().await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        world.check("tokio", &case, result);
        let stats = client.stats();
        assert_eq!(stats.hedges, case.hedges, "{}: {stats}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedge_cases_through_the_tower_layer() {
    let _load = shared_load();
    let world = HedgeWorld::start();
    for case in world.cases() {
        let mut config = ClientConfig::default();
        config.policy(hedge_policy());
        config.latency_sketch(open_sketch());
        let layer = ResilLayer::from_config(config).unwrap();
        let mut service = layer.layer(plain_hyper());
        let request = http::Request::builder()
            .method(case.method.clone())
            .uri(&case.url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let result = match service.call(request).await {
            Ok(response) => response.text().await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        };
        world.check("tower", &case, result);
        assert_eq!(layer.stats().hedges, case.hedges, "{}", case.name);
    }
}
