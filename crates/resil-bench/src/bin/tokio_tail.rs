//! The latency tail, hedged and not: loopback GETs to `/tail`, whose answers are fast but for
//! a slow tail (2 % take 50 ms, 0.2 % take 500 ms, server-side sleeps drawn per request), with
//! 1 and 32 in flight, through resil-tokio without hedging, resil-tokio hedging at an adaptive
//! delay (its latency sketch's p97), and tower's `hedge` middleware over bare hyper-util at
//! the same percentile. Reports p50, p99, p99.9 and max latency, extra attempts per request
//! (what the server saw beyond one per request), new connections, and client CPU per request.
//! Method: ../shared/BENCHMARKING.md.
//!
//! ```sh
//! cargo build --release -p resil-bench --bin tokio_tail
//! taskset -c 0 target/release/tokio_tail --requests 20000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use resil_bench::{cpu_micros, server_stats, spawn_server};
use resil_core::{Hedging, LatencySketch};
use tower::Service;

/// The hedge quantile every hedging client uses: a p95 delay hedges 5 % of requests by
/// definition; the tail here is 2.2 %, so p97 hedges it and little else.
const QUANTILE: f64 = 0.97;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Hedged,
    TowerHedge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "resil-tokio, no hedging",
            Kind::Hedged => "resil-tokio, hedging at p97 (adaptive)",
            Kind::TowerHedge => "tower `hedge` over hyper-util, p97",
        }
    }
}

type Hyper = HyperClient<HttpConnector, Full<Bytes>>;

/// Clones the request for a hedge (every request here is a GET without a body).
#[derive(Clone)]
struct CloneGet;

impl tower::hedge::Policy<http::Request<Full<Bytes>>> for CloneGet {
    fn clone_request(
        &self,
        req: &http::Request<Full<Bytes>>,
    ) -> Option<http::Request<Full<Bytes>>> {
        let mut clone = http::Request::new(Full::new(Bytes::new()));
        *clone.uri_mut() = req.uri().clone();
        Some(clone)
    }
    fn can_retry(&self, _: &http::Request<Full<Bytes>>) -> bool {
        true
    }
}

/// One `Hedge` (one latency histogram) shared by every task, as resil's sketch is: behind a
/// `Buffer`, tower's way to share a service that is not `Clone`.
type TowerHedged = tower::buffer::Buffer<
    http::Request<Full<Bytes>>,
    <tower::hedge::Hedge<Hyper, CloneGet> as Service<http::Request<Full<Bytes>>>>::Future,
>;

async fn one(kind: Kind, client: &resil_tokio::Client, tower: &mut TowerHedged, url: &str) {
    match kind {
        Kind::Plain | Kind::Hedged => {
            let response = client.get(url).send().await.expect("resil call");
            assert_eq!(response.status(), 200);
            let _ = response.into_body().collect().await;
        }
        Kind::TowerHedge => {
            let request = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .expect("request");
            std::future::poll_fn(|cx| tower.poll_ready(cx))
                .await
                .expect("tower ready");
            let response = tower.call(request).await.expect("tower call");
            assert_eq!(response.status(), 200);
            let _ = response.into_body().collect().await;
        }
    }
}

/// `n` GETs over `in_flight` tasks on a fresh current-thread runtime; every latency, the
/// client CPU (µs) and the wall time.
fn run(kind: Kind, url: &str, n: usize, in_flight: usize) -> (Vec<Duration>, f64, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let sketch = LatencySketch::builder()
        .hedge_quantile(QUANTILE)
        .build()
        .expect("sketch");
    let client = match kind {
        Kind::Hedged => resil_tokio::Client::builder()
            .hedge(Hedging::adaptive())
            .latency_sketch(Arc::new(std::sync::Mutex::new(sketch)))
            .build(),
        _ => resil_tokio::Client::new(),
    }
    .expect("resil client");
    let hyper: Hyper = HyperClient::builder(TokioExecutor::new()).build_http();
    // 20 data points before hedging (tower's example) and a 1 s rotating histogram: tower
    // hedges from the previous period's latencies only, so a 10 s period would leave a short
    // run unhedged.
    let tower = tower::buffer::Buffer::new(
        tower::hedge::Hedge::new(hyper, CloneGet, 20, QUANTILE as f32, Duration::from_secs(1)),
        1024,
    );
    let cpu = cpu_micros();
    let wall = Instant::now();
    let latencies = runtime.block_on(async {
        let per_task = n / in_flight;
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (client, mut tower, url) = (client.clone(), tower.clone(), url.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let start = Instant::now();
                    one(kind, &client, &mut tower, &url).await;
                    latencies.push(start.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    ((latencies), (cpu_micros() - cpu) as f64, wall.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let (requests, _) = resil_bench::requests_and_rounds(20_000, 1);
    let (mut child, base) = spawn_server();
    let url = format!("{base}/tail");
    for in_flight in [1usize, 32] {
        println!("\n/tail, {requests} GETs, {in_flight} in flight");
        println!(
            "| client | p50 ms | p99 ms | p99.9 ms | max ms | extra attempts / request | new connections | µs CPU / request |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for kind in [Kind::Plain, Kind::Hedged, Kind::TowerHedge] {
            let (before, before_conns) = server_stats(&base);
            let (mut latencies, cpu, _) = run(kind, &url, requests, in_flight);
            let (after, after_conns) = server_stats(&base);
            let sent = latencies.len();
            latencies.sort_unstable();
            println!(
                "| {} | {} | {} | {} | {} | {:.4} | {} | {:.1} |",
                kind.name(),
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                ms(percentile(&latencies, 0.999)),
                ms(*latencies.last().unwrap_or(&Duration::ZERO)),
                (after - before) as f64 / sent as f64 - 1.0,
                after_conns - before_conns,
                cpu / sent as f64,
            );
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
