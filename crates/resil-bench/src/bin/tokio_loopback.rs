//! Loopback GETs on current-thread tokio runtimes (one per client) with 1 and 32 in flight:
//! resil-tokio vs bare hyper-util (and hyper-util with the pool timer resil-tokio's transport
//! sets) vs reqwest + reqwest-middleware + reqwest-retry vs reqwest + backon, and on the flaky
//! endpoint (every 5th answer a 503, zero backoff) vs a hand-written retry loop. Interleaved
//! rounds with rotating order, client CPU from getrusage, the server in a child process.
//! Method: ../shared/BENCHMARKING.md.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin tokio_loopback
//! taskset -c 0 target/release/tokio_loopback --requests 20000 --rounds 5
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, Retryable};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use resil_bench::{cpu_micros, server_stats, spawn_server};
use resil_core::{Backoff, CircuitBreaker, Jitter, RetryPolicy, TripCondition, Window};

/// Attempts every client may make on /flaky. With 32 calls in flight their attempts can
/// fall into step with the endpoint's every-5th 503 (10 in a row, for resil-tokio and the
/// hand loop alike, about once in 300,000 calls), so the cap is far above that.
const ATTEMPTS: usize = 30;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Hyper,
    HyperTimed,
    HandLoop,
    Resil,
    ResilLean,
    ResilHedged,
    ReqwestRetry,
    ReqwestBackon,
}

impl Kind {
    const COUNT: usize = Kind::ReqwestBackon as usize + 1;

    fn name(self) -> &'static str {
        match self {
            Kind::Hyper => "hyper-util legacy client, bare",
            Kind::HyperTimed => "hyper-util + pool timer (as resil-tokio's transport)",
            Kind::HandLoop => "hyper-util + hand-written retry loop",
            Kind::Resil => "resil-tokio",
            Kind::ResilLean => "resil-tokio without breaker and budget",
            Kind::ResilHedged => "resil-tokio hedging (adaptive, p95), never slow enough to hedge",
            Kind::ReqwestRetry => "reqwest 0.13 + reqwest-middleware + reqwest-retry",
            Kind::ReqwestBackon => "reqwest 0.13 + backon",
        }
    }
}

struct Clients {
    hyper: HyperClient<HttpConnector, Full<Bytes>>,
    /// With the pool timer and idle timeout resil-tokio's transport sets: a timer is then
    /// always pending, so every wait for the socket is a timed `epoll_wait`.
    hyper_timed: HyperClient<HttpConnector, Full<Bytes>>,
    resil: resil_tokio::Client,
    /// The same loop without the default breaker and budget.
    lean: resil_tokio::Client,
    /// The default client, hedging: on a fast endpoint it never hedges, so it measures what
    /// hedging costs a request that is not hedged.
    hedged: resil_tokio::Client,
    reqwest: reqwest::Client,
    middleware: reqwest_middleware::ClientWithMiddleware,
}

async fn hyper_get(client: &HyperClient<HttpConnector, Full<Bytes>>, url: &str) -> u16 {
    let request = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

async fn one(kind: Kind, clients: &Clients, url: &str) -> u16 {
    match kind {
        Kind::Hyper => hyper_get(&clients.hyper, url).await,
        Kind::HyperTimed => hyper_get(&clients.hyper_timed, url).await,
        Kind::HandLoop => {
            let mut status = 0;
            for _ in 0..ATTEMPTS {
                status = hyper_get(&clients.hyper, url).await;
                if status != 503 {
                    break;
                }
            }
            status
        }
        Kind::Resil | Kind::ResilLean | Kind::ResilHedged => match match kind {
            Kind::Resil => &clients.resil,
            Kind::ResilHedged => &clients.hedged,
            _ => &clients.lean,
        }
        .get(url)
        .send()
        .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                status
            }
            Err(_) => 0,
        },
        Kind::ReqwestRetry => match clients.middleware.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        },
        Kind::ReqwestBackon => {
            // `Err(None)` asks backon to retry a 503; `?` turns a reqwest error into `Some`.
            let attempt = || async {
                let response = clients.reqwest.get(url).send().await?;
                let status = response.status();
                let _ = response.bytes().await;
                if status == 503 {
                    Err(None)
                } else {
                    Ok(status.as_u16())
                }
            };
            attempt
                .retry(
                    ConstantBuilder::default()
                        .with_delay(Duration::ZERO)
                        .with_max_times(ATTEMPTS - 1),
                )
                .await
                .unwrap_or(0)
        }
    }
}

/// `n` logical GETs spread over `in_flight` concurrent tasks; (client CPU µs, wall).
fn run(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    clients: &Arc<Clients>,
    url: &str,
    n: usize,
    in_flight: usize,
) -> (f64, Duration) {
    let cpu = cpu_micros();
    let wall = Instant::now();
    runtime.block_on(async {
        let per_task = n / in_flight;
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (clients, url) = (clients.clone(), url.to_owned());
            tasks.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    let status = one(kind, &clients, &url).await;
                    assert_eq!(status, 200, "{} failed a request", kind.name());
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    ((cpu_micros() - cpu) as f64, wall.elapsed())
}

fn main() {
    let (requests, rounds) = resil_bench::requests_and_rounds(20_000, 5);
    #[cfg(feature = "otel")]
    let _otel = resil_bench::install_otel_sdk();
    // One runtime per client: a timer one client leaves pending (resil-tokio's attempt timer,
    // a pool's idle sweep) would otherwise make every other client's waits for the socket
    // timed `epoll_wait`s too: ~0.15 µs more per request here (hyper-util with a pool timer
    // against without). No client is shared between kinds either: a pooled connection is
    // driven by the runtime that opened it.
    let runtimes: Vec<tokio::runtime::Runtime> = (0..Kind::COUNT)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        })
        .collect();
    let runtime_of = |kind: Kind| &runtimes[kind as usize];
    let (mut child, base) = spawn_server();
    let zero = RetryPolicy::builder()
        .max_attempts(ATTEMPTS as u32)
        .backoff(Backoff::Constant(Duration::ZERO))
        .jitter(Jitter::None)
        .build()
        .expect("policy");
    let make = |flaky: bool| {
        let _guard = runtimes[0].enter();
        let resil = if flaky {
            // The default breaker trips after 5 failures in a row. With 32 calls in flight
            // their outcomes interleave, so 5 of the endpoint's every-5th 503s can be recorded
            // back to back; 1 run in 6 failed a request here on an open breaker. A ratio keeps
            // the breaker in the loop without tripping on the deliberate 20 %.
            let breaker = CircuitBreaker::builder()
                .trip(TripCondition::FailureRatio {
                    ratio: 0.5,
                    min_calls: 20,
                    window: Window::Calls(100),
                })
                .build()
                .expect("breaker");
            resil_tokio::Client::builder()
                .policy(zero.clone())
                .breaker(Arc::new(std::sync::Mutex::new(breaker)))
                .no_budget()
                .build()
        } else {
            resil_tokio::Client::new()
        }
        .expect("resil client");
        let lean = resil_tokio::Client::builder()
            .policy(if flaky {
                zero.clone()
            } else {
                RetryPolicy::default()
            })
            .no_budget()
            .no_breaker()
            .build()
            .expect("lean resil client");
        let hedged = resil_tokio::Client::builder()
            .hedge(resil_core::Hedging::adaptive())
            .build()
            .expect("hedging resil client");
        let reqwest = reqwest::Client::builder().build().expect("reqwest");
        let retry = ExponentialBackoff::builder()
            .retry_bounds(Duration::ZERO, Duration::ZERO)
            .build_with_max_retries(ATTEMPTS as u32 - 1);
        let middleware = reqwest_middleware::ClientBuilder::new(
            reqwest::Client::builder().build().expect("reqwest"),
        )
        .with(RetryTransientMiddleware::new_with_policy(retry))
        .build();
        Arc::new(Clients {
            hyper: HyperClient::builder(TokioExecutor::new()).build_http(),
            hyper_timed: HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_timer(TokioTimer::new())
                .build_http(),
            resil,
            lean,
            hedged,
            reqwest,
            middleware,
        })
    };
    let ok_clients = make(false);
    let flaky_clients = make(true);
    // Profiling aid: `ONLY=hyper|timed|resil|lean|hedged|loop` runs one client and nothing else, on /ok
    // with 1 in flight unless `FLAKY=1` (the flaky endpoint) or `IN_FLIGHT=n` say otherwise.
    if let Ok(only) = std::env::var("ONLY") {
        let kind = match only.as_str() {
            "resil" => Kind::Resil,
            "lean" => Kind::ResilLean,
            "hedged" => Kind::ResilHedged,
            "loop" => Kind::HandLoop,
            "timed" => Kind::HyperTimed,
            _ => Kind::Hyper,
        };
        let flaky = std::env::var("FLAKY").is_ok_and(|v| v == "1");
        let in_flight = std::env::var("IN_FLIGHT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let (c, _) = run(
            runtime_of(kind),
            kind,
            if flaky { &flaky_clients } else { &ok_clients },
            &format!("{base}{}", if flaky { "/flaky" } else { "/ok" }),
            requests,
            in_flight,
        );
        eprintln!("{}: {:.2} µs CPU/request", kind.name(), c / requests as f64);
        drop(child.stdin.take());
        let _ = child.wait();
        return;
    }
    for in_flight in [1usize, 32] {
        for (endpoint, clients, kinds) in [
            (
                "/ok",
                &ok_clients,
                vec![
                    Kind::Hyper,
                    Kind::HyperTimed,
                    Kind::Resil,
                    Kind::ResilLean,
                    Kind::ResilHedged,
                    Kind::ReqwestRetry,
                    Kind::ReqwestBackon,
                ],
            ),
            (
                "/flaky",
                &flaky_clients,
                vec![
                    Kind::HandLoop,
                    Kind::Resil,
                    Kind::ReqwestRetry,
                    Kind::ReqwestBackon,
                ],
            ),
        ] {
            let url = format!("{base}{endpoint}");
            // Slow peers on /flaky (a 1 ms timer per retry) get fewer requests per round.
            for kind in &kinds {
                run(
                    runtime_of(*kind),
                    *kind,
                    clients,
                    &url,
                    requests / 10,
                    in_flight,
                );
            }
            let (before, before_conns) = server_stats(&base);
            let mut logical = 0;
            let (cpu, rps) = resil_bench::interleaved_rounds(kinds.len(), rounds, |i| {
                let count = if endpoint == "/flaky"
                    && matches!(kinds[i], Kind::ReqwestRetry | Kind::ReqwestBackon)
                {
                    requests / 10
                } else {
                    requests
                };
                // Whole requests per task: the count actually sent.
                let count = count / in_flight * in_flight;
                logical += count;
                let (c, w) = run(
                    runtime_of(kinds[i]),
                    kinds[i],
                    clients,
                    &url,
                    count,
                    in_flight,
                );
                (count, c, w)
            });
            let (after, after_conns) = server_stats(&base);
            println!("\n{endpoint}, {in_flight} in flight, {rounds} interleaved rounds");
            println!(
                "server saw {} attempts for {logical} logical requests ({:.3} each) on {} new connections",
                after - before,
                (after - before) as f64 / logical as f64,
                after_conns - before_conns
            );
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            resil_bench::print_rounds(&names, &cpu, &rps);
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
