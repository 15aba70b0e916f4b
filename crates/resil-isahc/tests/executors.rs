//! The shared scenario table through resil-isahc under three executors: tokio, async-std and
//! smol. Transcripts must equal the blocking and tokio drivers' (the table pins them).

use std::future::Future;
use std::sync::Arc;

use resil_isahc::Client;
use resil_tests::{
    Expect, TestServer, Transcript, refused_addr, scenario_policy, scenarios, shared_load,
};

/// Runs every scenario with `block_on` as the executor.
fn run_table(
    executor: &'static str,
    block_on: impl Fn(std::pin::Pin<Box<dyn Future<Output = ()>>>),
) {
    let _load = shared_load();
    for scenario in scenarios() {
        let server = TestServer::start();
        server.script("/s", scenario.replies.clone());
        let url = if scenario.refused {
            format!("http://{}/s", refused_addr())
        } else {
            server.url("/s")
        };
        let transcript = Arc::new(Transcript::default());
        let scenario_name = scenario.name;
        let expect = scenario.expect;
        let headers = scenario.headers.clone();
        let method = http::Method::from_bytes(scenario.method.as_bytes()).unwrap();
        let lines = transcript.clone();
        block_on(Box::pin(async move {
            let client = Client::builder()
                .policy(scenario_policy())
                .hooks(lines)
                .seed(7)
                .build()
                .unwrap();
            let mut request = client.request(method, &url);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let result = request.send().await;
            match (expect, &result) {
                (Expect::Response(status), Ok(response)) => {
                    assert_eq!(
                        response.status().as_u16(),
                        status,
                        "{executor}: {scenario_name}"
                    )
                }
                (Expect::Error(kind), Err(e)) => assert!(
                    format!("{:?}", e.kind()).starts_with(kind),
                    "{executor}: {scenario_name}: expected {kind}, got {e}"
                ),
                (want, got) => {
                    panic!("{executor}: {scenario_name}: expected {want:?}, got {got:?}")
                }
            }
        }));
        assert_eq!(
            server.hits("/s"),
            scenario.server_hits,
            "{executor}: {}",
            scenario.name
        );
        assert_eq!(
            transcript.lines(),
            scenario.transcript,
            "{executor}: {}",
            scenario.name
        );
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
