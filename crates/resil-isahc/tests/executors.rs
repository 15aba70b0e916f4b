//! The shared scenario table through resil-isahc under three executors: tokio, async-std and
//! smol. Transcripts must equal the blocking and tokio drivers' (the table pins them).

use std::future::Future;
use std::sync::Arc;

use resil_isahc::Client;
use resil_tests::{Transcript, scenarios, shared_load};

/// One call's outcome.
type Outcome = Result<resil_isahc::Response, resil_isahc::Error>;

/// Runs every scenario with `block_on` as the executor.
fn run_table(
    executor: &'static str,
    block_on: impl Fn(std::pin::Pin<Box<dyn Future<Output = Outcome>>>) -> Outcome,
) {
    let _load = shared_load();
    for scenario in scenarios() {
        let (server, url) = scenario.serve();
        let transcript = Arc::new(Transcript::default());
        let (method, headers, lines, policy) = (
            scenario.http_method(),
            scenario.headers.clone(),
            transcript.clone(),
            scenario.policy(),
        );
        let result = block_on(Box::pin(async move {
            let client = Client::builder()
                .policy(policy)
                .latency_sketch(resil_tests::open_sketch())
                .hooks(lines)
                .seed(7)
                .build()
                .unwrap();
            let mut request = client.request(method, &url);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            request.send().await
        }));
        scenario.check(executor, &result, &server, &transcript);
    }
}

#[test]
fn scenario_table_under_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run_table("tokio", |f| runtime.block_on(f));
}

#[test]
fn scenario_table_under_async_std() {
    run_table("async-std", async_std::task::block_on);
}

#[test]
fn scenario_table_under_smol() {
    run_table("smol", smol::block_on);
}
