//! Redirects through resil-tokio, the client and the tower layer: hyper-util follows none;
//! resil follows by the rules every driver shares (the cases in `resil_tests::RedirectWorld`).
// The load guard serialises whole tests across this process; it spans every await.
#![allow(clippy::await_holding_lock)]

mod common;

use bytes::Bytes;
use http_body_util::Full;
use resil_tests::{CREDENTIALS, CaseBody, RedirectCase, RedirectWorld, SENSITIVE, shared_load};
use resil_tokio::{Client, ClientConfig, ResilLayer, ResponseExt};
use tower_layer::Layer;
use tower_service::Service;

use common::plain_hyper;

async fn send(
    client: &Client,
    case: &RedirectCase,
) -> Result<(u16, String), resil_tokio::ErrorKind> {
    let mut request = client.request(case.method.clone(), &case.url);
    for (name, value) in CREDENTIALS {
        request = request.header(name, value);
    }
    request = match case.body {
        CaseBody::None => request,
        CaseBody::Bytes(bytes) => request.body(bytes),
        CaseBody::Stream(bytes) => request.body_stream(Full::new(Bytes::from(bytes))),
    };
    let response = request.send().await.map_err(|e| e.kind())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.kind())?;
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_cases_through_the_tokio_client() {
    let _load = shared_load();
    let world = RedirectWorld::start();
    let builder = || Client::builder().sensitive_header(SENSITIVE).no_proxy();
    let following = builder().build().unwrap();
    let off = builder().max_redirects(0).build().unwrap();
    for case in world.cases() {
        let client = if case.follow { &following } else { &off };
        world.check("tokio", &case, send(client, &case).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_cases_through_the_tower_layer() {
    let _load = shared_load();
    let world = RedirectWorld::start();
    let layer = |follow: bool| {
        let mut config = ClientConfig::default();
        config.sensitive_header(SENSITIVE);
        if !follow {
            config.redirects(resil_tokio::RedirectPolicy::none());
        }
        ResilLayer::from_config(config).unwrap()
    };
    let (following, off) = (layer(true), layer(false));
    for case in world.cases() {
        // A tower service's body is `Clone`: a stream that can be sent once is the client's.
        if case.body == (CaseBody::Stream("form=1")) {
            continue;
        }
        let mut service = if case.follow { &following } else { &off }.layer(plain_hyper());
        let mut request = http::Request::builder()
            .method(case.method.clone())
            .uri(&case.url);
        for (name, value) in CREDENTIALS {
            request = request.header(name, value);
        }
        let body = match case.body {
            CaseBody::Bytes(bytes) => Bytes::from(bytes),
            _ => Bytes::new(),
        };
        let result = match service.call(request.body(Full::new(body)).unwrap()).await {
            Ok(response) => {
                let status = response.status().as_u16();
                Ok((status, response.text().await.unwrap_or_default()))
            }
            Err(e) => Err(e.kind()),
        };
        world.check("tower", &case, result);
    }
}
