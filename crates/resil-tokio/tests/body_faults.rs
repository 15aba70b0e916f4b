//! Faults after the response head through resil-tokio, the client and the tower layer: a
//! body that fails while it is read is retried (read whole) or resumed (read as a stream),
//! as the call allows (the cases in `resil_tests::BodyFaultWorld`).
// The load guard serialises whole tests across this process; it spans every await.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use resil_tests::{BodyFaultCase, BodyFaultWorld, ReadAs, STALL_TIMEOUT, shared_load};
use resil_tokio::{
    Backoff, Client, ClientConfig, ErrorKind, Jitter, ResilLayer, Response, ResponseExt,
    RetryPolicy,
};
use tower_layer::Layer;
use tower_service::Service;

use common::plain_hyper;

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(Backoff::Constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .attempt_timeout(Some(STALL_TIMEOUT))
        .build()
        .unwrap()
}

/// The body of `response`, read as `case` says.
async fn read(response: Response, case: &BodyFaultCase) -> Result<Vec<u8>, String> {
    match case.read {
        ReadAs::Whole => response
            .bytes()
            .await
            .map(Vec::from)
            .map_err(|e| format!("{e:#}")),
        ReadAs::Stream => {
            let mut body = response.into_body();
            let mut out = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("{e:#}"))?;
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(out)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_faults_through_the_tokio_client() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let client = Client::builder()
        .policy(policy())
        .no_proxy()
        .build()
        .unwrap();
    for case in world.cases() {
        let sent = client.request(case.method.clone(), &case.url).send().await;
        let result = match sent {
            Ok(response) => read(response, &case).await,
            Err(e) => Err(format!("{e:#}")),
        };
        world.check("tokio", &case, result);
    }
    let stats = client.stats();
    assert!(stats.body_failures >= 12, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_faults_through_the_tower_layer() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let mut config = ClientConfig::default();
    config.policy(policy());
    let layer = ResilLayer::from_config(config).unwrap();
    for case in world.cases() {
        let mut service = layer.layer(plain_hyper());
        let request = http::Request::builder()
            .method(case.method.clone())
            .uri(&case.url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let result = match service.call(request).await {
            Ok(response) => read(response, &case).await,
            Err(e) => Err(format!("{e:#}")),
        };
        world.check("tower", &case, result);
    }
    assert!(layer.stats().body_failures >= 12, "{}", layer.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_request_body_was_a_stream_is_not_sent_again() {
    let _load = shared_load();
    let world = BodyFaultWorld::start();
    let client = Client::builder().no_proxy().build().unwrap();
    // PUT is idempotent, but its streamed body went out once: nothing could send it again.
    let url = world.server.url("/whole/cut-length");
    let response = client
        .put(&url)
        .body_stream(Full::new(Bytes::from_static(b"streamed")))
        .send()
        .await
        .unwrap();
    let err = response.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Body, "{err:#}");
    assert!(format!("{err:#}").contains("ended before"), "{err:#}");
    assert_eq!(world.server.hits("/whole/cut-length"), 1);
}

/// Through the client only: the tower layer's connections are the inner service's, which
/// resil does not see (see `ResilLayer`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_framed_against_rfc_9112_are_refused_once() {
    let _load = shared_load();
    let world = resil_tests::FramingWorld::start();
    let client = Client::builder().no_proxy().build().unwrap();
    for (name, url) in world.cases() {
        let read = match client.get(&url).send().await {
            Ok(response) => response.bytes().await.map(Vec::from),
            Err(e) => Err(e),
        };
        world.check("tokio", name, &url, read.map_err(|e| format!("{e:#}")));
    }
}
