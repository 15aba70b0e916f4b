//! resil-tokio under load, and as a tower layer: a thousand concurrent calls through one
//! client to a backend where every fifth answer is a 503, then the same policy wrapped around
//! a plain hyper-util client.
//!
//! ```sh
//! cargo run -p resil-tokio --example many_calls
//! ```
//!
//! The backend is resil's loopback test server (127.0.0.1, a port of its own), which records
//! which connection carried each request.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use resil_tests::{Reply, TestServer};
use resil_tokio::{
    Backoff, CircuitBreaker, Client, ClientConfig, Jitter, ResilLayer, ResponseExt, RetryBudget,
    RetryPolicy,
};
use tower_layer::Layer;
use tower_service::Service;

const CALLS: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server = TestServer::start();
    server.handle("/items", |_, index| {
        if index % 5 == 0 {
            Reply::status(503)
        } else {
            Reply::body(200, "item")
        }
    });
    let policy = RetryPolicy::builder()
        .backoff(Backoff::exponential(Duration::from_millis(5)))
        .jitter(Jitter::Full)
        .build()?;
    // Everything that calls this backend shares one breaker and one retry budget.
    let breaker = Arc::new(Mutex::new(CircuitBreaker::builder().build()?));
    let budget = Arc::new(Mutex::new(RetryBudget::default()));
    let client = Client::builder()
        .base_url(&server.url("/"))
        .policy(policy.clone())
        .breaker(Arc::clone(&breaker))
        .budget(Arc::clone(&budget))
        .max_connections_per_host(16)
        .build()?;

    println!("1. {CALLS} concurrent GETs, every fifth answer a 503, at most 16 connections");
    let start = Instant::now();
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            // `Client` is a handle: clones share the pool, breaker, budget and counters.
            let client = client.clone();
            tokio::spawn(async move { client.get("/items").send().await?.text().await })
        })
        .collect();
    let mut answered = 0;
    for call in calls {
        match call.await? {
            Ok(_) => answered += 1,
            Err(error) => println!("   failed: {error:#}"),
        }
    }
    println!(
        "   {answered} of {CALLS} answered in {:?}, at most {} connections in use at once",
        start.elapsed(),
        server.peak_connections_in_use()
    );
    println!("   {}\n", client.stats());

    println!("2. The same resilience around a plain hyper-util client (tower Layer)");
    let mut config = ClientConfig::default();
    config.policy(policy);
    config.base_url(&server.url("/"));
    config.breaker(breaker);
    config.budget(budget);
    let layer = ResilLayer::from_config(config)?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut service = layer.layer(hyper);
    for _ in 0..10 {
        // A host-less URI: the layer resolves it against the base URL.
        let request = resil_tokio::http::Request::get("/items").body(Full::new(Bytes::new()))?;
        service
            .call(request)
            .await?
            .error_for_status()?
            .text()
            .await?;
    }
    println!("   10 calls: {}", layer.stats());
    Ok(())
}
