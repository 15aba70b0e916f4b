//! Credentials through resil-tokio: kept home when a redirect points elsewhere, and taken from
//! the URL as basic authorization by the client and by the tower layer.
// The load guard serialises whole tests across this process (a load test runs alone); it is
// meant to be held across every await of the test.
#![allow(clippy::await_holding_lock)]

mod common;

use common::{empty_get, plain_hyper};
use resil_tests::{Reply, TestServer, shared_load};
use resil_tokio::{Client, ResilLayer, RetryPolicy};
use tower_layer::Layer;
use tower_service::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_providers_credentials_stay_home_when_a_redirect_leaves_the_origin() {
    let _load = shared_load();
    let other = TestServer::start_on("127.0.0.2");
    other.script("/landing", vec![Reply::status(200)]);
    let origin = TestServer::start();
    origin.script(
        "/go",
        vec![Reply::with_header(302, "location", &other.url("/landing"))],
    );
    let token = resil_tokio::BearerToken::new("secret", || async {
        Ok::<_, resil_tokio::AuthError>("fresh".to_owned())
    });
    let client = Client::builder().auth(token).build().unwrap();
    let response = client.get(&origin.url("/go")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer secret")
    );
    assert_eq!(other.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_authorization() {
    // hyper-util alone drops them.
    resil_tests::check_url_credentials_through(&Client::new().unwrap()).await;
    // The tower layer around it sends them too.
    let server = TestServer::start();
    server.script("/creds", vec![Reply::status(200)]);
    let mut service = ResilLayer::new(RetryPolicy::default()).layer(plain_hyper());
    let url = resil_tests::url_with_credentials(&server, "/creds");
    service.call(empty_get(&url)).await.unwrap();
    resil_tests::assert_url_credentials_sent_as_basic(&server, 1);
}
